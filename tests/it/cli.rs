//! The real binary: `--version`, `--config.check`, start-up errors, reload of the config file
//! (HTTP and SIGHUP, keeping the old config when the new one is bad) and graceful shutdown on
//! SIGTERM. Each test runs the binary against the built-in simulator on loopback.

use std::time::Duration;

use crate::common::*;

/// The value of an unlabelled sample in an exposition.
fn sample(body: &str, name: &str) -> Option<f64> {
    value(body, name, &[])
}

fn http(method: &str, port: u16, path: &str) -> Option<(u16, String)> {
    http_blocking(method, port, path).map(|r| (r.status, r.body))
}

fn simulator(scenario: &str) -> (Proc, u16) {
    let (p, url) = spawn_simulator(&[], &["--scenario", scenario]);
    let port = url.rsplit(':').next().unwrap().parse().unwrap();
    (p, port)
}

#[test]
fn version_and_help() {
    let out = run_bin(&["--version"], &[]);
    assert!(out.status.success());
    let v = String::from_utf8(out.stdout).unwrap();
    assert!(
        v.contains(env!("CARGO_PKG_VERSION")) && v.contains("revision"),
        "{v}"
    );
    let out = run_bin(&["--help"], &[]);
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
    run_bin(
        &[
            "--config.check".as_ref(),
            "--config.file".as_ref(),
            path.as_os_str(),
        ],
        &[],
    )
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
    // A typo of a valid key is named (key names are not secrets; a key that is no typo of
    // one stays unnamed, see src/secret/unknown_key.rs), with its line and the valid names.
    assert!(
        err.contains("unknown field `poll_intervall`")
            && err.contains("`poll_interval`")
            && err.contains("line 4"),
        "{err}"
    );
    let out = run_bin(&["--config.check"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8(out.stderr).unwrap().contains("no target"));
}

#[test]
fn a_short_poll_interval_clamps_the_default_timeout_and_refuses_a_longer_explicit_one_once() {
    let url = "--bitbucket.url=http://127.0.0.1:9";
    let out = run_bin(&[url, "--poll.interval=5s", "--config.check"], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run_bin(
        &[
            url,
            "--poll.interval=5s",
            "--bitbucket.timeout=10s",
            "--config.check",
        ],
        &[],
    );
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
        let out = run_bin(&["--bitbucket.url=http://127.0.0.1:9", sub], &[]);
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
    let out = run_bin(
        &[
            "--bitbucket.url",
            "http://127.0.0.1:1",
            "--web.listen-address",
            &format!("127.0.0.1:{port}"),
        ],
        &[],
    );
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
    let mut p = Proc::spawn(
        &[
            "--config.file",
            cfg.to_str().unwrap(),
            "--web.listen-address",
            &format!("127.0.0.1:{port}"),
        ],
        &[],
    );
    wait_for_body(port, "/probe?target=a", |b| {
        sample(b, "bitbucket_zdu_up") == Some(1.0)
    });

    std::fs::write(
        &cfg,
        format!("{one}  - name: b\n    url: http://127.0.0.1:{sim_port}/\n"),
    )
    .unwrap();
    let (status, _) = http("POST", port, "/-/reload").unwrap();
    assert_eq!(status, 200);
    wait_for_body(port, "/probe?target=b", |b| {
        sample(b, "bitbucket_zdu_up") == Some(1.0)
    });

    std::fs::write(&cfg, "targets: [ {name: a, url: nope} ]\n").unwrap();
    let (status, body) = http("POST", port, "/-/reload").unwrap();
    assert_eq!(status, 500);
    assert!(body.contains("targets[0].url"), "{body}");
    let metrics = wait_for_body(port, "/metrics", |_| true);
    assert_eq!(
        sample(
            &metrics,
            "bitbucket_zdu_exporter_config_last_reload_successful"
        ),
        Some(0.0)
    );
    wait_for_body(port, "/probe?target=b", |b| {
        sample(b, "bitbucket_zdu_up") == Some(1.0)
    });

    // SIGHUP reloads too.
    std::fs::write(&cfg, &one).unwrap();
    p.signal("HUP");
    wait_for_body(port, "/metrics", |b| {
        sample(b, "bitbucket_zdu_exporter_config_last_reload_successful") == Some(1.0)
    });
    let (status, _) = http("GET", port, "/probe?target=b").unwrap();
    assert_eq!(status, 400, "b was removed by the reload");

    // SIGTERM: exits promptly and cleanly.
    p.signal("TERM");
    let status = p
        .wait_exit(Duration::from_secs(10))
        .expect("exits within 10 s of SIGTERM");
    assert!(status.success(), "{status:?}");
    let err = p.stderr();
    assert!(err.contains("shutting down"), "{err}");
}

/// `GET /-/healthy` on `addr` (blocking); the status, None when nothing answers.
fn healthy_at(addr: std::net::SocketAddr) -> Option<u16> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(request_text("GET", "/-/healthy", &[]).as_bytes())
        .ok()?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).ok()?;
    parse_reply(&out).ok().map(|r| r.status)
}

/// `:port` (the form of the default `:9879`) serves IPv4 and IPv6; an explicit IPv4 address
/// serves IPv4 only, an explicit `[::1]` IPv6 only.
#[test]
fn the_wildcard_listen_address_is_dual_stack_and_explicit_ones_are_kept() {
    let (_sim, sim_port) = simulator("stable");
    let url = format!("--bitbucket.url=http://127.0.0.1:{sim_port}/");
    let start = |listen: &str| {
        Proc::spawn(
            &[url.clone(), format!("--web.listen-address={listen}")],
            &[],
        )
    };
    let wait = |addr: std::net::SocketAddr| {
        let t = std::time::Instant::now();
        while healthy_at(addr).is_none() && t.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(100));
        }
        healthy_at(addr)
    };
    let v4 = |port| std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let v6 = |port| std::net::SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port));

    // A port free a moment ago on 127.0.0.1 can meanwhile be the ephemeral port of another
    // test's connection, which the wildcard bind also covers: try another port then.
    let (port, p) = (0..5)
        .find_map(|_| {
            let port = free_port();
            let p = start(&format!(":{port}"));
            let up = wait(v4(port)).is_some();
            if up || !p.stderr().contains("Address already in use") {
                return Some((port, p));
            }
            None
        })
        .expect("a free port for the wildcard address in 5 tries");
    assert_eq!(wait(v4(port)), Some(200), "IPv4 on :{port}: {}", p.stderr());
    assert_eq!(wait(v6(port)), Some(200), "IPv6 on :{port}: {}", p.stderr());
    assert!(
        p.stderr().contains("[::]:"),
        "listening on [::]: {}",
        p.stderr()
    );
    drop(p);

    let port = free_port();
    let p = start(&format!("127.0.0.1:{port}"));
    assert_eq!(wait(v4(port)), Some(200), "{}", p.stderr());
    assert_eq!(healthy_at(v6(port)), None, "127.0.0.1 is IPv4 only");
    drop(p);

    let port = free_port();
    let p = start(&format!("[::1]:{port}"));
    assert_eq!(wait(v6(port)), Some(200), "{}", p.stderr());
    assert_eq!(healthy_at(v4(port)), None, "[::1] is IPv6 only");
}
