//! A finished command's `Output` in assertions: shown whole, and checked for success.

use std::process::Output;

/// Exit status, stdout and stderr of `out`, for a failure message.
#[must_use]
pub fn show(out: &Output) -> String {
    format!(
        "status {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout).trim_end(),
        String::from_utf8_lossy(&out.stderr).trim_end()
    )
}

/// Assert that `what` (the command that gave `out`) succeeded; on failure show its output
/// and, unless empty, the agent's `log`.
///
/// # Panics
/// When it failed.
pub fn assert_ok(out: &Output, what: &str, log: &str) {
    assert!(
        out.status.success(),
        "{what} failed:\n{}{}",
        show(out),
        if log.is_empty() {
            String::new()
        } else {
            format!("\nagent log:\n{log}")
        }
    );
}
