//! Client certificates (`client_auth_type`, `client_ca_file`, `client_allowed_sans`): Go's
//! `tls.ClientAuthType` policies as rustls verifiers, and the allowed-SAN check on top,
//! with the SANs read by `x509-parser`.

use std::collections::HashSet;
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use x509_parser::extensions::GeneralName;

use super::{invalid, WebConfigError};

/// How client certificates are handled (Go's `tls.ClientAuthType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// No certificate is asked for (the default).
    NoClientCert,
    /// A certificate is asked for, not required, not verified.
    RequestClientCert,
    /// A certificate is required but not verified against a CA.
    RequireAnyClientCert,
    /// A certificate, if sent, must chain to the client CA.
    VerifyClientCertIfGiven,
    /// A certificate is required and must chain to the client CA.
    RequireAndVerifyClientCert,
}

impl ClientAuth {
    /// Parses Go's name (`""` is `NoClientCert`; `RequireClientCert` is the toolkit's alias
    /// of `RequireAnyClientCert`).
    pub fn from_go_name(name: &str) -> Result<ClientAuth, WebConfigError> {
        Ok(match name {
            "" | "NoClientCert" => ClientAuth::NoClientCert,
            "RequestClientCert" => ClientAuth::RequestClientCert,
            "RequireAnyClientCert" | "RequireClientCert" => ClientAuth::RequireAnyClientCert,
            "VerifyClientCertIfGiven" => ClientAuth::VerifyClientCertIfGiven,
            "RequireAndVerifyClientCert" => ClientAuth::RequireAndVerifyClientCert,
            other => return Err(invalid(format!("invalid ClientAuth: {other}"))),
        })
    }

    fn verifies(self) -> bool {
        matches!(
            self,
            ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert
        )
    }

    /// Checks the policy against whether a client CA is configured (`name`: as written).
    pub(crate) fn check_ca(self, has_ca: bool, name: &str) -> Result<(), WebConfigError> {
        if has_ca && self == ClientAuth::NoClientCert {
            return Err(invalid(
                "client CA's have been configured without a Client Auth Policy (set client_auth_type)",
            ));
        }
        if !has_ca && self.verifies() {
            return Err(WebConfigError::Unsupported(format!(
                "client_auth_type {name} without client_ca_file or client_ca: verifying client certificates against the system roots is not supported; name the CA that signs your scrapers' certificates"
            )));
        }
        Ok(())
    }
}

/// The verifier for `policy` (`None`: no client certificates), chaining to the CA
/// certificates in `ca_pem`, wrapped in the allowed-SAN check when `allowed_sans` is set.
pub(crate) fn verifier(
    policy: ClientAuth,
    ca_pem: Option<&[u8]>,
    allowed_sans: Option<&[String]>,
    provider: &Arc<CryptoProvider>,
) -> Result<Option<Arc<dyn ClientCertVerifier>>, WebConfigError> {
    let inner: Arc<dyn ClientCertVerifier> = match policy {
        ClientAuth::NoClientCert => return Ok(None),
        ClientAuth::RequestClientCert | ClientAuth::RequireAnyClientCert => {
            Arc::new(AnyClientCert {
                provider: provider.clone(),
                mandatory: policy == ClientAuth::RequireAnyClientCert,
            })
        }
        ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert => {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_slice_iter(ca_pem.unwrap_or(&[])) {
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
            if policy == ClientAuth::VerifyClientCertIfGiven {
                b = b.allow_unauthenticated();
            }
            b.build().map_err(|e| invalid(format!("client CA: {e}")))?
        }
    };
    Ok(Some(match allowed_sans {
        Some(sans) => Arc::new(AllowedSans {
            inner,
            sans: sans.iter().cloned().collect(),
        }),
        None => inner,
    }))
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
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
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
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The DNS, e-mail, IP and URI subject alternative names of a DER certificate, as strings
/// (IP addresses in Go's textual form). `None` when the certificate cannot be parsed.
pub fn subject_alt_names(cert: &[u8]) -> Option<Vec<String>> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert).ok()?;
    let Some(san) = cert.subject_alternative_name().ok()? else {
        return Some(Vec::new());
    };
    let mut out = Vec::new();
    for name in &san.value.general_names {
        match name {
            GeneralName::RFC822Name(s) | GeneralName::DNSName(s) | GeneralName::URI(s) => {
                out.push(s.to_string())
            }
            GeneralName::IPAddress(ip) => {
                if let Ok(v4) = <[u8; 4]>::try_from(*ip) {
                    out.push(std::net::Ipv4Addr::from(v4).to_string());
                } else if let Ok(v6) = <[u8; 16]>::try_from(*ip) {
                    out.push(std::net::Ipv6Addr::from(v6).to_string());
                }
            }
            _ => {}
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_policy_names() {
        assert_eq!(
            ClientAuth::from_go_name("RequireClientCert").unwrap(),
            ClientAuth::RequireAnyClientCert
        );
        assert_eq!(
            ClientAuth::from_go_name("").unwrap(),
            ClientAuth::NoClientCert
        );
        assert!(ClientAuth::from_go_name("requireandverifyclientcert").is_err());
        assert!(ClientAuth::NoClientCert.check_ca(true, "").is_err());
        assert!(matches!(
            ClientAuth::RequireAndVerifyClientCert.check_ca(false, "RequireAndVerifyClientCert"),
            Err(WebConfigError::Unsupported(_))
        ));
        assert!(ClientAuth::RequestClientCert.check_ca(false, "").is_ok());
    }

    #[test]
    fn sans_of_a_certificate() {
        let mut params = rcgen::CertificateParams::new(vec!["client.example".to_string()]).unwrap();
        params.subject_alt_names.extend([
            rcgen::SanType::Rfc822Name("scraper@example.com".try_into().unwrap()),
            rcgen::SanType::URI("spiffe://example/prometheus".try_into().unwrap()),
            rcgen::SanType::IpAddress("10.0.0.1".parse().unwrap()),
            rcgen::SanType::IpAddress("2001:db8::1".parse().unwrap()),
        ]);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let mut names = subject_alt_names(cert.der()).unwrap();
        names.sort();
        assert_eq!(
            names,
            [
                "10.0.0.1",
                "2001:db8::1",
                "client.example",
                "scraper@example.com",
                "spiffe://example/prometheus"
            ]
        );
        assert_eq!(subject_alt_names(b"\x30\x03\x02\x01"), None);
    }
}
