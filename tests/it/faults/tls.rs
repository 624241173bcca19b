//! The TLS rows of the upstream fault matrix: the same mock wrapped in tokio-rustls, with
//! certificates made at test time by rcgen (a good chain, an unknown CA, an expired leaf).

use super::*;

struct Pki {
    ca_pem: String,
    good: Arc<rustls::ServerConfig>,
    unknown_ca: Arc<rustls::ServerConfig>,
    expired: Arc<rustls::ServerConfig>,
}

fn server_config(
    cert: rustls_pki_types::CertificateDer<'static>,
    key: &rcgen::KeyPair,
) -> Arc<rustls::ServerConfig> {
    let key = rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let mut c = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert], key)
    .unwrap();
    c.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(c)
}

fn ca(name: &str) -> rcgen::CertifiedIssuer<'static, rcgen::KeyPair> {
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    p.distinguished_name
        .push(rcgen::DnType::CommonName, name.to_string());
    p.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    rcgen::CertifiedIssuer::self_signed(p, rcgen::KeyPair::generate().unwrap()).unwrap()
}

fn leaf(
    issuer: &rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
    expired: bool,
) -> Arc<rustls::ServerConfig> {
    let mut p =
        rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap();
    p.distinguished_name
        .push(rcgen::DnType::CommonName, "bitbucket.test");
    if expired {
        p.not_before = rcgen::date_time_ymd(2019, 1, 1);
        p.not_after = rcgen::date_time_ymd(2020, 1, 1);
    }
    let key = rcgen::KeyPair::generate().unwrap();
    let issuer: &rcgen::Issuer<'static, rcgen::KeyPair> = issuer;
    let cert = p.signed_by(&key, issuer).unwrap();
    server_config(cert.der().clone(), &key)
}

fn pki() -> Pki {
    let trusted = ca("trusted test CA");
    let unknown = ca("unknown test CA");
    Pki {
        ca_pem: trusted.pem(),
        good: leaf(&trusted, false),
        unknown_ca: leaf(&unknown, false),
        expired: leaf(&trusted, true),
    }
}

async fn tls_case(bad: fn(&Pki) -> Arc<rustls::ServerConfig>, label: &str) {
    bitbucket_zdu_exporter::client::install_crypto_provider();
    let pki = pki();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &pki.ca_pem).unwrap();
    let mock = Mock::start_tls(pki.good.clone()).await;
    let client = ZduClient::new(target(&mock.url(), FAST_ENOUGH, Some(ca_file))).unwrap();
    let mut h = Harness::with_client(client);
    h.poll().await;
    h.assert_up(&format!("{label}: trusted certificate"));

    mock.set_tls(bad(&pki));
    h.poll().await;
    let m = h.metrics();
    assert_eq!(h.up(), 0.0, "{label}\n{m}");
    assert_eq!(
        h.last_error_reasons(),
        vec!["tls"],
        "{label}: {}",
        h.last_error_text()
    );
    assert_eq!(h.errors("cluster", Reason::Tls), 1.0);
    h.assert_no_secret();
    // Nothing was sent over the refused connections.
    let requests = mock.seen().len();
    assert_eq!(requests, 2, "only the first, good poll reached the server");
    eprintln!(
        "matrix: TLS {label} -> reason=tls up=0 ({}) -> recovered up=1",
        h.last_error_text()
    );

    mock.set_tls(pki.good.clone());
    h.poll().await;
    h.assert_up(&format!("{label}: after the certificate was fixed"));
}

#[tokio::test]
async fn certificate_from_an_unknown_ca_is_tls() {
    tls_case(|p| p.unknown_ca.clone(), "unknown CA").await;
}

#[tokio::test]
async fn expired_certificate_is_tls() {
    tls_case(|p| p.expired.clone(), "expired certificate").await;
}

#[tokio::test]
async fn plain_http_on_an_https_url_is_tls() {
    bitbucket_zdu_exporter::client::install_crypto_provider();
    // A plain-HTTP server that answers whatever arrives (here: a TLS ClientHello).
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    .await;
                let _ = s.shutdown().await;
            });
        }
    });
    let mut h = Harness::new(&format!("https://{addr}"), FAST_ENOUGH);
    h.poll().await;
    assert_eq!(h.up(), 0.0);
    assert_eq!(
        h.last_error_reasons(),
        vec!["tls"],
        "{}",
        h.last_error_text()
    );
    h.assert_no_secret();
}

