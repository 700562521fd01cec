//! Log output and progress bars, both on stderr so stdout carries only results
//! (one JSON document under `--json`).
//!
//! [`init`] installs a `tracing` subscriber whose level follows `-v`/`-q`:
//! warnings by default, `-v` info, `-vv` debug, `-vvv` trace, `-q` errors
//! only. [`progress`] and [`spinner`] draw on stderr when both stdout and
//! stderr are terminals and `-q` is not given; otherwise they return hidden
//! bars, which cost nothing.
//! Log lines are written with the bars suspended, so they do not tear them.

use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressFinish, ProgressStyle};
use std::io::{IsTerminal, Write};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tracing::level_filters::LevelFilter;

/// Flags every subcommand takes.
#[derive(Args, Debug)]
pub(super) struct GlobalArgs {
    /// More log output on stderr (-v: info, -vv: debug, -vvv: trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors on stderr, and no progress bars.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
}

impl GlobalArgs {
    /// The most detailed level logged.
    fn level(&self) -> LevelFilter {
        if self.quiet {
            return LevelFilter::ERROR;
        }
        match self.verbose {
            0 => LevelFilter::WARN,
            1 => LevelFilter::INFO,
            2 => LevelFilter::DEBUG,
            _ => LevelFilter::TRACE,
        }
    }
}

/// Set by [`init`] under `-q`: no progress bars.
static QUIET: AtomicBool = AtomicBool::new(false);

/// Every visible bar belongs to this group, so log lines can suspend them.
fn bars() -> &'static MultiProgress {
    static BARS: OnceLock<MultiProgress> = OnceLock::new();
    BARS.get_or_init(MultiProgress::new)
}

/// Writes one formatted log event to stderr with the progress bars cleared
/// around it.
struct SuspendingStderr;

impl Write for SuspendingStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        bars().suspend(|| std::io::stderr().lock().write_all(buf))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// Installs the log subscriber (level from `args`, no timestamps, colour only
/// on a terminal) and records whether progress bars may draw. Called once, at
/// the start of `main`; a second call changes nothing.
pub(super) fn init(args: &GlobalArgs) {
    QUIET.store(args.quiet, Ordering::Relaxed);
    let _ = tracing_subscriber::fmt()
        .with_max_level(args.level())
        .with_writer(|| SuspendingStderr)
        .with_ansi(std::io::stderr().is_terminal())
        .without_time()
        .with_target(true)
        .try_init();
}

/// Whether progress bars draw: stdout and stderr are terminals (an
/// interactive session, not a pipe, a file or CI's log) and `-q` was not given.
fn bars_visible() -> bool {
    !QUIET.load(Ordering::Relaxed) && std::io::stderr().is_terminal() && std::io::stdout().is_terminal()
}

/// A progress bar over `len` steps, labelled `what`, drawn on stderr:
/// `what [bar] pos/len elapsed (eta)` followed by the bar's message.
///
/// Hidden (every call a no-op) under `-q` or when stderr is not a terminal.
/// Dropping the last clone of the bar clears it; `finish_and_clear` does so
/// early. The bar is `Send + Sync` and may be advanced from any thread.
pub(crate) fn progress(len: u64, what: &str) -> ProgressBar {
    if !bars_visible() {
        return ProgressBar::hidden();
    }
    let style = ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {elapsed} (eta {eta}) {wide_msg}")
        .expect("a valid template")
        .progress_chars("=> ");
    let bar = ProgressBar::new(len)
        .with_style(style)
        .with_prefix(what.to_string())
        .with_finish(ProgressFinish::AndClear);
    bars().add(bar)
}

/// A spinner labelled `what` for work of unknown length, drawn on stderr and
/// ticking on its own; hidden as [`progress`] is. Dropping it clears it.
pub(crate) fn spinner(what: &str) -> ProgressBar {
    if !bars_visible() {
        return ProgressBar::hidden();
    }
    let style = ProgressStyle::with_template("{spinner} {prefix} {elapsed} {wide_msg}").expect("a valid template");
    let bar = ProgressBar::new_spinner()
        .with_style(style)
        .with_prefix(what.to_string())
        .with_finish(ProgressFinish::AndClear);
    let bar = bars().add(bar);
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Probe {
        #[command(flatten)]
        global: GlobalArgs,
    }

    fn level(args: &[&str]) -> LevelFilter {
        Probe::parse_from(std::iter::once("eqopt").chain(args.iter().copied()))
            .global
            .level()
    }

    #[test]
    fn flags_set_the_level() {
        assert_eq!(level(&[]), LevelFilter::WARN);
        assert_eq!(level(&["-v"]), LevelFilter::INFO);
        assert_eq!(level(&["-vv"]), LevelFilter::DEBUG);
        assert_eq!(level(&["-vvv"]), LevelFilter::TRACE);
        assert_eq!(level(&["-vvvv"]), LevelFilter::TRACE);
        assert_eq!(level(&["-q"]), LevelFilter::ERROR);
    }

    #[test]
    fn quiet_hides_the_bars() {
        QUIET.store(true, Ordering::Relaxed);
        assert!(progress(3, "work").is_hidden());
        assert!(spinner("work").is_hidden());
    }
}
