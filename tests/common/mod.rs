//! Test helpers shared by the integration tests: an in-process simulator on loopback, target
//! configs pointing at it, one-shot polls, and a small exposition-format reader.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bitbucket_zdu_exporter::client::ZduClient;
use bitbucket_zdu_exporter::config::{AuthConfig, TargetConfig, TlsConfig};
use bitbucket_zdu_exporter::metrics::TargetCollector;
use bitbucket_zdu_exporter::poller::{Poller, TargetShared};
use bitbucket_zdu_exporter::server::{render, Format};
use bitbucket_zdu_exporter::simulator::{SimulateArgs, Simulator};
use bitbucket_zdu_exporter::tracker::{StateStore, Tracked};
use prometheus_client::registry::Registry;

/// A simulator served on 127.0.0.1 with its scenario script NOT running (tests set states).
pub struct Sim {
    pub sim: Arc<Simulator>,
    pub addr: SocketAddr,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Sim {
    pub async fn start(args: SimulateArgs) -> Sim {
        let sim = Simulator::new(&args).expect("simulator");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = sim.router();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Sim { sim, addr, server }
    }

    pub async fn stable(nodes: usize) -> Sim {
        Sim::start(SimulateArgs {
            nodes,
            responder: 0,
            ..SimulateArgs::default()
        })
        .await
    }

    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }
}

/// A target config for `url` with short timings.
pub fn target(name: &str, url: &str) -> TargetConfig {
    TargetConfig {
        name: name.into(),
        base_url: reqwest::Url::parse(url).unwrap(),
        auth: AuthConfig::None,
        tls: TlsConfig::default(),
        timeout: Duration::from_secs(2),
        poll_interval: Duration::from_secs(5),
        max_age: Duration::from_secs(15),
    }
}

/// A poller for `target` with an in-memory state store.
pub fn poller(target: TargetConfig) -> (Arc<TargetShared>, Poller) {
    poller_with_store(target, Arc::new(StateStore::in_memory()))
}

pub fn poller_with_store(
    target: TargetConfig,
    store: Arc<StateStore>,
) -> (Arc<TargetShared>, Poller) {
    let shared = TargetShared::new(target.clone(), &Tracked::default());
    let client = ZduClient::new(target).unwrap();
    let poller = Poller::new(client, shared.clone(), store);
    (shared, poller)
}

/// Renders one target's metrics as `/probe` would.
pub fn render_target(shared: &Arc<TargetShared>, format: Format) -> String {
    let mut r = Registry::default();
    r.register_collector(Box::new(TargetCollector::new(shared.clone())));
    render(&r, format)
}

/// One sample of a text exposition: name, labels, value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

/// Parses the samples of a text exposition (enough for tests: no escapes inside values
/// other than \" \\ \n).
pub fn samples(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (head, value) = line.rsplit_once(' ').expect("sample line");
        let value: f64 = value.parse().unwrap_or(f64::NAN);
        let (name, labels) = match head.find('{') {
            None => (head.to_string(), Vec::new()),
            Some(i) => {
                let name = head[..i].to_string();
                let body = &head[i + 1..head.len() - 1];
                (name, parse_labels(body))
            }
        };
        out.push(Sample {
            name,
            labels,
            value,
        });
    }
    out
}

fn parse_labels(body: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let eq = rest.find('=').expect("label =");
        let key = rest[..eq].trim_start_matches(',').to_string();
        let mut val = String::new();
        let bytes: Vec<char> = rest[eq + 2..].chars().collect();
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                '\\' => {
                    i += 1;
                    val.push(match bytes[i] {
                        'n' => '\n',
                        c => c,
                    });
                }
                '"' => break,
                c => val.push(c),
            }
            i += 1;
        }
        let consumed: usize = bytes[..=i].iter().map(|c| c.len_utf8()).sum();
        rest = &rest[eq + 2 + consumed..];
        rest = rest.trim_start_matches(',');
        out.push((key, val));
    }
    out
}

