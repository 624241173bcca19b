use super::*;
use crate::config::AuthConfig;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

#[test]
fn per_reason_keys_each_reason_apart() {
    let mut m = PerReason::<u64>::default();
    for (i, r) in Reason::all().enumerate() {
        m[r] += i as u64 + 1;
    }
    let seen: Vec<(Reason, u64)> = m.iter().map(|(r, v)| (r, *v)).collect();
    let want: Vec<(Reason, u64)> = Reason::all()
        .enumerate()
        .map(|(i, r)| (r, i as u64 + 1))
        .collect();
    assert_eq!(seen, want);
}

#[test]
fn status_errors_map_to_reasons() {
    let nc = br#"{"errors":[{"context":null,"message":"Rolling upgrades feature requires a clustered installation.","exceptionName":null}]}"#;
    assert_eq!(
        status_error(StatusCode::UNAUTHORIZED, nc, None).reason(),
        Reason::NotClustered
    );
    assert_eq!(
        status_error(StatusCode::FORBIDDEN, nc, None).reason(),
        Reason::NotClustered
    );
    assert_eq!(
        status_error(StatusCode::UNAUTHORIZED, b"", None).reason(),
        Reason::Unauthorized
    );
    assert_eq!(
        status_error(StatusCode::FORBIDDEN, b"{}", None).reason(),
        Reason::Forbidden
    );
    assert_eq!(
        status_error(StatusCode::NOT_FOUND, b"", None).reason(),
        Reason::NotFound
    );
    assert_eq!(
        status_error(StatusCode::BAD_GATEWAY, b"", None).reason(),
        Reason::ServerError
    );
    assert_eq!(
        status_error(StatusCode::CONFLICT, b"", None).reason(),
        Reason::UnexpectedStatus
    );
    let e = status_error(
        StatusCode::FOUND,
        b"",
        Some("https://u:p@sso.example.com/login?x=1".into()),
    );
    assert_eq!(e.reason(), Reason::UnexpectedStatus);
    assert!(!e.to_string().contains("u:p"), "{e}");
}

#[test]
fn echoed_credentials_are_redacted_from_error_texts() {
    let forms = Redactor::new(Some("zdu"), "pa\"ss-w0rd");
    // base64("zdu:pa\"ss-w0rd")
    let b64 = STANDARD.encode(b"zdu:pa\"ss-w0rd");
    let body = format!(
        r#"{{"errors":[{{"message":"bad header Authorization: Basic {b64} for pa\"ss-w0rd"}}]}}"#
    );
    let e = status_error(
        StatusCode::UNAUTHORIZED,
        &forms.redact_bytes(body.as_bytes()),
        None,
    );
    let text = e.to_string();
    assert!(!text.contains(&b64) && !text.contains("ss-w0rd"), "{text}");
    assert!(text.contains("<redacted>"), "{text}");
    let e = redact_error(
        FetchError::Decode(format!("invalid type: string \"Basic {b64}\"")),
        &forms,
    );
    assert!(!e.to_string().contains(&b64[..b64.len() - 2]), "{e}");
    assert!(!Redactor::new(None, "tok").is_empty());
    assert!(Redactor::new(None, "ab").is_empty());
}

#[test]
fn rustls_errors_nested_in_io_errors_are_tls() {
    // What tokio-rustls and hyper-util hand reqwest for plain HTTP on an https URL.
    let inner = std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType),
    );
    let outer = std::io::Error::other(inner);
    assert!(has_rustls_error(&outer));
    assert!(!has_rustls_error(&std::io::Error::other(
        "connection reset"
    )));
}

#[test]
fn html_and_garbage_bodies() {
    let l = Limits::default();
    let e = decode_success::<Cluster>(b"<html>login</html>", "text/html", l).unwrap_err();
    assert_eq!(e.reason(), Reason::NotJson);
    let e = decode_success::<Cluster>(b"  <!DOCTYPE html>", "application/json", l).unwrap_err();
    assert_eq!(e.reason(), Reason::NotJson);
    let e = decode_success::<Cluster>(b"{\"nodes\": [", "application/json", l).unwrap_err();
    assert_eq!(e.reason(), Reason::Decode);
    let e = decode_success::<Cluster>(b"", "application/json", l).unwrap_err();
    assert_eq!(e.reason(), Reason::Decode);
}