// ---- self-signed upstreams (issue 10, finding 6) --------------------------------------

/// A self-signed certificate for `names`: CA:TRUE (OpenSSL's `req -x509` default) or a
/// plain leaf; expired or not. Returns its PEM and a server configuration presenting it.
fn self_signed(names: &[&str], ca: bool, expired: bool) -> (String, Arc<rustls::ServerConfig>) {
    let mut p =
        rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .unwrap();
    p.distinguished_name
        .push(rcgen::DnType::CommonName, "bitbucket.internal");
    if ca {
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    } else {
        p.is_ca = rcgen::IsCa::ExplicitNoCa;
    }
    if expired {
        p.not_before = rcgen::date_time_ymd(2019, 1, 1);
        p.not_after = rcgen::date_time_ymd(2020, 1, 1);
    }
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = p.self_signed(&key).unwrap();
    (cert.pem(), server_config(cert.der().clone(), &key))
}

/// Polls a TLS mock presenting `presented` with `--bitbucket.ca-file` holding `ca_pem`;
/// returns the harness after one poll.
async fn self_signed_poll(ca_pem: &str, presented: Arc<rustls::ServerConfig>) -> Harness {
    bitbucket_zdu_exporter::client::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("bitbucket.pem");
    std::fs::write(&ca_file, ca_pem).unwrap();
    let mock = Mock::start_tls(presented).await;
    let client = ZduClient::new(target(&mock.url(), FAST_ENOUGH, Some(ca_file))).unwrap();
    let mut h = Harness::with_client(client);
    h.poll().await;
    h
}

#[tokio::test]
async fn a_self_signed_ca_true_certificate_in_the_ca_file_is_trusted_as_itself() {
    // What `openssl req -x509` makes: CA:TRUE. WebPKI alone refuses it (CaUsedAsEndEntity).
    let (pem, server) = self_signed(&["localhost", "127.0.0.1"], true, false);
    let h = self_signed_poll(&pem, server).await;
    h.assert_up("self-signed CA:TRUE certificate in the CA file");
}

#[tokio::test]
async fn a_self_signed_leaf_certificate_in_the_ca_file_is_trusted_as_itself() {
    let (pem, server) = self_signed(&["localhost", "127.0.0.1"], false, false);
    let h = self_signed_poll(&pem, server).await;
    h.assert_up("self-signed CA:FALSE certificate in the CA file");
}

#[tokio::test]
async fn a_self_signed_certificate_still_needs_the_right_name_dates_and_bytes() {
    let check = |h: &Harness, what: &str| {
        assert_eq!(h.up(), 0.0, "{what}");
        assert_eq!(
            h.last_error_reasons(),
            vec!["tls"],
            "{what}: {}",
            h.last_error_text()
        );
        eprintln!("self-signed: {what} -> tls ({})", h.last_error_text());
    };
    for ca in [true, false] {
        // Hostname verification stays on: the URL is https://127.0.0.1:port.
        let (pem, server) = self_signed(&["bitbucket.other.example"], ca, false);
        check(
            &self_signed_poll(&pem, server).await,
            &format!("CA:{ca} for another name"),
        );
        // Dates too.
        let (pem, server) = self_signed(&["127.0.0.1"], ca, true);
        check(
            &self_signed_poll(&pem, server).await,
            &format!("CA:{ca} expired"),
        );
        // Only the very certificate in the file: another self-signed one for the same name
        // is refused.
        let (pem, _) = self_signed(&["127.0.0.1"], ca, false);
        let (_, other) = self_signed(&["127.0.0.1"], ca, false);
        check(
            &self_signed_poll(&pem, other).await,
            &format!("CA:{ca} another certificate"),
        );
    }
    // The ordinary CA case is unchanged (tls_case above) and a certificate in the file
    // alongside a CA still works.
    let pki = pki();
    let (pem, server) = self_signed(&["127.0.0.1"], true, false);
    let h = self_signed_poll(&format!("{}{pem}", pki.ca_pem), server).await;
    h.assert_up("self-signed certificate next to a CA in one bundle");
}
