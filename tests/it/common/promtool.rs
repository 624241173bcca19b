//! promtool, which several tests need. A missing promtool is a failure, never a skip:
//! `scripts/test.sh` installs Debian's `prometheus` package, which provides it.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The path to promtool (`$PATH`, then `/usr/bin`, `/usr/local/bin`); panics when there is
/// none.
pub fn promtool() -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    let dirs = on_path
        .into_iter()
        .chain(["/usr/bin".into(), "/usr/local/bin".into()]);
    for dir in dirs {
        let p = dir.join("promtool");
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "promtool is missing: this test needs it. Install Debian's prometheus package \
         (scripts/test.sh does) or put promtool on PATH"
    );
}

/// Runs `promtool check metrics` on `text`, returning its complaints.
pub fn promtool_check_metrics(text: &str) -> Result<(), String> {
    let mut child = Command::new(promtool())
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("promtool reads its input");
    let out = child.wait_with_output().expect("promtool ends");
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Runs `promtool <args…>`: whether it succeeded, and stdout + stderr.
pub fn promtool_run(args: &[&std::ffi::OsStr]) -> (bool, String) {
    let out = Command::new(promtool())
        .args(args)
        .output()
        .expect("promtool runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr),
    )
}
