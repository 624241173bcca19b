//! `bitbucket-zdu-exporter status`: the `kubectl rollout status` of a ZDU rolling upgrade.
//!
//! It reads one target's [`TargetView`] either from a running exporter
//! (`--exporter.url`, so an upgrade script needs no Bitbucket password) or from Bitbucket
//! itself with the exporter's own `--bitbucket.*` / `--config.file` flags, prints the state
//! and the nodes, and with `--wait` blocks until the cluster is STABLE on one version.
//!
//! Exit codes (see [`Outcome::exit_code`]): 0 settled (or printed, without `--wait`);
//! 1 error (cannot read the status); 2 usage error (clap); 3 UPGRADE_TASKS_FAILED; 4 a node
//! in ERROR; 5 `--timeout` passed.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;

use crate::api::{self, TargetList, TargetView};
use crate::client::ZduClient;
use crate::config::{Config, ConfigError, ExporterArgs, ProcessEnv};
use crate::poller::Poller;
use crate::snapshot::TargetShared;
use crate::sys::duration::{format_duration, PromDuration};
use crate::tracker::{StateStore, Tracker};

/// Flags of `status`.
#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// URL of a running exporter (e.g. http://host:9879): read the status from its JSON API
    /// instead of from Bitbucket, so no Bitbucket credentials are needed.
    #[arg(long = "exporter.url", value_name = "URL")]
    pub exporter_url: Option<String>,
    /// The target to report (optional when there is exactly one).
    #[arg(long, value_name = "NAME")]
    pub target: Option<String>,
    /// Block until the cluster is STABLE with one version (exit 0); fail fast on
    /// UPGRADE_TASKS_FAILED (exit 3) or a node in ERROR (exit 4).
    #[arg(long)]
    pub wait: bool,
    /// With --wait: give up after this long (exit 5).
    #[arg(long, value_name = "DURATION", default_value = "30m")]
    pub timeout: PromDuration,
    /// With --wait: time between two reads.
    #[arg(long = "wait.interval", value_name = "DURATION", default_value = "5s")]
    pub wait_interval: PromDuration,
    /// Without --exporter.url: the exporter's own flags say where Bitbucket is.
    #[command(flatten)]
    pub exporter: ExporterArgs,
}

/// How `status` ended, when it could read the status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// STABLE with one version (or, without --wait, the status was printed).
    Settled,
    /// The cluster is in UPGRADE_TASKS_FAILED.
    TasksFailed,
    /// A node is in ERROR.
    NodeError,
    /// `--timeout` passed before the cluster settled.
    TimedOut,
}

impl Outcome {
    /// The process exit code.
    pub fn exit_code(self) -> u8 {
        match self {
            Outcome::Settled => 0,
            Outcome::TasksFailed => 3,
            Outcome::NodeError => 4,
            Outcome::TimedOut => 5,
        }
    }
}

/// Why `status` could not read the status (exit code 1).
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// The flags or config file are invalid.
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    /// The HTTP client could not be built (the message says why).
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
    /// Reading the exporter's JSON API failed.
    #[error("cannot read {url}: {message}")]
    Exporter {
        /// The URL read.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// `--target` is needed: the count of targets and their names.
    #[error("the exporter has {0} targets; choose one with --target ({1})")]
    AmbiguousTarget(usize, String),
    /// `--target` names no configured target: the name asked for and the names there are.
    #[error("unknown target {0:?}; targets: {1}")]
    UnknownTarget(String, String),
    /// The target is down: its name and the `down_reason`.
    #[error("target {target} is down ({reason})")]
    Down {
        /// The target's name.
        target: String,
        /// Why it is down (`pending`, a failure reason, or `stale`).
        reason: String,
    },
}

impl StatusError {
    /// A fixed label for the failure.
    pub fn reason(&self) -> &'static str {
        match self {
            StatusError::Config(_) => "config",
            StatusError::Client(_) => "client",
            StatusError::Exporter { .. } => "exporter",
            StatusError::AmbiguousTarget(..) => "ambiguous_target",
            StatusError::UnknownTarget(..) => "unknown_target",
            StatusError::Down { .. } => "down",
        }
    }

    /// True for a failure worth retrying while waiting (the exporter or Bitbucket may be
    /// restarting mid-upgrade).
    fn transient(&self) -> bool {
        matches!(
            self,
            StatusError::Exporter { .. } | StatusError::Down { .. }
        )
    }
}

