//! Secrets never leave the exporter (issue 4, part 4).
//!
//! The real binary runs at `--log.level=debug`, in both log formats, against the simulator
//! requiring Basic auth and against upstreams that fail in every way (including ones that
//! echo the credentials back in their error messages). Every output is grepped for the
//! password and for its Basic-auth encoding: stdout, stderr, `/metrics`, `/probe`, the
//! landing page, `/proc/<pid>/cmdline`, `--config.check` output, and the `Debug` output of the
//! configuration types.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::*;
use base64::Engine as _;
use bitbucket_zdu_exporter::cli::Cli;
use bitbucket_zdu_exporter::config::{Config, Env};

const USER: &str = "zdu";
/// The known secret. Distinctive, so a hit is never a coincidence.
const SECRET: &str = "Kn0wn-S3cret-zdu-c4n4ry-93f1";

/// Every form in which the secret could leak.
fn forms() -> Vec<String> {
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{SECRET}"));
    vec![
        SECRET.to_string(),
        basic.clone(),
        // A prefix long enough to be unmistakable (a truncated message could cut the rest).
        SECRET[..16].to_string(),
        basic[..16].to_string(),
    ]
}

fn assert_clean(what: &str, text: &str) {
    for f in forms() {
        assert!(
            !text.contains(&f),
            "{what} contains the secret (as {f:?}):\n{text}"
        );
    }
}

fn up_of(metrics: &str) -> Option<f64> {
    value(metrics, "bitbucket_zdu_up", &[])
}

/// Everything the exporter serves, concatenated.
async fn served(base: &str) -> String {
    let mut all = String::new();
    for path in [
        "/",
        "/metrics",
        "/probe?target=default",
        "/probe?target=nope",
        "/probe",
        "/-/healthy",
        "/-/ready",
        "/does-not-exist",
    ] {
        if let Some((status, body)) = get(&format!("{base}{path}")).await {
            all.push_str(&format!("==> {path} {status}\n{body}\n"));
        }
    }
    all
}

fn secret_file(dir: &Path) -> PathBuf {
    let f = dir.join("bitbucket-password");
    std::fs::write(&f, format!("{SECRET}\n")).unwrap();
    f
}

fn exporter_args(upstream: &str, port: u16, format: &str, pw_file: Option<&Path>) -> Vec<String> {
    let mut a = vec![
        format!("--bitbucket.url={upstream}"),
        format!("--bitbucket.username={USER}"),
        format!("--web.listen-address=127.0.0.1:{port}"),
        "--poll.interval=300ms".into(),
        "--bitbucket.timeout=300ms".into(),
        "--poll.max-age=30s".into(),
        "--log.level=debug".into(),
        format!("--log.format={format}"),
    ];
    if let Some(f) = pw_file {
        a.push(format!("--bitbucket.password-file={}", f.display()));
    }
    a
}

/// The exporter against the simulator that requires Basic auth: the credentials work (up 1)
/// and show up nowhere.
async fn against_the_simulator(format: &str, password_via_env: bool) {
    let dir = tempfile::tempdir().unwrap();
    let pw = secret_file(dir.path());
    let log_format = format!("--log.format={format}");
    let pw_path = pw.display().to_string();
    let (sim, sim_url) = spawn_simulator(
        &["--log.level=debug", &log_format],
        &[
            "--username",
            USER,
            "--password-file",
            &pw_path,
            "--scenario",
            "stable",
            "--speed",
            "10",
        ],
    );
    // Without credentials the simulator refuses: the exporter's success below proves they
    // were sent.
    let (status, _) = get(&format!("{sim_url}/rest/zdu/cluster")).await.unwrap();
    assert_eq!(status, 401);

    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let (args, env): (Vec<String>, Vec<(&str, &str)>) = if password_via_env {
        (
            exporter_args(&sim_url, port, format, None),
            vec![("BITBUCKET_ZDU_PASSWORD", SECRET)],
        )
    } else {
        (exporter_args(&sim_url, port, format, Some(&pw)), vec![])
    };
    let exp = Proc::spawn(&args, &env);
    wait_until("the exporter is up", Duration::from_secs(60), || async {
        match get(&format!("{base}/metrics")).await {
            Some((200, m)) => up_of(&m) == Some(1.0),
            _ => false,
        }
    })
    .await;
    // A few more polls at debug level, then look everywhere.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pages = served(&base).await;
    assert_eq!(up_of(&pages), Some(1.0), "{pages}");
    assert_clean("served pages", &pages);
    assert_clean("exporter cmdline", &exp.cmdline());
    assert_clean("simulator cmdline", &sim.cmdline());
    let (out, err) = exp.finish();
    assert!(
        err.contains("debug") || err.contains("DEBUG"),
        "debug logging is on: {err}"
    );
    assert_clean("exporter stdout", &out);
    assert_clean("exporter stderr", &err);
    let (out, err) = sim.finish();
    assert_clean("simulator stdout", &out);
    assert_clean("simulator stderr", &err);
}

