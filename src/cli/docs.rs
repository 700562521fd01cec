//! `eqopt completions` and `eqopt man`: shell completions and manual pages
//! generated from the command-line definitions, so they never drift from them.

use super::Cli;
use crate::error::{Error, Result};
use clap::{Args, CommandFactory, ValueEnum};
use std::io::Write;
use std::path::PathBuf;

/// A shell `eqopt completions` writes for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(super) enum ShellName {
    /// Bash.
    Bash,
    /// Zsh.
    Zsh,
    /// Fish.
    Fish,
    /// Elvish.
    Elvish,
    /// PowerShell.
    Powershell,
}

#[derive(Args, Debug)]
pub(super) struct CompletionsArgs {
    /// The shell.
    shell: ShellName,
}

#[derive(Args, Debug)]
pub(super) struct ManArgs {
    /// Write eqopt.1 and one page per subcommand (eqopt-optimize.1, ...) into DIR;
    /// without it, print eqopt.1.
    #[arg(short, long, value_name = "DIR")]
    output: Option<PathBuf>,
}

pub(super) fn run_completions(a: &CompletionsArgs, out: &mut dyn Write) -> Result<()> {
    use clap_complete::Shell;
    let shell = match a.shell {
        ShellName::Bash => Shell::Bash,
        ShellName::Zsh => Shell::Zsh,
        ShellName::Fish => Shell::Fish,
        ShellName::Elvish => Shell::Elvish,
        ShellName::Powershell => Shell::PowerShell,
    };
    let mut buf: Vec<u8> = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "eqopt", &mut buf);
    out.write_all(&buf).map_err(|e| Error::io("<stdout>", e))
}

fn render(cmd: clap::Command) -> Result<Vec<u8>> {
    let mut buf: Vec<u8> = Vec::new();
    clap_mangen::Man::new(cmd)
        .render(&mut buf)
        .map_err(|e| Error::io("<manual page>", e))?;
    Ok(buf)
}

pub(super) fn run_man(a: &ManArgs, out: &mut dyn Write) -> Result<()> {
    let cmd = Cli::command();
    let Some(dir) = &a.output else {
        return out.write_all(&render(cmd)?).map_err(|e| Error::io("<stdout>", e));
    };
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    // Generated into a scratch directory beside the pages, then renamed into
    // place one by one: no page is ever half-written.
    let scratch = tempfile::tempdir_in(dir).map_err(|e| Error::io(dir, e))?;
    clap_mangen::generate_to(cmd, scratch.path()).map_err(|e| Error::io(scratch.path(), e))?;
    let mut written: Vec<String> = std::fs::read_dir(scratch.path())
        .map_err(|e| Error::io(scratch.path(), e))?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    written.sort();
    for name in &written {
        std::fs::rename(scratch.path().join(name), dir.join(name)).map_err(|e| Error::io(dir.join(name), e))?;
    }
    writeln!(out, "wrote {} pages into {}: {}", written.len(), dir.display(), written.join(", ")).map_err(|e| Error::io("<stdout>", e))
}