/// The value of the sample `name` whose labels include all of `want`.
pub fn value(text: &str, name: &str, want: &[(&str, &str)]) -> Option<f64> {
    samples(text)
        .into_iter()
        .find(|s| {
            s.name == name
                && want
                    .iter()
                    .all(|(k, v)| s.labels.iter().any(|(lk, lv)| lk == k && lv == v))
        })
        .map(|s| s.value)
}

/// How many samples named `name` there are.
pub fn count(text: &str, name: &str) -> usize {
    samples(text).into_iter().filter(|s| s.name == name).count()
}

/// Replaces values that change from run to run (timestamps, durations, process figures) so
/// that output can be compared with a golden file.
pub fn mask(text: &str) -> String {
    text.lines()
        .map(|l| {
            let volatile = ["_timestamp_seconds", "bitbucket_zdu_poll_duration_seconds"];
            if !l.starts_with('#') && volatile.iter().any(|v| l.contains(v)) {
                match l.rsplit_once(' ') {
                    Some((head, _)) => format!("{head} <volatile>"),
                    None => l.to_string(),
                }
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// Path to promtool, or None (with a notice) when it is missing outside CI. In CI a missing
/// promtool is a failure: the test command installs it.
pub fn promtool() -> Option<std::path::PathBuf> {
    for p in ["/usr/bin/promtool", "/usr/local/bin/promtool"] {
        if std::path::Path::new(p).exists() {
            return Some(p.into());
        }
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("promtool is missing in CI; scripts/test.sh installs Debian's prometheus package");
    }
    eprintln!("NOTICE: promtool not found; skipping the promtool check (run scripts/test.sh to install it)");
    None
}

/// Runs `promtool check metrics` on `text`, returning its complaints.
pub fn promtool_check_metrics(text: &str) -> Result<(), String> {
    use std::io::Write;
    let Some(bin) = promtool() else {
        return Ok(());
    };
    let mut child = std::process::Command::new(bin)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
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

/// Compares `actual` with the checked-in file at `rel` (relative to the crate root); with
/// `UPDATE_GOLDEN` set, rewrites the file instead. Panics with the first differing lines.
pub fn check_golden(rel: &str, actual: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    if std::env::var("UPDATE_GOLDEN").is_ok() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with UPDATE_GOLDEN=1 to create)",
            path.display()
        )
    });
    if expected != actual {
        let diff: Vec<String> = expected
            .lines()
            .zip(actual.lines())
            .enumerate()
            .filter(|(_, (a, b))| a != b)
            .take(10)
            .map(|(i, (a, b))| format!("line {}:\n  golden: {a}\n  actual: {b}", i + 1))
            .collect();
        panic!(
            "{rel} differs from the golden file ({} vs {} lines):\n{}\n(UPDATE_GOLDEN=1 to accept)",
            expected.lines().count(),
            actual.lines().count(),
            diff.join("\n")
        );
    }
}

/// Checks that every family of an exposition (text 0.0.4 names counters with `_total` in
/// `# TYPE`, OpenMetrics without) is in the metric catalogue with the
/// same type and in the catalogue's order, and that every sample carries exactly the catalogue's label names, in order.
pub fn assert_matches_catalogue(text: &str) {
    use bitbucket_zdu_exporter::metrics::catalogue;
    let mut last = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("# TYPE name type");
            let pos = catalogue::ALL
                .iter()
                .position(|f| f.name == name || f.sample_name() == name)
                .unwrap_or_else(|| panic!("{name} is served but not in the catalogue"));
            assert_eq!(catalogue::ALL[pos].kind.as_str(), kind, "{name}: # TYPE");
            assert!(
                last < Some(pos),
                "{name} is served out of the catalogue's order"
            );
            last = Some(pos);
        }
    }
    for s in samples(text) {
        let f = catalogue::ALL
            .iter()
            .find(|f| f.sample_name() == s.name)
            .unwrap_or_else(|| panic!("sample {} is not in the catalogue", s.name));
        let names: Vec<&str> = s.labels.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, f.labels, "{}: label names", s.name);
    }
}
