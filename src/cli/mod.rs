//! The command line of the binary: the exporter's flags, the logging flags every mode shares,
//! the `completions` and `man` subcommands and, with the `simulator` feature, the `simulate`
//! and `demo` subcommands. This module sits
//! above [`config`](crate::config), `demo` and `simulator`, so none of them depends on
//! another through it.

#[cfg(feature = "simulator")]
pub mod demo;
pub mod docs;
pub mod exporter;
pub mod logging;
#[cfg(feature = "simulator")]
pub mod simulate;
pub mod status;
pub mod status_safety;

use clap::{CommandFactory, FromArgMatches, Parser};

use crate::config::{ExporterArgs, LogArgs};

/// Command line of the binary.
#[derive(Debug, Parser)]
#[command(
    name = "bitbucket-zdu-exporter",
    version = crate::sys::version::VERSION_LONG,
    about = "Prometheus exporter for Bitbucket Data Center rolling upgrades (ZDU).",
    long_about = "Prometheus exporter for Bitbucket Data Center rolling upgrades (ZDU).\n\n\
        Without a subcommand it polls GET /rest/zdu/cluster and /rest/zdu/state of one or more \
        Bitbucket clusters and serves the results on /metrics. Secrets are read from files or \
        from the BITBUCKET_ZDU_PASSWORD / BITBUCKET_ZDU_TOKEN environment variables, never \
        from flags."
)]
pub struct Cli {
    /// A subcommand instead of the exporter.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Logging, for every mode.
    #[command(flatten)]
    pub log: LogArgs,
    /// The exporter's flags (refused together with a subcommand).
    #[command(flatten)]
    pub exporter: ExporterArgs,
}

/// Subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Serve a simulated Bitbucket ZDU API on loopback (no Bitbucket needed).
    #[cfg(feature = "simulator")]
    Simulate(crate::simulator::SimulateArgs),
    /// Run the simulator and the exporter together in one process and print the URL to open.
    #[cfg(feature = "simulator")]
    Demo(crate::cli::demo::DemoArgs),
    /// Print a target's upgrade state and nodes; with --wait, block until it is STABLE on one
    /// version (exit codes: 0 settled, 1 error, 2 usage, 3 UPGRADE_TASKS_FAILED, 4 a node in
    /// ERROR, 5 timeout).
    Status(Box<crate::cli::status::StatusArgs>),
    /// Print a shell completion script for this binary to standard output.
    Completions(crate::cli::docs::CompletionsArgs),
    /// Print the man page (or write one page per subcommand with --dir).
    Man(crate::cli::docs::ManArgs),
}

impl Cli {
    /// Parses the process's command line; on an error prints it (or the help) and exits.
    pub fn parse_checked() -> Cli {
        Cli::try_parse_checked_from(std::env::args_os()).unwrap_or_else(|e| e.exit())
    }

    /// Parses `argv` like [`Parser::try_parse_from`] and also refuses exporter flags given on
    /// the command line together with a subcommand (`--bitbucket.url=… simulate`), which
    /// the subcommand would otherwise silently ignore. Environment variables are not
    /// refused: a shell that sets them for the exporter may still run `demo`.
    pub fn try_parse_checked_from<I, T>(argv: I) -> Result<Cli, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let mut cmd = Cli::command();
        let matches = cmd.try_get_matches_from_mut(argv)?;
        if let Some((sub, _)) = matches.subcommand() {
            let given = cmd
                .get_arguments()
                .filter(|a| !a.is_global_set() && !LOG_FLAGS.contains(&a.get_id().as_str()))
                .filter(|a| {
                    matches.value_source(a.get_id().as_str())
                        == Some(clap::parser::ValueSource::CommandLine)
                })
                .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
                .collect::<Vec<_>>();
            if !given.is_empty() {
                return Err(cmd.error(
                    clap::error::ErrorKind::ArgumentConflict,
                    format!(
                        "the exporter flag(s) {} cannot be used with the `{sub}` subcommand; \
                         see `{sub} --help` for its own flags",
                        given.join(", ")
                    ),
                ));
            }
        }
        Cli::from_arg_matches(&matches).map_err(|e| e.format(&mut cmd))
    }
}

/// The argument ids of [`LogArgs`], which every mode accepts.
const LOG_FLAGS: [&str; 2] = ["log_level", "log_format"];

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}

#[cfg(all(test, feature = "simulator"))]
mod tests {
    use super::*;

    #[test]
    fn simulate_refuses_exporter_flags() {
        let e = Cli::try_parse_checked_from(["x", "--bitbucket.url=http://h:7990", "simulate"])
            .unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::ArgumentConflict);
        assert!(e.to_string().contains("--bitbucket.url"), "{e}");
        let e = Cli::try_parse_checked_from(["x", "--poll.interval=5s", "demo"]).unwrap_err();
        assert!(e.to_string().contains("--poll.interval"), "{e}");
    }

    #[test]
    fn subcommands_keep_the_log_flags_and_their_own() {
        let cli = Cli::try_parse_checked_from([
            "x",
            "--log.level=warn",
            "simulate",
            "--web.listen-address=127.0.0.1:0",
        ])
        .unwrap();
        assert_eq!(cli.log.log_level, crate::config::LogLevel::Warn);
        let Some(Command::Simulate(sim)) = cli.command else {
            panic!("not simulate");
        };
        assert_eq!(sim.listen_address.port(), 0);
        assert!(Cli::try_parse_checked_from(["x", "--bitbucket.url=http://h"]).is_ok());
        assert!(
            Cli::try_parse_checked_from(["x", "simulate", "--listen-address=127.0.0.1:0"]).is_err(),
            "the old flag name is gone"
        );
    }
}
