use super::*;
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
