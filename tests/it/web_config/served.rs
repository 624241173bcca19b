//! Served behaviour of web-config files: TLS, Basic auth, headers, rotation, mutual TLS,
//! rate limits and bcrypt costs, against a real server on loopback.

use super::*;

struct Server {
    addr: SocketAddr,
    dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    fn config(&self) -> PathBuf {
        self.dir.path().join("web.yml")
    }
    fn write(&self, yaml: &str) {
        std::fs::write(self.config(), yaml).unwrap();
    }
    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.await.unwrap().unwrap();
    }
}

/// Serves a tiny router with `yaml` as the web config, in a temp dir holding the fixture
/// certificates (so paths are relative to the config file, not to the working directory).
async fn start(yaml: &str) -> Server {
    provider();
    let dir = tempfile::tempdir().unwrap();
    for f in std::fs::read_dir(testdata()).unwrap() {
        let p = f.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if name.ends_with(".crt") || name.ends_with(".key") {
            std::fs::copy(&p, dir.path().join(&name)).unwrap();
        }
    }
    std::fs::write(dir.path().join("web.yml"), yaml).unwrap();
    let wc = WebConfigRuntime::load(&dir.path().join("web.yml")).expect("valid config");
    let router = Router::new().route("/metrics", get(|| async { "up 1\n" }));
    let listeners = server::bind_all(&["127.0.0.1:0".parse().unwrap()])
        .await
        .unwrap();
    let addr = listeners[0].local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let opts = ServeOptions {
        web_config: Some(wc),
        ..ServeOptions::default()
    };
    let task = tokio::spawn(server::serve_with(
        listeners,
        router,
        async {
            let _ = rx.await;
        },
        Duration::from_secs(2),
        opts,
    ));
    Server {
        addr,
        dir,
        stop: Some(tx),
        task,
    }
}

fn request(auth: Option<(&str, &str)>) -> String {
    let headers: Vec<String> = auth
        .map(|(u, p)| {
            format!(
                "Authorization: Basic {}",
                b64(format!("{u}:{p}").as_bytes())
            )
        })
        .into_iter()
        .collect();
    request_text("GET", "/metrics", &headers)
}

async fn http_get_auth(addr: SocketAddr, auth: Option<(&str, &str)>) -> std::io::Result<Reply> {
    let s = tokio::net::TcpStream::connect(addr).await?;
    exchange(s, &request(auth)).await
}

/// GET /metrics over TLS, trusting the fixture CA, optionally with a client certificate
/// (fixture base name, e.g. "client").
async fn https_get(
    addr: SocketAddr,
    auth: Option<(&str, &str)>,
    client_cert: Option<&str>,
) -> std::io::Result<Reply> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(testdata().join("ca.crt")).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let b = rustls::ClientConfig::builder().with_root_certificates(roots);
    let cfg = match client_cert {
        Some(name) => {
            let certs: Vec<_> =
                CertificateDer::pem_file_iter(testdata().join(format!("{name}.crt")))
                    .unwrap()
                    .map(|c| c.unwrap())
                    .collect();
            let key = PrivateKeyDer::from_pem_file(testdata().join(format!("{name}.key"))).unwrap();
            b.with_client_auth_cert(certs, key).unwrap()
        }
        None => b.with_no_client_auth(),
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let mut tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await?;
    let server_cert = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.as_ref().to_vec());
    let reply = exchange(&mut tls, &request(auth)).await?;
    Ok(Reply {
        server_cert,
        ..reply
    })
}

fn pem_der(name: &str) -> Vec<u8> {
    CertificateDer::from_pem_file(testdata().join(name))
        .unwrap()
        .as_ref()
        .to_vec()
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(testdata().join(name)).unwrap()
}

#[tokio::test]
async fn tls_basic_auth_and_headers() {
    let s = start(&fixture("users_tls_headers.good.yml")).await;
    let ok = https_get(s.addr, Some(("alice", "alice-secret")), None)
        .await
        .unwrap();
    assert_eq!(ok.status, 200, "{}", ok.head);
    assert!(ok.head.contains("x-frame-options: deny"), "{}", ok.head);
    assert!(ok
        .head
        .contains("strict-transport-security: max-age=31536000"));
    assert!(ok
        .head
        .contains("content-security-policy: default-src 'self'"));
    for auth in [
        None,
        Some(("alice", "wrong")),
        Some(("mallory", "alice-secret")),
    ] {
        let r = https_get(s.addr, auth, None).await.unwrap();
        assert_eq!(r.status, 401, "{auth:?}");
        assert!(r.head.contains("www-authenticate: basic"), "{}", r.head);
        // Headers are set on refusals too, as the toolkit does.
        assert!(r.head.contains("x-content-type-options: nosniff"));
    }
    // Plain HTTP to a TLS port gets no HTTP answer.
    assert!(http_get_auth(s.addr, Some(("alice", "alice-secret")))
        .await
        .map(|r| r.status != 200)
        .unwrap_or(true));
    s.stop().await;
}