#[tokio::test]
async fn simulator_with_basic_auth_logfmt_password_file() {
    against_the_simulator("logfmt", false).await;
}

#[tokio::test]
async fn simulator_with_basic_auth_json_password_env() {
    against_the_simulator("json", true).await;
}

/// The answer to request `i` of an upstream that fails in turn in every way, several of them
/// echoing what it received (the Authorization header, the whole request) in an error
/// message or a redirect.
fn echoing_failure(i: usize, request: &str) -> Canned {
    let auth = request
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("authorization:"))
        .unwrap_or("")
        .to_string();
    let echo = serde_json::to_string(request).unwrap();
    let json = |status: u16, body: String| Canned {
        status,
        content_type: Some("application/json".into()),
        extra_headers: String::new(),
        body,
    };
    match i % 9 {
        0 => json(
            401,
            format!(r#"{{"errors":[{{"message":"bad credentials in {auth}"}}]}}"#),
        ),
        1 => json(403, format!(r#"{{"errors":[{{"message":{echo}}}]}}"#)),
        2 => json(500, format!(r#"{{"errors":[{{"message":{echo}}}]}}"#)),
        3 => json(
            400,
            format!(r#"{{"errors":[{{"message":"Header {auth} rejected"}}]}}"#),
        ),
        4 => Canned {
            content_type: Some("text/html".into()),
            ..json(200, format!("<html>login {request}</html>"))
        },
        5 => json(200, format!("{{\"nodes\": [ {echo}")),
        6 => Canned {
            status: 302,
            content_type: Some("text/plain".into()),
            extra_headers: format!(
                "Location: http://{USER}:{SECRET}@127.0.0.1:1/?auth={}\r\n",
                auth.replace(' ', "+")
            ),
            body: String::new(),
        },
        // A JSON string where an object belongs: serde quotes it in its error.
        7 => json(200, echo.clone()),
        _ => json(
            409,
            format!(r#"{{"errors":[{{"message":"conflict","context":{echo}}}]}}"#),
        ),
    }
}

async fn against_a_faulting_upstream(format: &str) {
    let dir = tempfile::tempdir().unwrap();
    let pw = secret_file(dir.path());
    let upstream = Mock::scripted(echoing_failure).await;
    let requests = || upstream.seen().len();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let exp = Proc::spawn(
        &exporter_args(&upstream.url(), port, format, Some(&pw)),
        &[],
    );
    let mut pages = String::new();
    // Go through every kind of failure at least twice (backoff stays short: 300 ms × 8).
    let start = Instant::now();
    while requests() < 40 && start.elapsed() < Duration::from_secs(90) {
        pages.push_str(&served(&base).await);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(requests() >= 18, "the exporter kept polling");
    pages.push_str(&served(&base).await);
    assert!(pages.contains("bitbucket_zdu_last_error_info"), "{pages}");
    assert_clean("served pages", &pages);
    assert_clean("exporter cmdline", &exp.cmdline());
    let (out, err) = exp.finish();
    assert!(err.contains("poll failed"), "{err}");
    assert_clean("exporter stdout", &out);
    assert_clean("exporter stderr", &err);
}

#[tokio::test]
async fn faulting_upstream_echoing_credentials_logfmt() {
    against_a_faulting_upstream("logfmt").await;
}

#[tokio::test]
async fn faulting_upstream_echoing_credentials_json() {
    against_a_faulting_upstream("json").await;
}

// ---- configuration -------------------------------------------------------------------

/// Flags and environment of one `--config.check` run.
type Case<'a> = (Vec<String>, Vec<(&'a str, &'a str)>);

struct FakeEnv(Vec<(&'static str, String)>);

impl Env for FakeEnv {
    fn var(&self, name: &str) -> Option<String> {
        self.0
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    }
}

#[test]
fn debug_of_config_and_targets_has_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let pw = secret_file(dir.path());
    let token = dir.path().join("token");
    std::fs::write(&token, SECRET).unwrap();
    let cases: Vec<(Vec<String>, FakeEnv)> = vec![
        (
            vec![
                "--bitbucket.url=https://bb.example.com".into(),
                format!("--bitbucket.username={USER}"),
                format!("--bitbucket.password-file={}", pw.display()),
            ],
            FakeEnv(vec![]),
        ),
        (
            vec![
                "--bitbucket.url=https://bb.example.com".into(),
                format!("--bitbucket.username={USER}"),
            ],
            FakeEnv(vec![("BITBUCKET_ZDU_PASSWORD", SECRET.into())]),
        ),
        (
            vec![
                "--bitbucket.url=https://bb.example.com".into(),
                format!("--bitbucket.token-file={}", token.display()),
            ],
            FakeEnv(vec![]),
        ),
        (
            vec!["--bitbucket.url=https://bb.example.com".into()],
            FakeEnv(vec![("BITBUCKET_ZDU_TOKEN", SECRET.into())]),
        ),
    ];
    for (flags, env) in cases {
        let mut argv = vec!["x".to_string()];
        argv.extend(flags.clone());
        let cli = Cli::try_parse_checked_from(&argv).unwrap();
        assert_clean("Debug of the CLI", &format!("{cli:?}"));
        let config = Config::from_args(&cli.exporter, &env).unwrap();
        assert_clean("Debug of Config", &format!("{config:?}"));
        assert_clean("pretty Debug of Config", &format!("{config:#?}"));
        for t in config.targets() {
            assert_clean("Debug of TargetConfig", &format!("{t:?}"));
            assert_clean("auth description", &t.auth().describe());
            let client = bitbucket_zdu_exporter::client::ZduClient::new(t.clone()).unwrap();
            assert_clean("Debug of ZduClient", &format!("{client:?}"));
        }
    }
}

#[test]
fn config_check_on_a_bad_config_never_prints_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let pw = secret_file(dir.path());
    let yaml = dir.path().join("targets.yml");
    std::fs::write(
        &yaml,
        format!(
            "targets:\n  - name: prod\n    url: https://bb.example.com\n    auth:\n      username: {USER}\n      password_file: {}\n    timeout: soon\n",
            pw.display()
        ),
    )
    .unwrap();
    let run = |args: &[String], env: &[(&str, &str)]| {
        let out = run_bin(args, env);
        (out.status.success(), output_text(&out))
    };
    let cases: Vec<Case> = vec![
        // A bad value next to a good secret file.
        (
            vec![
                format!("--config.file={}", yaml.display()),
                "--config.check".into(),
            ],
            vec![],
        ),
        // Flag mode, bad timeout, password from the file and from the environment.
        (
            vec![
                "--bitbucket.url=https://bb.example.com".into(),
                format!("--bitbucket.username={USER}"),
                format!("--bitbucket.password-file={}", pw.display()),
                "--bitbucket.timeout=5m".into(),
                "--config.check".into(),
            ],
            vec![],
        ),
        (
            vec![
                "--bitbucket.url=https://bb.example.com".into(),
                format!("--bitbucket.username={USER}:x"),
                "--config.check".into(),
            ],
            vec![("BITBUCKET_ZDU_PASSWORD", SECRET)],
        ),
        // The secret file given where a CA bundle belongs: read, not echoed.
        (
            vec![
                "--bitbucket.url=https://bb.example.com".into(),
                format!("--bitbucket.ca-file={}", pw.display()),
                "--config.check".into(),
            ],
            vec![],
        ),
    ];
    for (args, env) in cases {
        let (ok, text) = run(&args, &env);
        assert!(!ok, "{args:?} is invalid: {text}");
        assert_clean(&format!("--config.check {args:?}"), &text);
    }
    // A valid configuration: the check passes and prints no secret either.
    let (ok, text) = run(
        &[
            "--bitbucket.url=https://bb.example.com".into(),
            format!("--bitbucket.username={USER}"),
            format!("--bitbucket.password-file={}", pw.display()),
            "--config.check".into(),
        ],
        &[],
    );
    assert!(ok, "{text}");
    assert_clean("--config.check (valid)", &text);
}

/// Runs the binary with `args`; it must refuse to start. Returns stdout + stderr.
fn refused(args: &[String]) -> String {
    let mut p = Proc::spawn(args, &[]);
    let status = p.wait_exit(Duration::from_secs(30));
    let text = p.stdout() + &p.stderr();
    assert!(
        status.is_some_and(|s| !s.success()),
        "{args:?} must be refused: {text}"
    );
    text
}

/// Pointing `--web.config.file` at the secret file by mistake must not print the secret.
#[test]
fn a_secret_file_given_as_the_web_config_file_is_not_echoed() {
    let dir = tempfile::tempdir().unwrap();
    let pw = secret_file(dir.path());
    let args = vec![
        "--bitbucket.url=https://bb.example.com".into(),
        format!("--web.config.file={}", pw.display()),
        format!("--web.listen-address=127.0.0.1:{}", free_port()),
    ];
    let text = refused(&args);
    assert_clean(&format!("{args:?}"), &text);
}

/// Pointing `--config.file` at the secret file by mistake must not print the secret: YAML
/// errors quote the offending scalar ("invalid type: string \"...\"").
#[test]
fn a_secret_file_given_as_the_config_file_is_not_echoed() {
    let dir = tempfile::tempdir().unwrap();
    let pw = secret_file(dir.path());
    let args = vec![
        format!("--config.file={}", pw.display()),
        "--config.check".into(),
    ];
    let text = refused(&args);
    assert_clean(&format!("{args:?}"), &text);
}

mod random;
