//! Running the `eqopt` binary from integration tests.

use std::path::Path;
use std::process::Output;

/// A configuration directory that does not exist: tests see the built-in `cpu`
/// profile even on a machine where `eqopt calibrate` wrote one.
pub const NO_CONFIG_DIR: &str = concat!(env!("CARGO_TARGET_TMPDIR"), "/eqopt-no-config");

/// Runs the `eqopt` binary from the repository root, with no calibrated profile.
pub fn eqopt(args: &[&str]) -> Output {
    eqopt_with_config(args, Path::new(NO_CONFIG_DIR))
}

/// Runs the `eqopt` binary from the repository root with `config` as its
/// configuration directory (`EQOPT_CONFIG_DIR`).
pub fn eqopt_with_config(args: &[&str], config: &Path) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_eqopt"))
        .args(args)
        .env("EQOPT_CONFIG_DIR", config)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("the eqopt binary runs")
}

/// Standard output as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Standard error as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts success and returns stdout.
pub fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "eqopt failed ({}):\nstdout:\n{}\nstderr:\n{}",
        o.status,
        stdout(o),
        stderr(o)
    );
    stdout(o)
}

/// Asserts a clean failure (exit code 1, an `error:` line, no panic) and returns stderr.
pub fn fails(o: &Output) -> String {
    assert_eq!(
        o.status.code(),
        Some(1),
        "eqopt should fail cleanly:\nstdout:\n{}\nstderr:\n{}",
        stdout(o),
        stderr(o)
    );
    let e = stderr(o);
    assert!(!e.contains("panicked"), "{e}");
    assert!(e.starts_with("error: "), "{e}");
    e
}

/// A path as `&str` (temporary paths are UTF-8).
pub fn s(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}