/// Where the status comes from.
enum Source {
    Exporter {
        http: reqwest::Client,
        base: String,
        target: String,
    },
    Bitbucket {
        poller: Box<Poller>,
        shared: Arc<TargetShared>,
        /// When the first poll was made: an upgrade "started" then was already running, so
        /// its start, elapsed time and ETA are unknown.
        first_poll: Option<f64>,
    },
}

async fn get_json<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    url: &str,
) -> Result<(u16, Option<T>), StatusError> {
    let err = |message: String| StatusError::Exporter {
        url: url.to_string(),
        message,
    };
    let resp = http
        .get(url)
        .send()
        .await
        .map_err(|e| err(crate::client::error_chain(&e)))?;
    let status = resp.status().as_u16();
    if status == 404 {
        return Ok((status, None));
    }
    if !resp.status().is_success() {
        return Err(err(format!("HTTP {status}")));
    }
    let body = crate::cli::status_safety::read_capped(resp)
        .await
        .map_err(err)?;
    serde_json::from_slice(&body)
        .map(|v| (status, Some(v)))
        .map_err(|e| err(format!("not the exporter's JSON API: {e}")))
}

impl Source {
    async fn open(args: &StatusArgs) -> Result<Source, StatusError> {
        match &args.exporter_url {
            Some(url) => {
                crate::cli::status_safety::refuse_credentials(url)
                    .map_err(|m| StatusError::Client(m.to_string()))?;
                let http = reqwest::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .map_err(|e| StatusError::Client(e.to_string()))?;
                let base = url.trim_end_matches('/').to_string();
                let list_url = format!("{base}/api/v1/targets");
                let (_, list) = get_json::<TargetList>(&http, &list_url).await?;
                let list = list.ok_or_else(|| StatusError::Exporter {
                    url: list_url.clone(),
                    message: "HTTP 404 (an exporter without the JSON API?)".into(),
                })?;
                let names: Vec<String> = list
                    .targets
                    .iter()
                    .map(|t| crate::cli::status_safety::escape(&t.name))
                    .collect();
                let target = pick(args.target.as_deref(), &names)?;
                Ok(Source::Exporter { http, base, target })
            }
            None => {
                let config = Config::from_args(&args.exporter, &ProcessEnv)?;
                let names: Vec<String> = config
                    .targets()
                    .iter()
                    .map(|t| t.name().to_string())
                    .collect();
                let name = pick(args.target.as_deref(), &names)?;
                let target = config
                    .targets()
                    .iter()
                    .find(|t| t.name() == name)
                    .cloned()
                    .expect("picked from the list");
                let client = ZduClient::new(target.clone())
                    .map_err(|e| StatusError::Client(e.to_string()))?;
                let shared = TargetShared::new(target, &Tracker::default());
                let poller = Poller::new(client, shared.clone(), Arc::new(StateStore::in_memory()));
                Ok(Source::Bitbucket {
                    poller: Box::new(poller),
                    shared,
                    first_poll: None,
                })
            }
        }
    }

    async fn read(&mut self) -> Result<TargetView, StatusError> {
        let view = match self {
            Source::Exporter { http, base, target } => {
                let url = format!(
                    "{base}/api/v1/targets/{}/upgrade",
                    api::path_segment(target)
                );
                match get_json::<TargetView>(http, &url).await? {
                    (_, Some(v)) => v,
                    (_, None) => {
                        return Err(StatusError::UnknownTarget(target.clone(), String::new()))
                    }
                }
            }
            Source::Bitbucket {
                poller,
                shared,
                first_poll,
            } => {
                poller.poll_once().await;
                let mut v = api::view(shared);
                let first = *first_poll.get_or_insert(v.generated_at);
                if let Some(u) = v.upgrade.as_mut().filter(|u| u.started_at <= first) {
                    // Already under way at the first poll: no start, elapsed time or ETA.
                    u.elapsed_seconds = None;
                    u.estimated_completion_at = None;
                    u.remaining_seconds = None;
                }
                v
            }
        };
        let mut view = view;
        crate::cli::status_safety::escape_view(&mut view);
        require_up(view)
    }
}

/// The view when the target is up, else the error `status` reports: the reason the
/// projection gives ([`crate::api::view`]), as every other reader shows it.
pub fn require_up(view: TargetView) -> Result<TargetView, StatusError> {
    match (view.up, &view.down_reason) {
        (true, _) => Ok(view),
        (false, reason) => Err(StatusError::Down {
            reason: reason.clone().unwrap_or_else(|| "unknown".into()),
            target: view.target,
        }),
    }
}

