//! The real binary as a child process: [`Proc`] kills it when dropped, so a failing test
//! leaves nothing behind; [`free_port`] picks a loopback port for it to listen on.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The exporter binary cargo built for these tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_bitbucket-zdu-exporter");

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs [`BIN`] to completion with `args` and exactly the variables in `env`.
pub fn run_bin<S: AsRef<OsStr>>(args: &[S], env: &[(&str, &str)]) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("the binary runs")
}

/// Stdout followed by stderr of a finished run, as text.
pub fn output_text(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr)
}

/// A running exporter binary. Its environment holds only what the test passes; stdout and
/// stderr go to files (read them at any time), so a chatty process never blocks on a pipe.
pub struct Proc {
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
    _dir: tempfile::TempDir,
}

impl Proc {
    /// Starts [`BIN`] with `args` and exactly the variables in `env`.
    pub fn spawn<S: AsRef<OsStr>>(args: &[S], env: &[(&str, &str)]) -> Proc {
        let dir = tempfile::tempdir().unwrap();
        let stdout = dir.path().join("stdout");
        let stderr = dir.path().join("stderr");
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .env_clear()
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap());
        Proc {
            child: cmd.spawn().expect("the binary starts"),
            stdout,
            stderr,
            _dir: dir,
        }
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal by name (`HUP`, `TERM`) with kill(1).
    pub fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.id().to_string())
            .status()
            .expect("kill runs")
            .success();
        assert!(ok, "kill -{name} {}", self.id());
    }

    /// Waits up to `limit` for the process to exit; None if it is still running.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let start = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return Some(s);
            }
            if start.elapsed() > limit {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Its standard output so far.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    /// Its standard error so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Its command line as the system shows it (`/proc/<pid>/cmdline`).
    pub fn cmdline(&self) -> String {
        std::fs::read(format!("/proc/{}/cmdline", self.id()))
            .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
            .unwrap_or_default()
    }

    /// Stops the process (SIGKILL; the output so far is on disk) and returns stdout, stderr.
    pub fn finish(mut self) -> (String, String) {
        self.kill();
        (self.stdout(), self.stderr())
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts `simulate` on a free port with `global` flags (before the subcommand) and `args`
/// (after it), and waits until it answers (blocking, up to 60 s); returns the process and
/// its base URL.
pub fn spawn_simulator(global: &[&str], args: &[&str]) -> (Proc, String) {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut all: Vec<&str> = global.to_vec();
    all.push("simulate");
    all.extend_from_slice(args);
    all.extend_from_slice(&["--web.listen-address", &listen]);
    let mut p = Proc::spawn(&all, &[]);
    let start = Instant::now();
    while super::http_blocking("GET", port, "/rest/zdu/cluster").is_none() {
        if let Some(status) = p.wait_exit(Duration::ZERO) {
            panic!("the simulator exited ({status}): {}", p.stderr());
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the simulator does not answer"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    (p, format!("http://{listen}"))
}
