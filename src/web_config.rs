//! `--web.config.file`: the Prometheus exporter-toolkit web configuration (TLS, mutual TLS,
//! basic auth with bcrypt hashes, extra response headers, rate limit), with the toolkit's
//! semantics: strict YAML, paths relative to the file, the file re-read on every request
//! (users, headers) and every connection (certificates) so rotation needs no restart.
//!
//! Values the toolkit accepts but rustls cannot honour (TLS 1.0/1.1, CBC cipher suites,
//! P-521, verifying client certificates without a CA) are refused at start with a message
//! saying why; see `docs/web-config.md`.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{CipherSuite, DigitallySignedStruct, DistinguishedName, NamedGroup, ServerConfig};
use serde::Deserialize;
use tokio::sync::Semaphore;

/// Response headers a web config may set, with their allowed values (empty: any value).
/// The same list as the exporter-toolkit's, on purpose.
pub const ALLOWED_HEADERS: &[(&str, &[&str])] = &[
    ("Strict-Transport-Security", &[]),
    ("X-Content-Type-Options", &["nosniff"]),
    ("X-Frame-Options", &["deny", "sameorigin"]),
    ("X-XSS-Protection", &[]),
    ("Content-Security-Policy", &[]),
];

/// How many successful (user, password) checks are remembered.
const AUTH_CACHE_SIZE: usize = 100;
/// How many requests may wait for a bcrypt check at once; more get 503.
const BCRYPT_QUEUE: usize = 32;

/// Why a web configuration file was refused.
#[derive(Debug, thiserror::Error)]
pub enum WebConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Yaml(String),
    #[error("{0}")]
    Invalid(String),
    /// Valid for the exporter-toolkit, but rustls cannot do it.
    #[error("{0} (this exporter's TLS stack, rustls, cannot honour it; see docs/web-config.md)")]
    Unsupported(String),
}

fn invalid(s: impl Into<String>) -> WebConfigError {
    WebConfigError::Invalid(s.into())
}

// ---------------------------------------------------------------------------------------
// The file as written.

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct FileConfig {
    tls_server_config: FileTls,
    http_server_config: FileHttp,
    rate_limit: FileRateLimit,
    basic_auth_users: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct FileTls {
    cert: String,
    key: String,
    client_ca: String,
    cert_file: String,
    key_file: String,
    client_auth_type: String,
    client_ca_file: String,
    cipher_suites: Vec<String>,
    curve_preferences: Vec<String>,
    min_version: Option<String>,
    max_version: Option<String>,
    prefer_server_cipher_suites: Option<bool>,
    client_allowed_sans: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct FileHttp {
    http2: Option<bool>,
    headers: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct FileRateLimit {
    burst: u32,
    interval: Option<GoDuration>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum GoDuration {
    Nanos(u64),
    Text(String),
}

/// Parses a Go `time.Duration` string ("1s", "1m30s", "250ms", "1.5h").
pub fn parse_go_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s == "0" {
        return Some(Duration::ZERO);
    }
    if s.is_empty() || s.starts_with('-') {
        return None;
    }
    let mut rest = s.strip_prefix('+').unwrap_or(s);
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let value: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let nanos = match &rest[..unit_end] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_end..];
        total += value * nanos;
    }
    Some(Duration::from_nanos(total as u64))
}

fn parse_file(content: &str) -> Result<FileConfig, WebConfigError> {
    // An empty file (or one with only comments) is a valid, empty configuration.
    let meaningful = content
        .lines()
        .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
    if !meaningful {
        return Ok(FileConfig::default());
    }
    let parsed: Option<FileConfig> = serde_norway::from_str(content)
        .map_err(|e| WebConfigError::Yaml(crate::secret::hide_quoted_values(&e.to_string())))?;
    Ok(parsed.unwrap_or_default())
}

// ---------------------------------------------------------------------------------------
// Validated pieces.

/// Where PEM data comes from: a file (path already joined with the config's directory) or
/// inline text.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    File(PathBuf),
    Inline(String),
}

impl Source {
    fn pick(inline: &str, file: &str, dir: &Path) -> Option<Source> {
        if !file.is_empty() {
            Some(Source::File(join_dir(dir, file)))
        } else if !inline.is_empty() {
            Some(Source::Inline(inline.to_string()))
        } else {
            None
        }
    }