fn pick(wanted: Option<&str>, names: &[String]) -> Result<String, StatusError> {
    match wanted {
        Some(w) if names.iter().any(|n| n == w) => Ok(w.to_string()),
        Some(w) => Err(StatusError::UnknownTarget(w.to_string(), names.join(", "))),
        None if names.len() == 1 => Ok(names[0].clone()),
        None => Err(StatusError::AmbiguousTarget(names.len(), names.join(", "))),
    }
}

fn or_dash<T: ToString>(v: &Option<T>) -> String {
    v.as_ref()
        .map(|v| v.to_string())
        .unwrap_or_else(|| "-".into())
}

fn secs(s: f64) -> String {
    format_duration(Duration::from_secs(s.max(0.0) as u64))
}

/// The one-line summary: state, progress, elapsed, ETA and the allowed action.
pub fn summary(v: &TargetView) -> String {
    // A Bitbucket target's line stays as it always was; other products are named.
    let product = match v.product {
        crate::model::Product::Bitbucket => String::new(),
        p => format!(" ({})", p.title()),
    };
    let mut s = format!(
        "{}{product}: {}",
        v.target,
        v.cluster_state.as_deref().unwrap_or("(no state)")
    );
    match &v.upgrade {
        Some(u) => {
            s.push_str(&format!(
                ", {} of {} nodes upgraded",
                u.nodes_done, u.nodes_total
            ));
            // None: the upgrade was under way before this process first looked.
            if let Some(elapsed) = u.elapsed_seconds {
                s.push_str(&format!(", elapsed {}", secs(elapsed)));
            }
            if let Some(r) = u.remaining_seconds {
                s.push_str(&format!(", ETA {}", secs(r)));
            }
        }
        None => s.push_str(&format!(", versions {}", v.versions.join(", "))),
    }
    if !v.allowed_actions.is_empty() {
        s.push_str(&format!(", allowed: {}", v.allowed_actions.join(", ")));
    }
    s
}

/// The full report: the summary, one line per node entry and the next node to stop.
pub fn report(v: &TargetView) -> String {
    let mut out = summary(v) + "\n";
    for n in &v.nodes {
        out.push_str(&format!(
            "  {:<24} {:<22} {:<12} {:<10} users {:<4} tasks {}{}\n",
            n.name.as_deref().unwrap_or("-"),
            n.address,
            n.state.as_deref().unwrap_or("-"),
            n.version.as_deref().unwrap_or("-"),
            or_dash(&n.active_users),
            or_dash(&n.tasks),
            n.marks()
        ));
    }
    if let Some(next) = &v.next_node {
        out.push_str(&format!(
            "  next to stop: {} (users {}, tasks {}){}\n",
            next.name.as_deref().unwrap_or(&next.id),
            or_dash(&next.active_users),
            or_dash(&next.tasks),
            if next.safe { ", safe to stop" } else { "" }
        ));
    }
    out
}

/// What a view means for `--wait`: settled, failed, or not yet (None).
pub fn judge(v: &TargetView) -> Option<Outcome> {
    if v.cluster_state.as_deref() == Some("UPGRADE_TASKS_FAILED") {
        Some(Outcome::TasksFailed)
    } else if v.has_node_in_error() {
        Some(Outcome::NodeError)
    } else if v.is_settled() {
        Some(Outcome::Settled)
    } else {
        None
    }
}

/// Writes the timed-out line; the outcome.
fn timed_out(out: &mut dyn Write, progress_shown: bool, timeout: Duration) -> Outcome {
    if progress_shown {
        let _ = out.write_all(b"\n");
    }
    let _ = writeln!(
        out,
        "timed out after {} waiting for STABLE on one version",
        format_duration(timeout)
    );
    Outcome::TimedOut
}

