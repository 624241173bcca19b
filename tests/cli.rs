//! The real binary: `--version`, `--config.check`, start-up errors, reload of the config file
//! (HTTP and SIGHUP, keeping the old config when the new one is bad) and graceful shutdown on
//! SIGTERM. Each test runs the binary against the built-in simulator on loopback.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_bitbucket-zdu-exporter");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(args: &[&str]) -> Proc {
    Proc(
        Command::new(BIN)
            .args(args)
            .env_clear()
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    )
}

fn http(method: &str, port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let status = out.split(' ').nth(1)?.parse().ok()?;
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((status, body))
}

fn wait_for(port: u16, path: &str, want: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some((200, body)) = http("GET", port, path) {
            if want(&body) {
                return body;
            }
        }
        assert!(Instant::now() < deadline, "timed out waiting for {path}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The value of an unlabelled sample in an exposition (HELP/TYPE comments are skipped: a
/// HELP text may contain "name 1").
fn sample(body: &str, name: &str) -> Option<f64> {
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

fn simulator(scenario: &str) -> (Proc, u16) {
    let port = free_port();
    let p = spawn(&[
        "simulate",
        "--web.listen-address",
        &format!("127.0.0.1:{port}"),
        "--scenario",
        scenario,
    ]);
    wait_for(port, "/", |_| true);
    (p, port)
}

#[test]
fn version_and_help() {
    let out = Command::new(BIN).arg("--version").output().unwrap();
    assert!(out.status.success());
    let v = String::from_utf8(out.stdout).unwrap();
    assert!(
        v.contains(env!("CARGO_PKG_VERSION")) && v.contains("revision"),
        "{v}"
    );
    let out = Command::new(BIN).arg("--help").output().unwrap();
    let h = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--bitbucket.url",
        "--web.listen-address",
        "--web.config.file",
        "--log.format",
        "--config.check",
        "--poll.interval",
    ] {
        assert!(h.contains(flag), "{flag} missing from --help");
    }
    assert!(!h.contains("--bitbucket.password "), "no password flag");
}

/// Writes `yaml` to a file in `dir` and runs `--config.check` on it.
fn config_check(dir: &std::path::Path, yaml: &str) -> std::process::Output {
    let path = dir.join("config.yml");
    std::fs::write(&path, yaml).unwrap();
    Command::new(BIN)
        .args(["--config.check", "--config.file"])
        .arg(&path)
        .env_clear()
        .output()
        .unwrap()
}

#[test]
fn config_check_exits_0_or_1_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let out = config_check(
        dir.path(),
        "targets:\n  - name: prod\n    url: https://bb.example.com\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = config_check(
        dir.path(),
        "targets:\n  - name: prod\n    url: https://bb.example.com\n    poll_intervall: 1m\n",
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("poll_intervall") && err.contains("line 4"),
        "{err}"
    );
    let out = Command::new(BIN)
        .arg("--config.check")
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8(out.stderr).unwrap().contains("no target"));
}

/// Runs the binary with `args` and an empty environment.
fn run_bin(args: &[&str]) -> std::process::Output {
    Command::new(BIN).args(args).env_clear().output().unwrap()
}

#[test]
fn a_short_poll_interval_clamps_the_default_timeout_and_refuses_a_longer_explicit_one_once() {
    let url = "--bitbucket.url=http://127.0.0.1:9";
    let out = run_bin(&[url, "--poll.interval=5s", "--config.check"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run_bin(&[
        url,
        "--poll.interval=5s",
        "--bitbucket.timeout=10s",
        "--config.check",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        err.trim_end(),
        "error: invalid configuration: --bitbucket.timeout: 10s is longer than the poll interval 5s"
    );
}

#[test]
fn subcommands_refuse_exporter_flags() {
    for sub in ["simulate", "demo"] {
        let out = run_bin(&["--bitbucket.url=http://127.0.0.1:9", sub]);
        assert_eq!(out.status.code(), Some(2), "{sub} ran");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(
            err.contains("--bitbucket.url") && err.contains(sub),
            "{sub}: {err}"
        );
    }
}

#[test]
fn a_port_in_use_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let out = Command::new(BIN)
        .args([
            "--bitbucket.url",
            "http://127.0.0.1:1",
            "--web.listen-address",
            &format!("127.0.0.1:{port}"),
        ])
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{err}"
    );
}

#[test]
fn reload_adds_targets_and_keeps_the_old_config_when_the_new_one_is_bad() {
    let (_sim, sim_port) = simulator("stable");
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("targets.yml");
    let one = format!("targets:\n  - name: a\n    url: http://127.0.0.1:{sim_port}\n    poll_interval: 1s\n    timeout: 1s\n");
    std::fs::write(&cfg, &one).unwrap();
    let port = free_port();
    let mut p = spawn(&[
        "--config.file",
        cfg.to_str().unwrap(),
        "--web.listen-address",
        &format!("127.0.0.1:{port}"),
    ]);
    wait_for(port, "/probe?target=a", |b| {
        sample(b, "bitbucket_zdu_up") == Some(1.0)
    });

    std::fs::write(
        &cfg,
        format!("{one}  - name: b\n    url: http://127.0.0.1:{sim_port}/\n"),
    )
    .unwrap();
    let (status, _) = http("POST", port, "/-/reload").unwrap();
    assert_eq!(status, 200);
    wait_for(port, "/probe?target=b", |b| {
        sample(b, "bitbucket_zdu_up") == Some(1.0)
    });

    std::fs::write(&cfg, "targets: [ {name: a, url: nope} ]\n").unwrap();
    let (status, body) = http("POST", port, "/-/reload").unwrap();
    assert_eq!(status, 500);
    assert!(body.contains("targets[0].url"), "{body}");
    let metrics = wait_for(port, "/metrics", |_| true);
    assert_eq!(
        sample(
            &metrics,
            "bitbucket_zdu_exporter_config_last_reload_successful"
        ),
        Some(0.0)
    );
    wait_for(port, "/probe?target=b", |b| {
        sample(b, "bitbucket_zdu_up") == Some(1.0)
    });

    // SIGHUP reloads too.
    std::fs::write(&cfg, &one).unwrap();
    let pid = p.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap()
        .success());
    wait_for(port, "/metrics", |b| {
        sample(b, "bitbucket_zdu_exporter_config_last_reload_successful") == Some(1.0)
    });
    let (status, _) = http("GET", port, "/probe?target=b").unwrap();
    assert_eq!(status, 400, "b was removed by the reload");

    // SIGTERM: exits promptly and cleanly.
    let started = Instant::now();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = loop {
        if let Some(s) = p.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no exit 10 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
    let mut err = String::new();
    p.0.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(err.contains("shutting down"), "{err}");
}
