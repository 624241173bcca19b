//! `tls_server_config`: validation against the exporter-toolkit's rules (Go's names for
//! versions, cipher suites and curves) and the builder of the rustls `ServerConfig`, with
//! the ring provider only.

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{CipherSuite, NamedGroup, ServerConfig};

use super::client_auth::{self, ClientAuth};
use super::tls_file::{FileTls, Source};
use super::{invalid, WebConfigError};

/// The validated `tls_server_config`.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    cert: Source,
    key: Source,
    client_ca: Option<Source>,
    /// `client_auth_type`.
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

/// Refuses TLS 1.0/1.1 (rustls has neither) and an empty version range.
fn check_versions(min: u8, max: u8) -> Result<(), WebConfigError> {
    if min < 12 || max < 12 {
        let (which, v) = if min < 12 {
            ("min_version", min)
        } else {
            ("max_version", max)
        };
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
    Ok(())
}

/// `cipher_suites` → the TLS 1.2 suites in the order given (TLS 1.3 names are ignored, as
/// in Go, where they are not configurable).
fn cipher_suites(names: &[String]) -> Result<Vec<CipherSuite>, WebConfigError> {
    let mut out = Vec::new();
    for name in names {
        if let Some((_, s)) = GO_TLS12_SUITES.iter().find(|(n, _)| n == name) {
            out.push(*s);
        } else if GO_TLS13_SUITES.contains(&name.as_str()) {
            // Not configurable in Go; ignored here too.
        } else if GO_CBC_SUITES.contains(&name.as_str()) {
            return Err(WebConfigError::Unsupported(format!(
                "cipher suite {name} in cipher_suites: CBC suites are not implemented; use the ECDHE GCM or CHACHA20_POLY1305 suites"
            )));
        } else {
            return Err(invalid(format!("unknown cipher: {name}")));
        }
    }
    Ok(out)
}

/// `curve_preferences` → key-exchange groups.
fn curves(names: &[String]) -> Result<Vec<NamedGroup>, WebConfigError> {
    names
        .iter()
        .map(|name| match name.as_str() {
            "X25519" => Ok(NamedGroup::X25519),
            "CurveP256" => Ok(NamedGroup::secp256r1),
            "CurveP384" => Ok(NamedGroup::secp384r1),
            "CurveP521" => Err(WebConfigError::Unsupported(
                "curve CurveP521 in curve_preferences: P-521 key exchange is not available; use X25519, CurveP256 or CurveP384".into(),
            )),
            other => Err(invalid(format!("unknown curve: {other}"))),
        })
        .collect()
}

fn is_configured(t: &FileTls) -> bool {
    !(t.cert.is_empty()
        && t.cert_file.is_empty()
        && t.key.is_empty()
        && t.key_file.is_empty()
        && t.client_ca.is_empty()
        && t.client_ca_file.is_empty()
        && t.client_auth_type.is_empty())
}

impl TlsSettings {
    /// Validates the section without reading any file. `Ok(None)`: TLS is not configured.
    pub(crate) fn from_file(
        t: &FileTls,
        dir: &Path,
    ) -> Result<Option<TlsSettings>, WebConfigError> {
        // Key-by-key checks that the toolkit does while unmarshalling come first.
        let min = tls_version("min_version", &t.min_version, 12)?;
        let max = tls_version("max_version", &t.max_version, 13)?;
        let tls12_suites = cipher_suites(&t.cipher_suites)?;
        let curves = curves(&t.curve_preferences)?;
        let client_auth = ClientAuth::from_go_name(&t.client_auth_type)?;
        if !is_configured(t) {
            return Ok(None);
        }
        let cert = Source::pick(&t.cert, &t.cert_file, dir)
            .ok_or_else(|| invalid("missing one of cert or cert_file"))?;
        let key = Source::pick(&t.key, &t.key_file, dir)
            .ok_or_else(|| invalid("missing one of key or key_file"))?;
        let client_ca = Source::pick(&t.client_ca, &t.client_ca_file, dir);
        client_auth.check_ca(client_ca.is_some(), &t.client_auth_type)?;
        check_versions(min, max)?;
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
    pub(crate) fn read_inputs(&self) -> Result<Vec<Vec<u8>>, WebConfigError> {
        let mut v = vec![self.cert.read("cert_file")?, self.key.read("key_file")?];
        if let Some(ca) = &self.client_ca {
            v.push(ca.read("client_ca_file")?);
        }
        Ok(v)
    }

    /// The ring provider with the configured cipher suites and curves, in their order.
    fn provider(&self) -> CryptoProvider {
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
        provider
    }

    /// Builds the rustls configuration from the PEM inputs of [`Self::read_inputs`].
    pub(crate) fn build(&self, inputs: &[Vec<u8>]) -> Result<Arc<ServerConfig>, WebConfigError> {
        let (certs, key) = key_pair(&inputs[0], &inputs[1])?;
        let provider = Arc::new(self.provider());
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
        let ca = self.client_ca.as_ref().map(|_| inputs[2].as_slice());
        let verifier = client_auth::verifier(
            self.client_auth,
            ca,
            self.allowed_sans.as_deref(),
            &provider,
        )?;
        let builder = match verifier {
            Some(v) => builder.with_client_cert_verifier(v),
            None => builder.with_no_client_auth(),
        };
        check_key_matches(&provider, &certs, &key)?;
        let mut cfg = builder
            .with_single_cert(certs, key)
            .map_err(|e| invalid(format!("failed to load X509KeyPair: {e}")))?;
        cfg.ignore_client_order = self.prefer_server_order;
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(cfg))
    }
}

type KeyPair = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

/// The certificate chain and private key, from PEM (Go's `tls.X509KeyPair`).
fn key_pair(cert_pem: &[u8], key_pem: &[u8]) -> Result<KeyPair, WebConfigError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| invalid(format!("failed to load X509KeyPair: certificate: {e}")))?;
    if certs.is_empty() {
        return Err(invalid(
            "failed to load X509KeyPair: no certificate found in cert/cert_file",
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| invalid(format!("failed to load X509KeyPair: private key: {e}")))?;
    Ok((certs, key))
}

/// Refuses a key that is not the certificate's, as Go's `tls.X509KeyPair` does.
fn check_key_matches(
    provider: &CryptoProvider,
    certs: &[CertificateDer<'static>],
    key: &PrivateKeyDer<'static>,
) -> Result<(), WebConfigError> {
    let signing_key = provider
        .key_provider
        .load_private_key(key.clone_key())
        .map_err(|e| invalid(format!("failed to load X509KeyPair: private key: {e}")))?;
    rustls::sign::CertifiedKey::new(certs.to_vec(), signing_key)
        .keys_match()
        .map_err(|e| {
            invalid(format!(
                "failed to load X509KeyPair: private key does not match public key ({e})"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_names_map_to_rustls() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            cipher_suites(&names(&[
                "TLS_AES_128_GCM_SHA256",
                "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"
            ]))
            .unwrap(),
            [CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384]
        );
        assert!(matches!(
            cipher_suites(&names(&["TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"])),
            Err(WebConfigError::Unsupported(_))
        ));
        assert_eq!(
            curves(&names(&["CurveP384", "X25519"])).unwrap(),
            [NamedGroup::secp384r1, NamedGroup::X25519]
        );
        assert!(check_versions(12, 13).is_ok());
        assert!(check_versions(13, 12).is_err());
        assert!(matches!(
            check_versions(10, 13),
            Err(WebConfigError::Unsupported(_))
        ));
    }
}
