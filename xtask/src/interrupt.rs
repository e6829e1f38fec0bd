//! Ctrl-C for every command, taken by one thread with `sigwait` instead of a signal handler.
//!
//! cosmolkit's substructure search (as RDKit's `ControlCHandler`) installs its own SIGINT handler
//! around every match and puts back the one it found. With matches on several threads at once
//! (the filters and BRICS in `chem metrics`, a run's final evaluation) its own handler is what
//! gets put back, and it stays: a Ctrl-C then only cuts the running matches short, so the
//! command goes on and prints metrics from incomplete matches, and a sweep does not stop. A
//! blocked signal reaches no handler, whoever installed it, so SIGINT is blocked in every thread
//! from the first line of `main` and waited for here. Children must not inherit the blocked
//! mask: they are started through [`status`] and [`output`] (xtask's `clippy.toml` forbids the
//! other ways).

use std::io;
use std::process::{Command, ExitStatus, Output};
use std::sync::Mutex;

use anyhow::Context;
use nix::sys::signal::{SigSet, Signal};

/// The exit status after a Ctrl-C (128 + SIGINT, as a shell reports a process it ended).
pub const INTERRUPTED: i32 = 130;

type Action = Box<dyn FnMut() + Send>;

/// What a Ctrl-C does; `None`: end the process with [`INTERRUPTED`].
static ON_CTRL_C: Mutex<Option<Action>> = Mutex::new(None);

/// Blocks SIGINT in this thread, and so in every thread started after, and starts the thread
/// that takes it. Call it first in `main`, before any other thread exists.
pub fn watch() -> anyhow::Result<()> {
    let sigint = sigint();
    sigint.thread_block().context("cannot block SIGINT")?;
    let started = std::thread::Builder::new()
        .name("ctrl-c".to_owned())
        .spawn(move || {
            loop {
                if sigint.wait() == Ok(Signal::SIGINT) {
                    let mut action = ON_CTRL_C.lock().unwrap_or_else(|p| p.into_inner());
                    match action.as_mut() {
                        Some(action) => action(),
                        None => std::process::exit(INTERRUPTED),
                    }
                }
            }
        });
    if let Err(e) = started {
        // Nobody would take a blocked Ctrl-C: leave it to its default (ending the process).
        let _ = sigint.thread_unblock();
        return Err(e).context("cannot start the thread that handles Ctrl-C");
    }
    Ok(())
}

/// Runs `action` on each Ctrl-C from now on, instead of ending the process.
pub fn on_ctrl_c(action: impl FnMut() + Send + 'static) {
    *ON_CTRL_C.lock().unwrap_or_else(|p| p.into_inner()) = Some(Box::new(action));
}

/// `cmd.status()`, the child started with SIGINT unblocked (see [`unblocked`]); a child that
/// Ctrl-C ended ends xtask too, as if xtask had been given it.
#[allow(clippy::disallowed_methods)]
pub fn status(cmd: &mut Command) -> io::Result<ExitStatus> {
    let status = unblocked(|| cmd.status())?;
    if ended_by_sigint(&status) {
        std::process::exit(INTERRUPTED);
    }
    Ok(status)
}

/// `cmd.output()`, as [`status`].
#[allow(clippy::disallowed_methods)]
pub fn output(cmd: &mut Command) -> io::Result<Output> {
    let output = unblocked(|| cmd.output())?;
    if ended_by_sigint(&output.status) {
        std::process::exit(INTERRUPTED);
    }
    Ok(output)
}

/// Whether a child was ended by SIGINT: a Ctrl-C reaches the whole foreground process group,
/// so the child had it as well, and it may have reached no xtask thread that acts on it.
fn ended_by_sigint(status: &ExitStatus) -> bool {
    use std::os::unix::process::ExitStatusExt;
    status.signal() == Some(Signal::SIGINT as i32)
}

/// Runs `run` (which starts a child process and waits for it) with SIGINT unblocked in this
/// thread. A child inherits the signal mask of the thread that starts it, through exec too, and
/// std's `Command` keeps it: with SIGINT blocked, `cargo` or Python would outlive a Ctrl-C.
/// Meanwhile a Ctrl-C may reach this thread's handler instead of the watching thread, which ends
/// xtask or (cosmolkit's handler) is lost; the child gets the terminal's SIGINT either way and
/// ends, and xtask reports that it failed.
fn unblocked<T>(run: impl FnOnce() -> T) -> T {
    let sigint = sigint();
    let _ = sigint.thread_unblock();
    let result = run();
    let _ = sigint.thread_block();
    result
}

fn sigint() -> SigSet {
    let mut set = SigSet::empty();
    set.add(Signal::SIGINT);
    set
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// Whether SIGINT (bit 2 of the mask) is blocked in a child started by `run`: grep finds it
    /// in the child's own `/proc/self/status`.
    fn blocked_in_child(run: impl FnOnce(&mut Command) -> io::Result<ExitStatus>) -> bool {
        let mut grep = Command::new("grep");
        grep.args([
            "-Eq",
            r"^SigBlk:\s+[0-9a-f]*[2367abef]$",
            "/proc/self/status",
        ]);
        match run(&mut grep).unwrap().code() {
            Some(0) => true,
            Some(1) => false,
            other => panic!("grep failed: {other:?}"),
        }
    }

    #[test]
    #[allow(clippy::disallowed_methods)]
    fn children_start_with_sigint_unblocked() {
        sigint().thread_block().unwrap();
        // Why the helpers exist: std passes the blocked mask on.
        assert!(blocked_in_child(|cmd| cmd.status()));
        assert!(!blocked_in_child(status));
        assert!(!blocked_in_child(|cmd| output(cmd).map(|out| out.status)));
        // And this thread has it blocked again.
        assert!(SigSet::thread_get_mask().unwrap().contains(Signal::SIGINT));
        sigint().thread_unblock().unwrap();
    }

    #[test]
    #[allow(clippy::disallowed_methods)]
    fn a_child_that_ctrl_c_ended_is_told_apart() {
        let ended = |script: &str| {
            let status = Command::new("sh").args(["-c", script]).status().unwrap();
            ended_by_sigint(&status)
        };
        assert!(ended("kill -INT $$"));
        assert!(!ended("kill -TERM $$"));
        assert!(!ended("exit 130"));
        assert!(!ended("exit 0"));
    }
}
