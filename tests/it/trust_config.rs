//! Configuration trust boundaries (issue 18 items 14 and 15, and the typo messages): the
//! routes the exporter serves are reserved, target names that URLs normalise away or that
//! are unbounded are refused.

use crate::common::*;

fn check(args: &[&str]) -> (Option<i32>, String) {
    let out = run_bin(args, &[]);
    (out.status.code(), output_text(&out))
}

/// Item 14: `--web.telemetry-path=/upgrade` (or `/api/v1/targets`) passed `--config.check`,
/// then the exporter panicked at start (exit 101).
#[test]
fn a_telemetry_path_on_a_served_route_is_a_config_error() {
    for path in [
        "/upgrade",
        "/upgrade/",
        "/api/v1/targets",
        "/api/v1/targets/x/upgrade",
        "/",
        "/-/anything",
        "/-/static/upgrade.js",
        "/{name}",
        "/*rest",
    ] {
        let flag = format!("--web.telemetry-path={path}");
        let (code, text) = check(&[
            "--bitbucket.url=http://127.0.0.1:9",
            &flag,
            "--config.check",
        ]);
        assert_eq!(code, Some(1), "{path}: {text}");
        assert!(text.contains("--web.telemetry-path"), "{path}: {text}");
    }
    let (code, text) = check(&[
        "--bitbucket.url=http://127.0.0.1:9",
        "--web.telemetry-path=/exporter/metrics",
        "--config.check",
    ]);
    assert_eq!(code, Some(0), "{text}");
}

/// The start itself never panics on a reserved path (it used to exit 101).
#[test]
fn the_exporter_refuses_a_reserved_telemetry_path_without_a_panic() {
    let port = free_port();
    let listen = format!("--web.listen-address=127.0.0.1:{port}");
    let (code, text) = check(&[
        "--bitbucket.url=http://127.0.0.1:9",
        "--web.telemetry-path=/upgrade",
        &listen,
    ]);
    assert_eq!(code, Some(1), "{text}");
    assert!(!text.contains("panicked"), "{text}");
}

fn config_with_name(name: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("c.yml");
    std::fs::write(
        &f,
        format!("targets:\n  - name: \"{name}\"\n    url: http://127.0.0.1:9\n"),
    )
    .unwrap();
    let flag = format!("--config.file={}", f.display());
    check(&[&flag, "--config.check"])
}

/// Item 15: names `.` and `..` were accepted but gave an `upgrade_url` that curl, browsers
/// and `status` normalise away; names had no length cap.
#[test]
fn dot_names_and_long_names_are_refused() {
    for name in [".", ".."] {
        let (code, text) = config_with_name(name);
        assert_eq!(code, Some(1), "{name}: {text}");
        assert!(text.contains("name"), "{text}");
    }
    let (code, text) = config_with_name(&"a".repeat(65));
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("at most 64"), "{text}");
    assert!(
        !text.contains(&"a".repeat(65)),
        "the name is not echoed whole"
    );
    let (code, text) = config_with_name(&"a".repeat(64));
    assert_eq!(code, Some(0), "{text}");
    let (code, text) = config_with_name("...");
    assert_eq!(code, Some(0), "{text}");
}

/// Also seen: a config typo read "unknown field (name not shown)". Key names are not
/// secrets: a typo of a valid key is named, with where it is; values never are.
#[test]
fn a_config_typo_names_the_key_and_where_but_no_value() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("c.yml");
    std::fs::write(
        &f,
        "targets:\n  - name: prod\n    url: http://127.0.0.1:9\n    timout: 5s-secret-value\n",
    )
    .unwrap();
    let flag = format!("--config.file={}", f.display());
    let (code, text) = check(&[&flag, "--config.check"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("`timout`") && text.contains("`timeout`"),
        "{text}"
    );
    assert!(text.contains("line 4"), "{text}");
    assert!(!text.contains("secret-value"), "{text}");
}
