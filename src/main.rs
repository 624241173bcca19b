//! Command-line entry point: parses the command line, sets up logging, runs the chosen mode
//! from the library and prints any error with its chain. All logic lives in the library.
#![forbid(unsafe_code)]

use clap::CommandFactory;

use bitbucket_zdu_exporter::cli::{self, exporter, logging, shutdown_signal, status, Cli, Command};
use bitbucket_zdu_exporter::client;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse_checked();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(dispatch(cli)) {
        Ok(code) => code,
        Err(e) => {
            // Each message once: an error that quotes its source is not followed by it again.
            let e: &dyn std::error::Error = e.as_ref();
            eprintln!("error: {}", client::error_chain(e));
            std::process::ExitCode::FAILURE
        }
    }
}

async fn dispatch(cli: Cli) -> anyhow::Result<std::process::ExitCode> {
    client::install_crypto_provider();
    let args = cli.exporter;
    let log = cli.log;
    match cli.command {
        #[cfg(feature = "simulator")]
        Some(Command::Simulate(sim)) => {
            logging::init(log.log_level, log.log_format);
            cli::simulate::run(sim, shutdown_signal()).await?;
        }
        #[cfg(feature = "simulator")]
        Some(Command::Demo(demo_args)) => {
            logging::init(log.log_level, log.log_format);
            cli::demo::run(demo_args, shutdown_signal()).await?;
        }
        Some(Command::Status(s)) => {
            logging::init(log.log_level, log.log_format);
            let outcome = status::run_stdout(&s).await?;
            return Ok(std::process::ExitCode::from(outcome.exit_code()));
        }
        Some(Command::Completions(c)) => {
            cli::docs::write_completions(Cli::command(), c.shell, &mut std::io::stdout().lock())?
        }
        Some(Command::Man(m)) => {
            cli::docs::run_man(Cli::command(), &m, &mut std::io::stdout().lock())?
        }
        None if args.config_check => println!("{}", exporter::check_config(&args)?),
        None => {
            logging::init(log.log_level, log.log_format);
            exporter::run_exporter(args, shutdown_signal()).await?;
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}
