//! Command-line entry point: parses the command line, sets up logging, runs the chosen mode
//! from the library and prints any error with its chain. All logic lives in the library.
#![forbid(unsafe_code)]

use clap::{CommandFactory, Parser};

use bitbucket_zdu_exporter::config::{Cli, Command};
use bitbucket_zdu_exporter::{cli_docs, client, demo, logging, run, shutdown_signal, simulator};

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
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
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn dispatch(cli: Cli) -> anyhow::Result<()> {
    client::install_crypto_provider();
    let args = cli.exporter;
    match cli.command {
        Some(Command::Simulate(sim)) => {
            logging::init(args.log_level, args.log_format);
            simulator::run(sim, shutdown_signal()).await?;
        }
        Some(Command::Demo(demo_args)) => {
            logging::init(args.log_level, args.log_format);
            demo::run(demo_args, shutdown_signal()).await?;
        }
        Some(Command::Completions(c)) => {
            cli_docs::write_completions(Cli::command(), c.shell, &mut std::io::stdout().lock())?
        }
        Some(Command::Man(m)) => {
            cli_docs::run_man(Cli::command(), &m, &mut std::io::stdout().lock())?
        }
        None if args.config_check => println!("{}", run::check_config(&args)?),
        None => {
            logging::init(args.log_level, args.log_format);
            run::run_exporter(args, shutdown_signal()).await?;
        }
    }
    Ok(())
}
