//! Shell completions and manual pages come from the command-line definitions:
//! every subcommand is in every shell's completions and has a page, and every
//! subcommand's help shows an example.

mod common;

use clap::CommandFactory;
use common::bin::{eqopt, ok, s};

/// Every subcommand path (`optimize`, `rules list`, ...).
fn subcommands() -> Vec<(String, clap::Command)> {
    let mut out = Vec::new();
    for sub in eqopt::cli::Cli::command().get_subcommands() {
        if sub.has_subcommands() {
            for inner in sub.get_subcommands() {
                out.push((format!("{} {}", sub.get_name(), inner.get_name()), inner.clone()));
            }
        } else {
            out.push((sub.get_name().to_string(), sub.clone()));
        }
    }
    out
}

#[test]
fn completions_name_every_subcommand_in_every_shell() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let text = ok(&eqopt(&["completions", shell]));
        for (path, _) in subcommands() {
            let last = path.split(' ').next_back().unwrap();
            assert!(text.contains(last), "{shell} completions lack {path}");
        }
    }
}

#[test]
fn man_writes_a_page_per_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let out = ok(&eqopt(&["man", "-o", s(dir.path())]));
    assert!(out.contains("eqopt.1"), "{out}");
    for (path, _) in subcommands() {
        let page = dir.path().join(format!("eqopt-{}.1", path.replace(' ', "-")));
        let text = std::fs::read_to_string(&page).unwrap_or_else(|e| panic!("{}: {e}", page.display()));
        assert!(text.contains(".TH"), "{}: not a manual page", page.display());
    }
    let main = ok(&eqopt(&["man"]));
    assert!(
        main.contains(".TH eqopt 1") && main.contains("optimize"),
        "{}",
        &main[..main.len().min(400)]
    );
}

#[test]
fn every_subcommand_help_shows_an_example() {
    for (path, mut cmd) in subcommands() {
        let help = cmd.render_long_help().to_string();
        assert!(help.contains("Example: eqopt "), "`eqopt {path} --help` shows no example:\n{help}");
    }
}
