//! Command-line entry point: parses the command line, sets up logging, runs the chosen mode
//! from the library and prints any error with its chain. All logic lives in the library.
#![forbid(unsafe_code)]

use bitbucket_zdu_exporter::cli::Cli;
#[cfg(feature = "simulator")]
use bitbucket_zdu_exporter::{cli::Command, demo, simulator};
use bitbucket_zdu_exporter::{client, logging, run, shutdown_signal};

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
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // Each message once: an error that quotes its source is not followed by it again.
            let e: &dyn std::error::Error = e.as_ref();
            eprintln!("error: {}", client::error_chain(e));
            std::process::ExitCode::FAILURE
        }
    }
}

async fn dispatch(cli: Cli) -> anyhow::Result<()> {
    client::install_crypto_provider();
    let args = cli.exporter;
    let log = cli.log;
    #[cfg(feature = "simulator")]
    match cli.command {
        Some(Command::Simulate(sim)) => {
            logging::init(log.log_level, log.log_format);
            simulator::run(sim, shutdown_signal()).await?;
            return Ok(());
        }
        Some(Command::Demo(demo_args)) => {
            logging::init(log.log_level, log.log_format);
            demo::run(demo_args, shutdown_signal()).await?;
            return Ok(());
        }
        None => {}
    }
    if args.config_check {
        println!("{}", run::check_config(&args)?);
    } else {
        logging::init(log.log_level, log.log_format);
        run::run_exporter(args, shutdown_signal()).await?;
    }
    Ok(())
}