    fn read(&self, what: &str) -> Result<Vec<u8>, WebConfigError> {
        match self {
            Source::File(p) => std::fs::read(p)
                .map_err(|e| invalid(format!("failed to read {what} ({}): {e}", p.display()))),
            Source::Inline(s) => Ok(s.as_bytes().to_vec()),
        }
    }
}

fn join_dir(dir: &Path, p: &str) -> PathBuf {
    let path = Path::new(p);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        dir.join(path)
    }
}

/// How client certificates are handled (Go's `tls.ClientAuthType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    NoClientCert,
    RequestClientCert,
    RequireAnyClientCert,
    VerifyClientCertIfGiven,
    RequireAndVerifyClientCert,
}

/// The validated `tls_server_config`.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    cert: Source,
    key: Source,
    client_ca: Option<Source>,
    pub client_auth: ClientAuth,
    allowed_sans: Option<Vec<String>>,
    tls12: bool,
    tls13: bool,
    /// TLS 1.2 suites in preference order; `None`: rustls's defaults.
    cipher_suites: Option<Vec<CipherSuite>>,
    curves: Option<Vec<NamedGroup>>,
    prefer_server_order: bool,
}

const GO_TLS13_SUITES: &[&str] = &[
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
];
const GO_TLS12_SUITES: &[(&str, CipherSuite)] = &[
    (
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
];
/// Suites Go's `tls.CipherSuites()` lists (so the toolkit accepts them) that rustls lacks.
const GO_CBC_SUITES: &[&str] = &[
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
];

fn tls_version(field: &str, v: &Option<String>, default: u8) -> Result<u8, WebConfigError> {
    match v.as_deref() {
        None => Ok(default),
        Some("TLS10") => Ok(10),
        Some("TLS11") => Ok(11),
        Some("TLS12") => Ok(12),
        Some("TLS13") => Ok(13),
        Some(other) => Err(invalid(format!(
            "unknown TLS version: {other} (in {field})"
        ))),
    }
}

impl TlsSettings {
    /// Validates the section without reading any file. `Ok(None)`: TLS is not configured.
    fn from_file(t: &FileTls, dir: &Path) -> Result<Option<TlsSettings>, WebConfigError> {
        // Key-by-key checks that the toolkit does while unmarshalling come first.
        let min = tls_version("min_version", &t.min_version, 12)?;
        let max = tls_version("max_version", &t.max_version, 13)?;
        let mut tls12_suites = Vec::new();
        for name in &t.cipher_suites {
            if let Some((_, s)) = GO_TLS12_SUITES.iter().find(|(n, _)| n == name) {
                tls12_suites.push(*s);
            } else if GO_TLS13_SUITES.contains(&name.as_str()) {
                // Go ignores TLS 1.3 suites here (they are not configurable); so do we.
            } else if GO_CBC_SUITES.contains(&name.as_str()) {
                return Err(WebConfigError::Unsupported(format!(
                    "cipher suite {name} in cipher_suites: CBC suites are not implemented; use the ECDHE GCM or CHACHA20_POLY1305 suites"
                )));
            } else {
                return Err(invalid(format!("unknown cipher: {name}")));
            }
        }
        let mut curves = Vec::new();
        for name in &t.curve_preferences {
            curves.push(match name.as_str() {
                "X25519" => NamedGroup::X25519,
                "CurveP256" => NamedGroup::secp256r1,
                "CurveP384" => NamedGroup::secp384r1,
                "CurveP521" => {
                    return Err(WebConfigError::Unsupported(
                        "curve CurveP521 in curve_preferences: P-521 key exchange is not available; use X25519, CurveP256 or CurveP384".into(),
                    ))
                }
                other => return Err(invalid(format!("unknown curve: {other}"))),
            });
        }
        let client_auth = match t.client_auth_type.as_str() {
            "" | "NoClientCert" => ClientAuth::NoClientCert,
            "RequestClientCert" => ClientAuth::RequestClientCert,
            "RequireAnyClientCert" | "RequireClientCert" => ClientAuth::RequireAnyClientCert,
            "VerifyClientCertIfGiven" => ClientAuth::VerifyClientCertIfGiven,
            "RequireAndVerifyClientCert" => ClientAuth::RequireAndVerifyClientCert,
            other => return Err(invalid(format!("invalid ClientAuth: {other}"))),
        };

        let enabled = !(t.cert.is_empty()
            && t.cert_file.is_empty()
            && t.key.is_empty()
            && t.key_file.is_empty()
            && t.client_ca.is_empty()
            && t.client_ca_file.is_empty()
            && t.client_auth_type.is_empty());
        if !enabled {
            return Ok(None);
        }
        let cert = Source::pick(&t.cert, &t.cert_file, dir)
            .ok_or_else(|| invalid("missing one of cert or cert_file"))?;
        let key = Source::pick(&t.key, &t.key_file, dir)
            .ok_or_else(|| invalid("missing one of key or key_file"))?;
        let client_ca = Source::pick(&t.client_ca, &t.client_ca_file, dir);
        if client_ca.is_some() && client_auth == ClientAuth::NoClientCert {
            return Err(invalid(
                "client CA's have been configured without a Client Auth Policy (set client_auth_type)",
            ));
        }
        if client_ca.is_none()
            && matches!(
                client_auth,
                ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert
            )
        {
            return Err(WebConfigError::Unsupported(format!(
                "client_auth_type {} without client_ca_file or client_ca: verifying client certificates against the system roots is not supported; name the CA that signs your scrapers' certificates",
                t.client_auth_type
            )));
        }
        if min < 12 || max < 12 {
            let which = if min < 12 {
                "min_version"
            } else {
                "max_version"
            };
            let v = if min < 12 { min } else { max };
            return Err(WebConfigError::Unsupported(format!(
                "{which} TLS1{}: TLS 1.0 and 1.1 are not implemented (only TLS 1.2 and 1.3); use TLS12 or TLS13",
                v - 10
            )));
        }
        if min > max {
            return Err(invalid(format!(
                "min_version TLS{min} is above max_version TLS{max}"
            )));
        }
        Ok(Some(TlsSettings {
            cert,
            key,
            client_ca,
            client_auth,
            allowed_sans: t.client_allowed_sans.clone(),
            tls12: min <= 12,
            tls13: max >= 13,
            cipher_suites: (!t.cipher_suites.is_empty()).then_some(tls12_suites),
            curves: (!curves.is_empty()).then_some(curves),
            prefer_server_order: t.prefer_server_cipher_suites.unwrap_or(true),
        }))
    }

    /// Reads the certificate, key and client CA.
    fn read_inputs(&self) -> Result<Vec<Vec<u8>>, WebConfigError> {
        let mut v = vec![self.cert.read("cert_file")?, self.key.read("key_file")?];
        if let Some(ca) = &self.client_ca {
            v.push(ca.read("client_ca_file")?);
        }
        Ok(v)
    }

    /// Builds the rustls configuration from the PEM inputs of [`Self::read_inputs`].
    fn build(&self, inputs: &[Vec<u8>]) -> Result<Arc<ServerConfig>, WebConfigError> {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&inputs[0])
            .collect::<Result<_, _>>()
            .map_err(|e| invalid(format!("failed to load X509KeyPair: certificate: {e}")))?;
        if certs.is_empty() {
            return Err(invalid(
                "failed to load X509KeyPair: no certificate found in cert/cert_file",
            ));
        }
        let key = PrivateKeyDer::from_pem_slice(&inputs[1])
            .map_err(|e| invalid(format!("failed to load X509KeyPair: private key: {e}")))?;

        let mut provider = rustls::crypto::ring::default_provider();
        if let Some(order) = &self.cipher_suites {
            let all = std::mem::take(&mut provider.cipher_suites);
            // TLS 1.3 suites stay (as in Go, they are not configurable), then the chosen
            // TLS 1.2 suites in the order given.
            let mut chosen: Vec<_> = all
                .iter()
                .filter(|s| s.version() == &rustls::version::TLS13)
                .copied()
                .collect();
            for want in order {
                if let Some(s) = all.iter().find(|s| s.suite() == *want) {
                    chosen.push(*s);
                }
            }
            provider.cipher_suites = chosen;
        }
        if let Some(order) = &self.curves {
            let all = std::mem::take(&mut provider.kx_groups);
            provider.kx_groups = order
                .iter()
                .filter_map(|g| all.iter().find(|k| k.name() == *g).copied())
                .collect();
        }
        let provider = Arc::new(provider);
        let mut versions = Vec::new();
        if self.tls13 {
            versions.push(&rustls::version::TLS13);
        }
        if self.tls12 {
            versions.push(&rustls::version::TLS12);
        }
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&versions)
            .map_err(|e| invalid(format!("TLS settings: {e}")))?;

        let verifier: Option<Arc<dyn ClientCertVerifier>> = match self.client_auth {
            ClientAuth::NoClientCert => None,
            ClientAuth::RequestClientCert | ClientAuth::RequireAnyClientCert => {
                Some(Arc::new(AnyClientCert {
                    provider: provider.clone(),
                    mandatory: self.client_auth == ClientAuth::RequireAnyClientCert,
                }))
            }
            ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert => {
                let mut roots = rustls::RootCertStore::empty();
                let ca = self.client_ca.as_ref().map(|_| &inputs[2]);
                for c in CertificateDer::pem_slice_iter(ca.map(Vec::as_slice).unwrap_or(&[])) {
                    let c = c.map_err(|e| invalid(format!("client CA: {e}")))?;
                    roots
                        .add(c)
                        .map_err(|e| invalid(format!("client CA: {e}")))?;
                }
                if roots.is_empty() {
                    return Err(invalid("client CA: no certificate found"));
                }
                let mut b =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
                if self.client_auth == ClientAuth::VerifyClientCertIfGiven {
                    b = b.allow_unauthenticated();
                }
                Some(b.build().map_err(|e| invalid(format!("client CA: {e}")))?)
            }
        };
        let verifier = match (verifier, &self.allowed_sans) {
            (Some(v), Some(sans)) => Some(Arc::new(AllowedSans {
                inner: v,
                sans: sans.iter().cloned().collect(),
            }) as Arc<dyn ClientCertVerifier>),
            (v, _) => v,
        };
        let builder = match verifier {
            Some(v) => builder.with_client_cert_verifier(v),
            None => builder.with_no_client_auth(),
        };
        let signing_key = provider
            .key_provider
            .load_private_key(key.clone_key())
            .map_err(|e| invalid(format!("failed to load X509KeyPair: private key: {e}")))?;
        rustls::sign::CertifiedKey::new(certs.clone(), signing_key)
            .keys_match()
            .map_err(|e| {
                invalid(format!(
                    "failed to load X509KeyPair: private key does not match public key ({e})"
                ))
            })?;
        let mut cfg = builder
            .with_single_cert(certs, key)
            .map_err(|e| invalid(format!("failed to load X509KeyPair: {e}")))?;
        cfg.ignore_client_order = self.prefer_server_order;
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(cfg))
    }
}