#[tokio::test]
async fn users_and_headers_are_reread_per_request() {
    let users = fixture("users.good.yml");
    let s = start(&users).await;
    assert_eq!(http_get_auth(s.addr, None).await.unwrap().status, 401);
    let r = http_get_auth(s.addr, Some(("bob", "bob-secret")))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    // Drop bob, add a header: the next request sees both, no restart.
    let without_bob: String = users.lines().filter(|l| !l.contains("bob")).fold(
        "http_server_config:\n  headers:\n    X-Frame-Options: sameorigin\n".to_string(),
        |acc, l| acc + l + "\n",
    );
    s.write(&without_bob);
    let r = http_get_auth(s.addr, Some(("bob", "bob-secret")))
        .await
        .unwrap();
    assert_eq!(r.status, 401);
    assert!(r.head.contains("x-frame-options: sameorigin"), "{}", r.head);
    // An invalid file while running: 500, as the toolkit does; fixed again: served again.
    s.write("basic_auth_users: [\n");
    assert_eq!(http_get_auth(s.addr, None).await.unwrap().status, 500);
    s.write(&users); // (a file without users would be refused: tests/trust_web.rs)
    assert_eq!(http_get_auth(s.addr, None).await.unwrap().status, 401);
    s.stop().await;
}

#[tokio::test]
async fn certificates_rotate_without_restart() {
    let s = start(&fixture("tls.good.yml")).await;
    let first = https_get(s.addr, None, None).await.unwrap();
    assert_eq!(first.status, 200);
    assert_eq!(first.server_cert.unwrap(), pem_der("server.crt"));
    std::fs::copy(
        testdata().join("server2.key"),
        s.dir.path().join("server.key"),
    )
    .unwrap();
    std::fs::copy(
        testdata().join("server2.crt"),
        s.dir.path().join("server.crt"),
    )
    .unwrap();
    let second = https_get(s.addr, None, None).await.unwrap();
    assert_eq!(second.status, 200);
    assert_eq!(second.server_cert.unwrap(), pem_der("server2.crt"));
    // A broken certificate fails new handshakes, not the process; fixing it recovers.
    std::fs::write(s.dir.path().join("server.crt"), "garbage").unwrap();
    assert!(https_get(s.addr, None, None).await.is_err());
    std::fs::copy(
        testdata().join("server2.crt"),
        s.dir.path().join("server.crt"),
    )
    .unwrap();
    assert_eq!(https_get(s.addr, None, None).await.unwrap().status, 200);
    s.stop().await;
}

#[tokio::test]
async fn mutual_tls() {
    let s = start(&fixture("tls_mtls.good.yml")).await;
    assert!(
        https_get(s.addr, None, None).await.is_err(),
        "no client cert"
    );
    assert!(
        https_get(s.addr, None, Some("client_selfsigned"))
            .await
            .is_err(),
        "cert not from the client CA"
    );
    for c in ["client", "client_other"] {
        assert_eq!(https_get(s.addr, None, Some(c)).await.unwrap().status, 200);
    }
    s.stop().await;
}

#[tokio::test]
async fn mutual_tls_with_allowed_sans() {
    let s = start(&fixture("tls_mtls_sans.newer.yml")).await;
    let r = https_get(s.addr, None, Some("client")).await.unwrap();
    assert_eq!(r.status, 200);
    assert!(https_get(s.addr, None, Some("client_other")).await.is_err());
    assert!(https_get(s.addr, None, None).await.is_err());
    // The e-mail and URI SANs match too.
    for san in ["scraper@example.com", "spiffe://example/prometheus"] {
        s.write(
            &fixture("tls_mtls_sans.newer.yml").replace("- client.example", &format!("- {san}")),
        );
        assert_eq!(
            https_get(s.addr, None, Some("client"))
                .await
                .unwrap()
                .status,
            200,
            "{san}"
        );
    }
    s.stop().await;
}

#[tokio::test]
async fn request_client_cert_without_ca() {
    let s = start(
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: RequireAnyClientCert\n",
    )
    .await;
    assert!(https_get(s.addr, None, None).await.is_err());
    let r = https_get(s.addr, None, Some("client_selfsigned"))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    s.stop().await;
}