/// Runs `status`, writing to `out`; `tty` chooses the in-place progress line. Every read
/// (opening included) ends at the `--timeout` deadline; with `--wait`, failures to read the
/// exporter (unreachable, a redirect, 401, a 5xx) and a target that is down are waited
/// out, from the first read on.
pub async fn run(
    args: &StatusArgs,
    out: &mut dyn Write,
    tty: bool,
) -> Result<Outcome, StatusError> {
    let deadline = Instant::now() + args.timeout.0;
    use crate::cli::status_safety::within;
    let mut source: Option<Source> = None;
    if !args.wait {
        let read = within(deadline, async {
            let mut s = Source::open(args).await?;
            s.read().await
        });
        let Some(v) = read.await else {
            return Ok(timed_out(out, false, args.timeout.0));
        };
        let _ = out.write_all(report(&v?).as_bytes());
        return Ok(Outcome::Settled);
    }
    let mut last_line = String::new();
    let mut progress_shown = false;
    loop {
        let read = within(deadline, async {
            if source.is_none() {
                source = Some(Source::open(args).await?);
            }
            source.as_mut().expect("opened above").read().await
        });
        let line = match read.await {
            None => return Ok(timed_out(out, progress_shown, args.timeout.0)),
            Some(Ok(v)) => {
                if let Some(outcome) = judge(&v) {
                    if progress_shown {
                        let _ = out.write_all(b"\r\x1b[2K");
                    }
                    let _ = out.write_all(report(&v).as_bytes());
                    return Ok(outcome);
                }
                summary(&v)
            }
            Some(Err(e)) if e.transient() => format!("waiting: {e}"),
            Some(Err(e)) => return Err(e),
        };
        if tty {
            let _ = write!(out, "\r\x1b[2K{line}");
            progress_shown = true;
        } else if line != last_line {
            let _ = writeln!(out, "{line}");
        }
        let _ = out.flush();
        last_line = line;
        let now = Instant::now();
        if now >= deadline {
            return Ok(timed_out(out, progress_shown, args.timeout.0));
        }
        tokio::time::sleep(args.wait_interval.0.min(deadline - now)).await;
    }
}

/// `status` on standard output, with progress in place when it is a terminal.
pub async fn run_stdout(args: &StatusArgs) -> Result<Outcome, StatusError> {
    let stdout = std::io::stdout();
    let tty = stdout.is_terminal();
    let mut lock = stdout.lock();
    run(args, &mut lock, tty).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(state: &str, versions: &[&str]) -> TargetView {
        serde_json::from_value(serde_json::json!({
            "target": "t", "generated_at": 0.0, "up": true, "down_reason": null,
            "cluster_state": state, "cluster_state_since": null, "upgrade_mode_enabled": false,
            "original_version": null, "versions": versions, "allowed_actions": [],
            "nodes": [], "next_node": null, "upgrade": null, "recent_transitions": [],
            "history": [], "results": {"completed": 0, "cancelled": 0, "failed_finalization": 0}
        }))
        .unwrap()
    }

    #[test]
    fn the_summary_names_a_product_other_than_bitbucket() {
        let mut v = view("MIXED", &["1", "2"]);
        assert!(summary(&v).starts_with("t: MIXED"), "{}", summary(&v));
        v.product = crate::model::Product::Jira;
        assert!(
            summary(&v).starts_with("t (Jira): MIXED"),
            "{}",
            summary(&v)
        );
    }

    #[test]
    fn wait_judges_states() {
        assert_eq!(judge(&view("STABLE", &["1"])), Some(Outcome::Settled));
        assert_eq!(judge(&view("STABLE", &["1", "2"])), None);
        assert_eq!(judge(&view("MIXED", &["1", "2"])), None);
        assert_eq!(
            judge(&view("UPGRADE_TASKS_FAILED", &["2"])),
            Some(Outcome::TasksFailed)
        );
        let mut e = view("MIXED", &["1"]);
        e.nodes.push(api::NodeView {
            id: "n".into(),
            name: None,
            address: String::new(),
            state: Some("ERROR".into()),
            version: None,
            active_users: None,
            tasks: None,
            ghost: false,
            state_since: None,
            alive: None,
            finalization_errors: None,
        });
        assert_eq!(judge(&e), Some(Outcome::NodeError));
        let codes: Vec<u8> = [
            Outcome::Settled,
            Outcome::TasksFailed,
            Outcome::NodeError,
            Outcome::TimedOut,
        ]
        .iter()
        .map(|o| o.exit_code())
        .collect();
        assert_eq!(codes, vec![0, 3, 4, 5]);
    }

    #[test]
    fn target_is_picked_or_refused() {
        let names = vec!["a".to_string()];
        assert_eq!(pick(None, &names).unwrap(), "a");
        assert!(matches!(
            pick(Some("b"), &names),
            Err(StatusError::UnknownTarget(..))
        ));
        let two = vec!["a".to_string(), "b".to_string()];
        assert!(matches!(
            pick(None, &two),
            Err(StatusError::AmbiguousTarget(2, _))
        ));
    }
}
