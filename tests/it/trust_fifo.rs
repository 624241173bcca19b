//! A FIFO (or other non-regular file) at any path the exporter reads is refused at once,
//! never waited on (issue 18 item 12): the config file, the web config at start and while
//! serving, the secret file, the CA file; and SIGTERM still ends the process promptly.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::*;

fn mkfifo(path: &Path) {
    let ok = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo runs")
        .success();
    assert!(ok, "mkfifo {}", path.display());
}

/// Runs the binary; it must exit with 1 within 10 s, saying the file is not a regular one.
fn refused_quickly(args: &[String], what: &str) {
    let start = Instant::now();
    let mut p = Proc::spawn(args, &[]);
    let status = p.wait_exit(Duration::from_secs(10));
    let err = p.stderr();
    assert!(status.is_some(), "{what}: still blocked after 10 s\n{err}");
    assert_eq!(status.unwrap().code(), Some(1), "{what}: {err}");
    assert!(err.contains("not a regular file"), "{what}: {err}");
    assert!(start.elapsed() < Duration::from_secs(10));
}

fn fifo_in(dir: &tempfile::TempDir, name: &str) -> PathBuf {
    let p = dir.path().join(name);
    mkfifo(&p);
    p
}

#[test]
fn fifos_given_as_input_files_are_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let url = "--bitbucket.url=http://127.0.0.1:9".to_string();
    let check = "--config.check".to_string();
    let f = fifo_in(&dir, "config.yml");
    refused_quickly(
        &[check.clone(), format!("--config.file={}", f.display())],
        "config",
    );
    let f = fifo_in(&dir, "web.yml");
    let web = format!("--web.config.file={}", f.display());
    refused_quickly(&[url.clone(), check.clone(), web], "web config");
    let f = fifo_in(&dir, "ca.pem");
    let ca = format!("--bitbucket.ca-file={}", f.display());
    let https = "--bitbucket.url=https://127.0.0.1:9".to_string();
    refused_quickly(&[https, check.clone(), ca], "CA file");
    let f = fifo_in(&dir, "password");
    let pw = format!("--bitbucket.password-file={}", f.display());
    let user = "--bitbucket.username=zdu".to_string();
    refused_quickly(&[url, check, user, pw], "password file");
}

/// A web config swapped for a FIFO while serving hung every request, and SIGTERM did not
/// stop the process in 3 s.
#[test]
fn a_web_config_swapped_for_a_fifo_neither_hangs_requests_nor_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let web = dir.path().join("web.yml");
    std::fs::write(&web, "").unwrap();
    let port = free_port();
    let mut p = Proc::spawn(
        &[
            "--bitbucket.url=http://127.0.0.1:9".to_string(),
            format!("--web.listen-address=127.0.0.1:{port}"),
            format!("--web.config.file={}", web.display()),
        ],
        &[],
    );
    wait_for_body(port, "/-/healthy", |_| true);
    std::fs::remove_file(&web).unwrap();
    mkfifo(&web);
    let start = Instant::now();
    let r = http_blocking("GET", port, "/-/healthy").expect("answered");
    assert_eq!(r.status, 500);
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    assert!(p.stderr().contains("not a regular file"), "{}", p.stderr());
    p.signal("TERM");
    let start = Instant::now();
    assert!(
        p.wait_exit(Duration::from_secs(3)).is_some(),
        "SIGTERM ignored"
    );
    assert!(start.elapsed() < Duration::from_secs(3));
}
