//! Shell completions and man pages, generated from the clap definitions of the command line
//! (`completions SHELL`, `man`), so they can never list a flag the binary does not have.
//!
//! Everything here takes a [`clap::Command`], built by the caller with
//! `<Cli as clap::CommandFactory>::command()`; this module knows nothing of the flags.

use std::io::Write;
use std::path::{Path, PathBuf};

pub use clap_complete::Shell;

/// Flags of `completions`.
#[derive(Debug, Clone, clap::Args)]
pub struct CompletionsArgs {
    /// Shell to write the completion script for.
    #[arg(value_enum)]
    pub shell: Shell,
}

/// Flags of `man`.
#[derive(Debug, Clone, clap::Args)]
pub struct ManArgs {
    /// Write one page per command (NAME.1, NAME-SUBCOMMAND.1) into this directory instead of
    /// the top-level page to stdout.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// Errors of writing completions or man pages.
#[derive(Debug, thiserror::Error)]
pub enum CliDocsError {
    /// Writing to the output failed.
    #[error("cannot write the output: {0}")]
    Write(#[source] std::io::Error),
    /// The man page directory cannot be created.
    #[error("cannot create the man page directory {path}: {source}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

impl CliDocsError {
    /// Small fixed label of the failure.
    pub fn reason(&self) -> &'static str {
        match self {
            CliDocsError::Write(_) => "write",
            CliDocsError::CreateDir { .. } => "create_dir",
        }
    }
}

/// Runs `man`: the top-level page to `out`, or every page into `--dir` with the files
/// written listed on `out`, one a line.
pub fn run_man(
    cmd: clap::Command,
    args: &ManArgs,
    out: &mut dyn Write,
) -> Result<(), CliDocsError> {
    match &args.dir {
        None => write_man_page(cmd, out),
        Some(dir) => {
            for path in write_man_pages(cmd, dir)? {
                writeln!(out, "{}", path.display()).map_err(CliDocsError::Write)?;
            }
            out.flush().map_err(CliDocsError::Write)
        }
    }
}

/// Writes the completion script of `shell` for `cmd` to `out`.
pub fn write_completions(
    mut cmd: clap::Command,
    shell: Shell,
    out: &mut dyn Write,
) -> Result<(), CliDocsError> {
    let name = cmd.get_name().to_string();
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut cmd, name, &mut buf);
    out.write_all(&buf).map_err(CliDocsError::Write)?;
    out.flush().map_err(CliDocsError::Write)
}

/// Writes the man page (roff, section 1) of `cmd` itself to `out`; its subcommands are listed
/// by name (their own pages come from [`write_man_pages`]).
pub fn write_man_page(cmd: clap::Command, out: &mut dyn Write) -> Result<(), CliDocsError> {
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd)
        .render(&mut buf)
        .map_err(CliDocsError::Write)?;
    out.write_all(&buf).map_err(CliDocsError::Write)?;
    out.flush().map_err(CliDocsError::Write)
}

/// Writes one man page per command into `dir`: `NAME.1` and `NAME-SUBCOMMAND.1` for each
/// visible subcommand. Returns the files written, the top-level page first.
pub fn write_man_pages(cmd: clap::Command, dir: &Path) -> Result<Vec<PathBuf>, CliDocsError> {
    std::fs::create_dir_all(dir).map_err(|source| CliDocsError::CreateDir {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut cmd = cmd;
    cmd.build();
    let mut written = Vec::new();
    write_pages(&cmd, dir, &mut written)?;
    Ok(written)
}

/// After `build()` a subcommand's display name is `NAME-SUBCOMMAND`, which names its page.
fn write_pages(
    cmd: &clap::Command,
    dir: &Path,
    written: &mut Vec<PathBuf>,
) -> Result<(), CliDocsError> {
    let page = clap_mangen::Man::new(cmd.clone());
    let path = dir.join(page.get_filename());
    let mut buf = Vec::new();
    page.render(&mut buf).map_err(CliDocsError::Write)?;
    std::fs::write(&path, buf).map_err(CliDocsError::Write)?;
    written.push(path);
    for sub in visible_subcommands(cmd) {
        write_pages(sub, dir, written)?;
    }
    Ok(())
}

fn visible_subcommands(cmd: &clap::Command) -> impl Iterator<Item = &clap::Command> {
    cmd.get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
}

/// Every visible long flag of `cmd` and its subcommands, as (`subcommand path`, `--flag`):
/// the path is empty for the top level and `demo` or `completions` below it. `--help` and
/// `--version` are included where clap adds them.
pub fn long_flags(cmd: clap::Command) -> Vec<(String, String)> {
    let mut cmd = cmd;
    cmd.build();
    let mut flags = Vec::new();
    collect_flags(&cmd, String::new(), &mut flags);
    flags
}

fn collect_flags(cmd: &clap::Command, path: String, flags: &mut Vec<(String, String)>) {
    for arg in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
        if let Some(long) = arg.get_long() {
            flags.push((path.clone(), format!("--{long}")));
        }
    }
    for sub in visible_subcommands(cmd) {
        let sub_path = if path.is_empty() {
            sub.get_name().to_string()
        } else {
            format!("{path} {}", sub.get_name())
        };
        collect_flags(sub, sub_path, flags);
    }
}