/// RequestClientCert / RequireAnyClientCert: a certificate is asked for (and, when
/// mandatory, required) but not chained to a CA; the handshake signature is still checked.
#[derive(Debug)]
struct AnyClientCert {
    provider: Arc<CryptoProvider>,
    mandatory: bool,
}

impl ClientCertVerifier for AnyClientCert {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }
    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// `client_allowed_sans`: after the inner verifier accepts, the client certificate must
/// carry one of the listed DNS, e-mail, IP or URI SANs (exact match). A certificate is
/// then required.
#[derive(Debug)]
struct AllowedSans {
    inner: Arc<dyn ClientCertVerifier>,
    sans: HashSet<String>,
}

impl ClientCertVerifier for AllowedSans {
    fn offer_client_auth(&self) -> bool {
        true
    }
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }
    fn client_auth_mandatory(&self) -> bool {
        true
    }
    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let ok = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        let names = subject_alt_names(end_entity.as_ref()).ok_or_else(|| {
            rustls::Error::General("error parsing client certificate's SANs".into())
        })?;
        if names.iter().any(|n| self.sans.contains(n)) {
            Ok(ok)
        } else {
            Err(rustls::Error::General(format!(
                "could not find allowed SANs in client cert, found: {names:?}"
            )))
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// One DER element: (tag, content, rest).
fn der(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | *b as usize);
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// The DNS, e-mail, IP and URI subject alternative names of a DER certificate, as strings
/// (IP addresses in Go's textual form). `None` when the certificate cannot be parsed.
pub fn subject_alt_names(cert: &[u8]) -> Option<Vec<String>> {
    const SAN_OID: &[u8] = &[0x55, 0x1d, 0x11];
    let (_, cert, _) = der(cert)?;
    let (_, mut tbs, _) = der(cert)?;
    let mut out = Vec::new();
    while !tbs.is_empty() {
        let (tag, content, rest) = der(tbs)?;
        tbs = rest;
        if tag != 0xa3 {
            continue;
        }
        let (_, mut exts, _) = der(content)?;
        while !exts.is_empty() {
            let (_, ext, rest) = der(exts)?;
            exts = rest;
            let (_, oid, mut fields) = der(ext)?;
            if oid != SAN_OID {
                continue;
            }
            let mut value = None;
            while !fields.is_empty() {
                let (tag, content, rest) = der(fields)?;
                fields = rest;
                if tag == 0x04 {
                    value = Some(content);
                }
            }
            let (_, mut names, _) = der(value?)?;
            while !names.is_empty() {
                let (tag, content, rest) = der(names)?;
                names = rest;
                match tag {
                    0x81 | 0x82 | 0x86 => out.push(String::from_utf8_lossy(content).into_owned()),
                    0x87 => match content.len() {
                        4 => out.push(
                            std::net::Ipv4Addr::from(<[u8; 4]>::try_from(content).ok()?)
                                .to_string(),
                        ),
                        16 => out.push(
                            std::net::Ipv6Addr::from(<[u8; 16]>::try_from(content).ok()?)
                                .to_string(),
                        ),
                        _ => {}
                    },
                    _ => {}
                }
            }
        }
    }
    Some(out)
}

// ---------------------------------------------------------------------------------------
// The whole file, validated.

/// The per-request part of a web configuration: response headers and users.
#[derive(Debug, Clone, Default)]
pub struct RequestSettings {
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// user → bcrypt hash.
    pub users: BTreeMap<String, String>,
}

/// A parsed and validated web configuration file.
#[derive(Debug, Clone)]
pub struct WebConfig {
    pub path: PathBuf,
    pub tls: Option<TlsSettings>,
    pub request: RequestSettings,
    /// `rate_limit`: (interval between requests, burst); `None`: off.
    pub rate_limit: Option<(Duration, u32)>,
    /// `http_server_config.http2` (HTTP/2 is not served; accepted for compatibility).
    pub http2: bool,
}

fn validate_headers(
    headers: &BTreeMap<String, String>,
) -> Result<Vec<(HeaderName, HeaderValue)>, WebConfigError> {
    let mut out = Vec::new();
    for (k, v) in headers {
        let Some((_, allowed)) = ALLOWED_HEADERS.iter().find(|(n, _)| n == k) else {
            return Err(invalid(format!("HTTP header {k:?} can not be configured")));
        };
        if !allowed.is_empty() && !allowed.contains(&v.as_str()) {
            return Err(invalid(format!(
                "invalid value for {k}. Expected one of: {allowed:?}, but got: {v:?}"
            )));
        }
        if v.is_empty() {
            continue;
        }
        let name = HeaderName::from_bytes(k.as_bytes()).map_err(|e| invalid(e.to_string()))?;
        let value = HeaderValue::from_str(v)
            .map_err(|_| invalid(format!("invalid value for {k}: not a valid header value")))?;
        out.push((name, value));
    }
    Ok(out)
}

fn validate_hash(user: &str, hash: &str) -> Result<(), WebConfigError> {
    // What Go's bcrypt.Cost accepts: $2a$/$2b$/$2x$/$2y$, a two-digit cost 4..=31, then
    // 53 characters of salt and hash.
    let b = hash.as_bytes();
    if b.len() < 59 {
        return Err(invalid(format!(
            "basic_auth_users: {user}: crypto/bcrypt: hashedSecret too short to be a bcrypted password"
        )));
    }
    if b[0] != b'$' || b[1] != b'2' {
        return Err(invalid(format!(
            "basic_auth_users: {user}: crypto/bcrypt: bcrypt algorithm version '{}' requested is newer than current version '2'",
            String::from_utf8_lossy(&b[1..2])
        )));
    }
    if hash.parse::<bcrypt::HashParts>().is_err() {
        return Err(invalid(format!(
            "basic_auth_users: {user}: not a bcrypt hash (expected $2y$10$... as made by `htpasswd -nBC 10`)"
        )));
    }
    Ok(())
}

impl WebConfig {
    /// Reads and validates a file, including its certificates and keys.
    pub fn load(path: &Path) -> Result<WebConfig, WebConfigError> {
        let content = std::fs::read_to_string(path).map_err(|e| WebConfigError::Read {
            path: path.to_path_buf(),
            source: e,
        })?;
        let c = WebConfig::parse(path, &content)?;
        if let Some(tls) = &c.tls {
            tls.build(&tls.read_inputs()?)?;
        }
        Ok(c)
    }

    /// Parses and validates `content` (as if read from `path`) without reading other files.
    pub fn parse(path: &Path, content: &str) -> Result<WebConfig, WebConfigError> {
        let f = parse_file(content)?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let tls = TlsSettings::from_file(&f.tls_server_config, dir)?;
        let headers = validate_headers(&f.http_server_config.headers)?;
        for (user, hash) in &f.basic_auth_users {
            validate_hash(user, hash)?;
        }
        let interval = match f.rate_limit.interval {
            None => Duration::ZERO,
            Some(GoDuration::Nanos(n)) => Duration::from_nanos(n),
            Some(GoDuration::Text(s)) => parse_go_duration(&s)
                .ok_or_else(|| invalid(format!("rate_limit.interval: invalid duration {s:?}")))?,
        };
        Ok(WebConfig {
            path: path.to_path_buf(),
            tls,
            request: RequestSettings {
                headers,
                users: f.basic_auth_users,
            },
            rate_limit: (!interval.is_zero()).then_some((interval, f.rate_limit.burst)),
            http2: f.http_server_config.http2.unwrap_or(true),
        })
    }
}

// ---------------------------------------------------------------------------------------
// At run time.

/// A token bucket like Go's `rate.NewLimiter(rate.Every(interval), burst)`: starts full.
#[derive(Debug)]
pub struct RateLimiter {
    interval: Duration,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl RateLimiter {
    pub fn new(interval: Duration, burst: u32) -> RateLimiter {
        RateLimiter {
            interval,
            burst: burst as f64,
            state: Mutex::new((burst as f64, Instant::now())),
        }
    }

    /// Takes a token if there is one.
    pub fn allow(&self) -> bool {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let refill = now.duration_since(s.1).as_secs_f64() / self.interval.as_secs_f64();
        s.0 = (s.0 + refill).min(self.burst);
        s.1 = now;
        if s.0 >= 1.0 {
            s.0 -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Outcome of a basic-auth check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthResult {
    Allowed,
    Denied,
    /// Too many bcrypt checks queued.
    Busy,
}

/// Checks basic-auth credentials: bcrypt runs on the blocking pool, one at a time (it is
/// CPU-bound by design), and successes are cached so repeated scrapes pay it once.
#[derive(Debug)]
pub struct Authenticator {
    cache: Mutex<HashSet<[u8; 32]>>,
    compute: Semaphore,
    queue: Semaphore,
}

impl Default for Authenticator {
    fn default() -> Self {
        Authenticator {
            cache: Mutex::new(HashSet::new()),
            compute: Semaphore::new(1),
            queue: Semaphore::new(BCRYPT_QUEUE),
        }
    }
}

fn cache_key(user: &str, hash: &str, password: &str) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for part in [user, hash, password] {
        ctx.update(&(part.len() as u64).to_be_bytes());
        ctx.update(part.as_bytes());
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

impl Authenticator {
    /// Checks `user`/`password` against `users`. Unknown users cost a bcrypt check too (on
    /// the costliest configured hash), so timing does not reveal which users exist.
    pub async fn check(
        &self,
        users: &BTreeMap<String, String>,
        user: &str,
        password: &str,
    ) -> AuthResult {
        let (hash, known) = match users.get(user) {
            Some(h) => (h.clone(), true),
            None => match users
                .values()
                .max_by_key(|h| h.get(4..6).and_then(|c| c.parse::<u32>().ok()))
            {
                Some(h) => (h.clone(), false),
                None => return AuthResult::Denied,
            },
        };
        let key = cache_key(user, &hash, password);
        if known && self.lock_cache().contains(&key) {
            return AuthResult::Allowed;
        }
        let Ok(_queued) = self.queue.try_acquire() else {
            return AuthResult::Busy;
        };
        let Ok(_computing) = self.compute.acquire().await else {
            return AuthResult::Busy;
        };
        let password = password.to_string();
        let matched = tokio::task::spawn_blocking(move || {
            bcrypt::verify(password.as_bytes(), &hash).unwrap_or(false)
        })
        .await
        .unwrap_or(false);
        if known && matched {
            let mut cache = self.lock_cache();
            if cache.len() >= AUTH_CACHE_SIZE {
                cache.clear();
            }
            cache.insert(key);
            AuthResult::Allowed
        } else {
            AuthResult::Denied
        }
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, HashSet<[u8; 32]>> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The last TLS configuration built: (config file bytes, PEM inputs, result).
type CachedTls = (Vec<u8>, Vec<Vec<u8>>, Arc<ServerConfig>);

/// The web configuration while serving: re-reads the file per request and per connection,
/// reusing the parsed result while the bytes are unchanged.
#[derive(Debug)]
pub struct WebConfigRuntime {
    path: PathBuf,
    /// Whether TLS was configured at start (as in the toolkit, this is fixed until restart).
    tls_enabled: bool,
    limiter: Option<RateLimiter>,
    auth: Authenticator,
    requests: Mutex<Option<(Vec<u8>, Arc<RequestSettings>)>>,
    tls: Mutex<Option<CachedTls>>,
}

impl WebConfigRuntime {
    /// Loads and fully validates the file; errors are meant to stop the exporter at start.
    pub fn load(path: &Path) -> Result<Arc<WebConfigRuntime>, WebConfigError> {
        let c = WebConfig::load(path)?;
        if c.http2 && c.tls.is_some() {
            tracing::info!("http_server_config.http2 is true, but only HTTP/1.1 is served");
        }
        Ok(Arc::new(WebConfigRuntime {
            path: path.to_path_buf(),
            tls_enabled: c.tls.is_some(),
            limiter: c.rate_limit.map(|(i, b)| RateLimiter::new(i, b)),
            auth: Authenticator::default(),
            requests: Mutex::new(None),
            tls: Mutex::new(None),
        }))
    }

    /// Whether connections are TLS.
    pub fn tls_enabled(&self) -> bool {
        self.tls_enabled
    }

    fn read(&self) -> Result<Vec<u8>, WebConfigError> {
        std::fs::read(&self.path).map_err(|e| WebConfigError::Read {
            path: self.path.clone(),
            source: e,
        })
    }

    /// The current per-request settings.
    pub fn request_settings(&self) -> Result<Arc<RequestSettings>, WebConfigError> {
        let bytes = self.read()?;
        let mut cached = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((b, s)) = cached.as_ref() {
            if *b == bytes {
                return Ok(s.clone());
            }
        }
        let c = WebConfig::parse(&self.path, &String::from_utf8_lossy(&bytes))?;
        let s = Arc::new(c.request);
        *cached = Some((bytes, s.clone()));
        Ok(s)
    }

    /// The TLS configuration for a new connection, from the current file and certificates.
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, WebConfigError> {
        let bytes = self.read()?;
        let c = WebConfig::parse(&self.path, &String::from_utf8_lossy(&bytes))?;
        let tls = c
            .tls
            .ok_or_else(|| invalid("TLS config is not present (it was at start)"))?;
        let inputs = tls.read_inputs()?;
        let mut cached = self.tls.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((b, i, cfg)) = cached.as_ref() {
            if *b == bytes && *i == inputs {
                return Ok(cfg.clone());
            }
        }
        let cfg = tls.build(&inputs)?;
        *cached = Some((bytes, inputs, cfg.clone()));
        Ok(cfg)
    }

    /// Wraps `router` with the per-request part: rate limit, headers, basic auth.
    pub fn layer(self: &Arc<Self>, router: axum::Router) -> axum::Router {
        router.layer(axum::middleware::from_fn_with_state(
            self.clone(),
            middleware,
        ))
    }
}

fn basic_auth(headers: &HeaderMap) -> Option<(String, String)> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64_decode(rest.trim())?;
    let s = String::from_utf8(decoded).ok()?;
    let (u, p) = s.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let s = s.as_bytes();
    if !s.len().is_multiple_of(4) || s.len() > 16 * 1024 {
        return None;
    }
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    for chunk in s.chunks(4) {
        let pad = chunk.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || chunk[..4 - pad].contains(&b'=') {
            return None;
        }
        let mut n = 0u32;
        for &c in &chunk[..4 - pad] {
            n = (n << 6) | val(c)?;
        }
        n <<= 6 * pad as u32;
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..4 - pad]);
    }
    Some(out)
}

async fn middleware(State(rt): State<Arc<WebConfigRuntime>>, req: Request, next: Next) -> Response {
    let settings = match rt.request_settings() {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, path = %rt.path.display(), "unable to parse the web configuration");
            return (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error\n").into_response();
        }
    };
    if let Some(l) = &rt.limiter {
        if !l.allow() {
            return (StatusCode::TOO_MANY_REQUESTS, "Too Many Requests\n").into_response();
        }
    }
    let mut resp = if settings.users.is_empty() {
        next.run(req).await
    } else {
        let result = match basic_auth(req.headers()) {
            Some((u, p)) => rt.auth.check(&settings.users, &u, &p).await,
            None => AuthResult::Denied,
        };
        match result {
            AuthResult::Allowed => next.run(req).await,
            AuthResult::Denied => (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Basic")],
                "Unauthorized\n",
            )
                .into_response(),
            AuthResult::Busy => (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::RETRY_AFTER, "1")],
                "too many authentication checks in progress\n",
            )
                .into_response(),
        }
    };
    for (k, v) in &settings.headers {
        resp.headers_mut().insert(k.clone(), v.clone());
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("1s"), Some(Duration::from_secs(1)));
        assert_eq!(parse_go_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_go_duration("1.5h"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_go_duration("0"), Some(Duration::ZERO));
        assert_eq!(parse_go_duration("5"), None);
        assert_eq!(parse_go_duration("1d"), None);
        assert_eq!(parse_go_duration("-1s"), None);
    }

    #[test]
    fn yaml_errors_do_not_echo_values() {
        let e = parse_file("hunter2-secret").unwrap_err().to_string();
        assert!(!e.contains("hunter2"), "{e}");
        assert!(e.contains("value hidden"), "{e}");
        let e = parse_file("foo: 1").unwrap_err().to_string();
        assert!(e.contains("foo"), "{e}");
    }

    #[test]
    fn base64_roundtrip() {
        assert_eq!(base64_decode("YWxpY2U6cHc=").unwrap(), b"alice:pw");
        assert_eq!(base64_decode("YWI=").unwrap(), b"ab");
        assert_eq!(base64_decode("YWJj").unwrap(), b"abc");
        assert!(base64_decode("YW=j").is_none());
        assert!(base64_decode("Y").is_none());
    }

    #[test]
    fn rate_limiter_bursts_then_refills() {
        let l = RateLimiter::new(Duration::from_millis(50), 2);
        assert!(l.allow());
        assert!(l.allow());
        assert!(!l.allow());
        std::thread::sleep(Duration::from_millis(60));
        assert!(l.allow());
        let zero = RateLimiter::new(Duration::from_secs(1), 0);
        assert!(!zero.allow());
    }

    #[test]
    fn headers_are_restricted() {
        let mut h = BTreeMap::new();
        h.insert("X-Frame-Options".to_string(), "deny".to_string());
        assert_eq!(validate_headers(&h).unwrap().len(), 1);
        h.insert("X-Frame-Options".to_string(), "DENY".to_string());
        assert!(validate_headers(&h).is_err());
        let mut h = BTreeMap::new();
        h.insert("Server".to_string(), "x".to_string());
        assert!(validate_headers(&h)
            .unwrap_err()
            .to_string()
            .contains("can not be configured"));
    }
}
