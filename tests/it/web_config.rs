//! `--web.config.file` conformance: every file in tests/testdata/web-config is accepted or
//! refused as its name says, agrees with `promtool check web-config` (Prometheus 2.42)
//! except where documented, and the served endpoint behaves as the exporter-toolkit's:
//! TLS, certificate rotation without restart, mutual TLS with allowed SANs, bcrypt basic
//! auth re-read per request, extra headers, rate limit.
//!
//! File name suffixes: `.good.yml` both accept; `.bad.yml` both refuse; `.refused.yml`
//! promtool accepts, this exporter refuses (rustls cannot honour it); `.newer.yml` this
//! exporter accepts, promtool 2.42 refuses (keys from a newer exporter-toolkit).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::*;
use axum::routing::get;
use axum::Router;
use bitbucket_zdu_exporter::server::{self, ServeOptions};
use bitbucket_zdu_exporter::web::{
    AuthResult, Authenticator, WebConfigError, WebConfigRuntime, WebSettings,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testdata/web-config")
}

fn fixtures(suffix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(testdata())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    v.sort();
    assert!(!v.is_empty(), "no {suffix} fixtures");
    v
}

fn provider() {
    bitbucket_zdu_exporter::client::install_crypto_provider();
}

#[test]
fn good_and_newer_files_are_accepted() {
    provider();
    for f in fixtures(".good.yml")
        .into_iter()
        .chain(fixtures(".newer.yml"))
    {
        if let Err(e) = WebSettings::load(&f) {
            panic!("{} refused: {e}", f.display());
        }
    }
}

/// Each bad file and the meaning of the error it must give (as the toolkit's).
const BAD: &[(&str, &str)] = &[
    ("cert_file_absent", "failed to read cert_file"),
    ("cert_missing", "missing one of cert or cert_file"),
    ("cipher_unknown", "unknown cipher: TLS_INVENTED_CIPHER"),
    (
        "client_auth_invalid",
        "invalid ClientAuth: RequireSomething",
    ),
    ("client_ca_absent", "failed to read client_ca_file"),
    ("client_ca_without_auth", "without a Client Auth Policy"),
    ("curve_unknown", "unknown curve: CurveP999"),
    (
        "header_content_type_options",
        "invalid value for X-Content-Type-Options",
    ),
    ("header_frame_options", "invalid value for X-Frame-Options"),
    ("header_not_allowed", "\"Server\" can not be configured"),
    ("junk", ""),
    ("key_mismatch", "does not match"),
    ("key_missing", "missing one of key or key_file"),
    ("tls_version_unknown", "unknown TLS version: TLS14"),
    // A typo of a valid key is named (src/secret/unknown_key.rs); any other key found in the
    // file is not echoed (it may be part of a secret given by mistake).
    (
        "unknown_key",
        "unknown field `cert_flie` (did you mean `cert_file`?), expected one of `cert`",
    ),
    ("unknown_top_key", "basic_auth"),
    ("users_not_map", ""),
    ("users_plaintext", "hashedSecret too short"),
    ("users_short_hash", "hashedSecret too short"),
];

#[test]
fn bad_files_are_refused_with_the_toolkits_message() {
    provider();
    let files = fixtures(".bad.yml");
    assert_eq!(
        files.len(),
        BAD.len(),
        "every bad fixture needs a row in BAD"
    );
    for (name, want) in BAD {
        let f = testdata().join(format!("{name}.bad.yml"));
        match WebSettings::load(&f) {
            Ok(_) => panic!("{name} accepted"),
            Err(WebConfigError::Unsupported(e)) => panic!("{name}: bad, not unsupported: {e}"),
            Err(e) => assert!(
                e.to_string().contains(want),
                "{name}: error {e:?} lacks {want:?}"
            ),
        }
    }
}

#[test]
fn values_rustls_cannot_honour_are_refused_clearly() {
    provider();
    let expect = [
        ("cipher_cbc", "CBC"),
        ("curve_p521", "P-521"),
        ("tls10", "TLS 1.0 and 1.1"),
        ("tls11_max", "max_version TLS11"),
        ("verify_without_ca", "client_ca_file"),
    ];
    assert_eq!(fixtures(".refused.yml").len(), expect.len());
    for (name, want) in expect {
        let f = testdata().join(format!("{name}.refused.yml"));
        match WebSettings::load(&f) {
            Err(e @ WebConfigError::Unsupported(_)) => {
                let msg = e.to_string();
                assert!(msg.contains(want), "{name}: {msg}");
                assert!(msg.contains("rustls"), "{name}: {msg}");
            }
            other => panic!("{name}: expected Unsupported, got {other:?}"),
        }
    }
}

#[test]
fn promtool_agrees_except_where_documented() {
    let check = |f: &Path| promtool_run(&["check".as_ref(), "web-config".as_ref(), f.as_os_str()]);
    for f in fixtures(".good.yml") {
        let (ok, out) = check(&f);
        assert!(ok, "promtool refuses good {}: {out}", f.display());
    }
    for f in fixtures(".bad.yml") {
        let (ok, out) = check(&f);
        assert!(!ok, "promtool accepts bad {}: {out}", f.display());
    }
    // Disagreement 1: the toolkit accepts these, rustls cannot honour them.
    for f in fixtures(".refused.yml") {
        let (ok, out) = check(&f);
        assert!(ok, "promtool refuses {}: {out}", f.display());
    }
    // Disagreement 2: promtool 2.42 bundles exporter-toolkit v0.8.x, which predates
    // rate_limit, client_allowed_sans and inline cert/key; newer toolkits accept them.
    for f in fixtures(".newer.yml") {
        let (ok, out) = check(&f);
        assert!(
            !ok,
            "promtool now accepts {}: move it to .good",
            f.display()
        );
        assert!(out.contains("not found in type"), "{}: {out}", f.display());
    }
}

#[test]
fn the_binary_refuses_bad_files_at_start() {
    for (file, want) in [
        ("tls10.refused.yml", "TLS 1.0 and 1.1"),
        ("header_not_allowed.bad.yml", "can not be configured"),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_bitbucket-zdu-exporter"))
            .args([
                "--bitbucket.url",
                "http://127.0.0.1:9/",
                "--web.listen-address",
                "127.0.0.1:0",
                "--web.config.file",
            ])
            .arg(testdata().join(file))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{file}: started");
        assert!(err.contains(want), "{file}: {err}");
        assert!(err.contains("--web.config.file"), "{file}: {err}");
    }
}

mod served;