#[tokio::test]
async fn an_unreadable_password_file_has_its_own_reason() {
    install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    // A file source that was never read: what the client meets when the file is gone.
    let password = crate::secret::SecretSource::File {
        path: dir.path().join("missing"),
        cache: std::sync::Mutex::new(None),
    };
    let target = TargetConfig::builder("t", "http://127.0.0.1:9/")
        .auth(AuthConfig::Basic {
            username: "zdu".into(),
            password: std::sync::Arc::new(password),
        })
        .build()
        .unwrap();
    let e = ZduClient::new(target).unwrap().cluster().await.unwrap_err();
    assert_eq!(e.reason(), Reason::Credentials, "{e}");
    assert_eq!(e.reason().as_str(), "credentials");
    assert!(Reason::all().any(|r| r == Reason::Credentials));
}

/// The child half of [`descriptor_exhaustion_has_its_own_reason`]: lowers this process's
/// open-files limit, takes every descriptor left under it, then polls the loopback upstream
/// the parent listens on. Prints the failure's reason and message.
#[test]
#[ignore = "run in a child process by descriptor_exhaustion_has_its_own_reason"]
fn descriptor_exhaustion_child() {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let upstream = std::env::var("ZDU_FD_CHILD_UPSTREAM")
        .expect("run by descriptor_exhaustion_has_its_own_reason, which sets the upstream");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let target = TargetConfig::builder("t", format!("http://{upstream}/"))
        .build()
        .unwrap();
    let client = ZduClient::new(target).unwrap();
    let hard = getrlimit(Resource::Nofile).maximum;
    let open = std::fs::read_dir("/proc/self/fd").unwrap().count() as u64;
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(open + 8),
            maximum: hard,
        },
    )
    .unwrap();
    // Every descriptor number under the limit taken: the socket cannot be created.
    let mut held = Vec::new();
    while let Ok(f) = std::fs::File::open("/dev/null") {
        held.push(f);
    }
    let e = rt.block_on(client.cluster()).unwrap_err();
    drop(held);
    println!("REASON {} MESSAGE {e}", e.reason());
}

#[test]
fn descriptor_exhaustion_has_its_own_reason() {
    // The upstream is up and listening: only the exporter's own limit can fail the poll.
    let upstream = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "client::tests::descriptor_exhaustion_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(
            "ZDU_FD_CHILD_UPSTREAM",
            upstream.local_addr().unwrap().to_string(),
        )
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("REASON fd_exhausted MESSAGE "), "{stdout}");
    assert!(stdout.contains("no file descriptor left"), "{stdout}");
    assert_eq!(Reason::FdExhausted.as_str(), "fd_exhausted");
}

#[test]
fn reasons_of_an_io_error_chain() {
    let emfile = std::io::Error::from_raw_os_error(rustix::io::Errno::MFILE.raw_os_error());
    assert!(out_of_descriptors(&emfile));
    let enfile = std::io::Error::from_raw_os_error(rustix::io::Errno::NFILE.raw_os_error());
    assert!(out_of_descriptors(&std::io::Error::other(enfile)));
    let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
    assert!(!out_of_descriptors(&refused));
}

#[test]
fn an_answer_equal_to_the_last_is_the_same_value_and_a_changed_one_is_decoded() {
    let memo = Memo::default();
    let get = |ct: &str, body: &str| {
        memo.decode(
            Slot::State,
            ct,
            body.as_bytes().to_vec(),
            Limits::default(),
            |s: StateResponse| s,
        )
    };
    let json = "application/json";
    let a = get(json, r#"{"state":"STABLE"}"#).unwrap();
    let b = get(json, r#"{"state":"STABLE"}"#).unwrap();
    assert!(Arc::ptr_eq(&a, &b), "the same bytes were decoded again");
    let c = get(json, r#"{"state":"MIXED"}"#).unwrap();
    assert!(!Arc::ptr_eq(&b, &c));
    assert_ne!(*b, *c);
    // The same body under another content type is decoded again.
    let d = get("application/json;charset=UTF-8", r#"{"state":"MIXED"}"#).unwrap();
    assert!(!Arc::ptr_eq(&c, &d));
    assert_eq!(*c, *d);
    // A body that fails leaves the last good one remembered.
    assert!(get(json, "<html>").is_err());
    let e = get("application/json;charset=UTF-8", r#"{"state":"MIXED"}"#).unwrap();
    assert!(Arc::ptr_eq(&d, &e));
}
