//! The state file as a trust boundary (issue 18 items 4, 5, 7 and 12): written through an
//! exclusive temporary file, one writer per process, one exporter per file, never trusted
//! on load, and never a FIFO.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bitbucket_zdu_exporter::tracker::{StateStore, Tracked};
use common::*;

fn tracked(n: u64) -> Tracked {
    let mut t = Tracked::default();
    t.transitions.insert(("STABLE".into(), "MIXED".into()), n);
    t
}

/// Item 4: the write went to a predictable `.state.json.tmp` and followed symlinks, so a
/// symlink planted there made the exporter overwrite the file it pointed at.
#[test]
fn a_symlink_planted_at_a_temp_name_is_never_followed() {
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "precious").unwrap();
    let path = dir.path().join("state.json");
    std::os::unix::fs::symlink(&victim, dir.path().join(".state.json.tmp")).unwrap();
    let (store, err) = StateStore::open(&path);
    assert!(err.is_none());
    store.put("t", tracked(1)).unwrap();
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    assert!(std::fs::read_to_string(&path).unwrap().contains("MIXED"));
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".tmp") && n != ".state.json.tmp")
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// Item 5: pollers of different targets shared one temp path: 204 failed writes in 30 s with
/// 6 targets at 100 ms, each counted in `state_file_errors_total`.
#[test]
fn concurrent_writers_in_one_process_never_fail() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let (store, _) = StateStore::open(&path);
    let store = Arc::new(store);
    let threads: Vec<_> = (0..6)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                for i in 0..60 {
                    let _ = store.put(&format!("t{t}"), tracked(i));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(store.errors_total(), 0);
    let (again, err) = StateStore::open(&path);
    assert!(err.is_none(), "{err:?}");
    for t in 0..6 {
        assert_eq!(again.get(&format!("t{t}")), tracked(59), "t{t}");
    }
}

/// Item 5: two exporters on one state file were not prevented; the second is now refused
/// at start with a clear message, and the first keeps running.
#[test]
fn a_second_exporter_on_the_same_state_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let args = |port: u16| {
        vec![
            "--bitbucket.url=http://127.0.0.1:9".to_string(),
            format!("--web.listen-address=127.0.0.1:{port}"),
            format!("--state.file={}", state.display()),
        ]
    };
    let first_port = free_port();
    let mut first = Proc::spawn(&args(first_port), &[]);
    wait_for_body(first_port, "/-/healthy", |_| true);
    let mut second = Proc::spawn(&args(free_port()), &[]);
    let status = second.wait_exit(Duration::from_secs(10));
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(1),
        "{}",
        second.stderr()
    );
    let err = second.stderr();
    assert!(err.contains("another exporter is using it"), "{err}");
    assert!(
        first.wait_exit(Duration::from_millis(200)).is_none(),
        "the first still runs"
    );
}

/// Item 12: a FIFO at `--state.file` hung start-up before any log line.
#[test]
fn a_fifo_as_state_file_is_refused_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("state.json");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let start = Instant::now();
    let (store, err) = StateStore::open(&fifo);
    assert!(start.elapsed() < Duration::from_secs(2));
    let err = err.expect("refused").to_string();
    assert!(err.contains("not a regular file"), "{err}");
    assert_eq!(store.errors_total(), 1);
}