#[tokio::test]
async fn rate_limit_answers_429() {
    let s = start("rate_limit:\n  interval: 1h\n  burst: 2\n").await;
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(http_get_auth(s.addr, None).await.unwrap().status);
    }
    assert_eq!(statuses, [200, 200, 429, 429]);
    s.stop().await;
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_users_cost_a_bcrypt_and_successes_are_cached() {
    // alice's hash has cost 10 (~50-100 ms), bob's cost 4.
    let cfg = WebSettings::load(&testdata().join("users.good.yml")).unwrap();
    let users: BTreeMap<String, String> = cfg.request.users.clone();
    let auth = Authenticator::default();
    let time = |u: &'static str, p: &'static str| {
        let (auth, users) = (&auth, &users);
        async move {
            let t = Instant::now();
            let r = auth.check(users, u, p).await;
            (r, t.elapsed())
        }
    };
    let (first, first_t) = time("alice", "alice-secret").await;
    assert_eq!(first, AuthResult::Allowed);
    let mut cached = Vec::new();
    let mut wrong = Vec::new();
    let mut unknown = Vec::new();
    for _ in 0..5 {
        let (r, t) = time("alice", "alice-secret").await;
        assert_eq!(r, AuthResult::Allowed);
        cached.push(t);
        let (r, t) = time("alice", "nope").await;
        assert_eq!(r, AuthResult::Denied);
        wrong.push(t);
        let (r, t) = time("mallory", "alice-secret").await;
        assert_eq!(r, AuthResult::Denied);
        unknown.push(t);
    }
    let (cached, wrong, unknown) = (median(cached), median(wrong), median(unknown));
    let ratio = unknown.as_secs_f64() / wrong.as_secs_f64();
    eprintln!(
        "bcrypt: first {first_t:?}, cached {cached:?}, wrong password {wrong:?}, unknown user {unknown:?} (ratio {ratio:.2})"
    );
    // An unknown user costs the same bcrypt as a known user's wrong password.
    assert!((0.4..2.5).contains(&ratio), "unknown/wrong ratio {ratio}");
    // A cached success skips bcrypt entirely.
    assert!(cached * 20 < wrong, "cached {cached:?} vs bcrypt {wrong:?}");
    // bob (cost 4) is still checked against his own hash.
    assert_eq!(
        auth.check(&users, "bob", "bob-secret").await,
        AuthResult::Allowed
    );
}

/// `GET /metrics` as `user:password` on a new connection from the source address `from`
/// (any 127/8 address is loopback); the status.
async fn get_from(from: [u8; 4], addr: SocketAddr, user: &str, password: &str) -> Option<u16> {
    let socket = tokio::net::TcpSocket::new_v4().ok()?;
    socket.bind(SocketAddr::from((from, 0))).ok()?;
    let s = socket.connect(addr).await.ok()?;
    exchange(s, &request(Some((user, password))))
        .await
        .ok()
        .map(|r| r.status)
}

/// A flood of wrong passwords for the real user name from one address (40 concurrent
/// clients) cannot lock out a valid scraper on another address whose success is not cached:
/// bcrypt takes turns between addresses, and the flooder gets 429 beyond its own short
/// queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_flood_does_not_starve_another_address() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
    let s = start(&fixture("users.good.yml")).await;
    let addr = s.addr;
    let stop = Arc::new(AtomicBool::new(false));
    let counts: Arc<[AtomicUsize; 4]> = Arc::new(Default::default()); // 401, 429, 503, other
    let flood: Vec<_> = (0..40)
        .map(|_| {
            let (stop, counts) = (stop.clone(), counts.clone());
            tokio::spawn(async move {
                while !stop.load(SeqCst) {
                    let i = match get_from([127, 0, 0, 2], addr, "alice", "wrong-guess").await {
                        Some(401) => 0,
                        Some(429) => 1,
                        Some(503) => 2,
                        _ => 3,
                    };
                    counts[i].fetch_add(1, SeqCst);
                }
            })
        })
        .collect();
    // Let the flood fill its queue and the bcrypt slot.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let t = Instant::now();
    let status = get_from([127, 0, 0, 1], addr, "alice", "alice-secret").await;
    let took = t.elapsed();
    // And again, now from the cache: no queue at all.
    let t = Instant::now();
    let again = get_from([127, 0, 0, 1], addr, "alice", "alice-secret").await;
    let cached = t.elapsed();
    stop.store(true, SeqCst);
    for f in flood {
        f.await.unwrap();
    }
    let [n401, n429, n503, other] = [0, 1, 2, 3].map(|i| counts[i].load(SeqCst));
    eprintln!(
        "bcrypt fairness: valid scraper (not cached) answered {status:?} after {took:?}, cached {again:?} after {cached:?}; flood from 127.0.0.2: {n401}x401 {n429}x429 {n503}x503 {other} other"
    );
    assert_eq!(status, Some(200), "the valid scraper is let in");
    assert!(
        took < Duration::from_secs(10),
        "valid scraper waited {took:?}"
    );
    assert_eq!(again, Some(200));
    assert!(n401 > 0, "the flood's checks ran");
    assert!(n429 > 0, "the flooder is told to slow down (429)");
    assert_eq!(n503, 0, "one address never fills the server-wide queue");
    s.stop().await;
}
