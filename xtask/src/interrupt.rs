//! Ctrl-C (SIGINT) and SIGTERM for every command, taken by one thread with `sigwait` instead of
//! a signal handler.
//!
//! cosmolkit's substructure search (as RDKit's `ControlCHandler`) installs its own SIGINT handler
//! around every match and puts back the one it found. With matches on several threads at once
//! (the filters and BRICS in `chem metrics`, a run's final evaluation) its own handler is what
//! gets put back, and it stays: a Ctrl-C then only cuts the running matches short, so the
//! command goes on and prints metrics from incomplete matches, and a sweep does not stop. A
//! blocked signal reaches no handler, whoever installed it, so both signals are blocked in every
//! thread from the first line of `main` and waited for here. SIGTERM, which a batch scheduler
//! or `docker stop` sends before killing, stops `train` as Ctrl-C does, with a checkpoint.
//! Children must not inherit the blocked mask: they are started through [`status`] and
//! [`output`] (xtask's `clippy.toml` forbids the other ways).

use std::io;
use std::process::{Command, ExitStatus, Output};
use std::sync::Mutex;

use anyhow::Context;
use nix::sys::signal::{SigSet, Signal};

type Action = Box<dyn FnMut(Signal) + Send>;

/// What a stop signal does; `None`: end the process as the signal would (status 128 + its
/// number: 130 for Ctrl-C, 143 for SIGTERM).
static ON_STOP: Mutex<Option<Action>> = Mutex::new(None);

/// The exit status a shell reports for a process that `signal` ended.
pub fn status_after(signal: Signal) -> i32 {
    128 + signal as i32
}

/// Blocks SIGINT and SIGTERM in this thread, and so in every thread started after, and starts
/// the thread that takes them. Call it first in `main`, before any other thread exists.
pub fn watch() -> anyhow::Result<()> {
    let signals = stop_signals();
    signals
        .thread_block()
        .context("cannot block SIGINT and SIGTERM")?;
    let started = std::thread::Builder::new()
        .name("stop-signals".to_owned())
        .spawn(move || {
            loop {
                if let Ok(signal) = signals.wait() {
                    let mut action = ON_STOP.lock().unwrap_or_else(|p| p.into_inner());
                    match action.as_mut() {
                        Some(action) => action(signal),
                        None => std::process::exit(status_after(signal)),
                    }
                }
            }
        });
    if let Err(e) = started {
        // Nobody would take a blocked signal: leave them to their default (ending the process).
        let _ = signals.thread_unblock();
        return Err(e).context("cannot start the thread that handles Ctrl-C");
    }
    Ok(())
}

/// Runs `action` on each Ctrl-C or SIGTERM from now on, instead of ending the process.
pub fn on_stop(action: impl FnMut(Signal) + Send + 'static) {
    *ON_STOP.lock().unwrap_or_else(|p| p.into_inner()) = Some(Box::new(action));
}

/// `cmd.status()`, the child started with both signals unblocked (see [`unblocked`]); a child
/// that Ctrl-C ended ends xtask too, as if xtask had been given it.
#[allow(clippy::disallowed_methods)]
pub fn status(cmd: &mut Command) -> io::Result<ExitStatus> {
    let status = unblocked(|| cmd.status())?;
    if ended_by_sigint(&status) {
        std::process::exit(status_after(Signal::SIGINT));
    }
    Ok(status)
}

/// `cmd.output()`, as [`status`].
#[allow(clippy::disallowed_methods)]
pub fn output(cmd: &mut Command) -> io::Result<Output> {
    let output = unblocked(|| cmd.output())?;
    if ended_by_sigint(&output.status) {
        std::process::exit(status_after(Signal::SIGINT));
    }
    Ok(output)
}

/// Whether a child was ended by SIGINT: a Ctrl-C reaches the whole foreground process group,
/// so the child had it as well, and it may have reached no xtask thread that acts on it.
fn ended_by_sigint(status: &ExitStatus) -> bool {
    use std::os::unix::process::ExitStatusExt;
    status.signal() == Some(Signal::SIGINT as i32)
}

/// Runs `run` (which starts a child process and waits for it) with SIGINT and SIGTERM unblocked
/// in this thread. A child inherits the signal mask of the thread that starts it, through exec
/// too, and std's `Command` keeps it: with them blocked, `cargo` or Python would outlive a
/// Ctrl-C or a `kill`. Meanwhile a signal may reach this thread's handler instead of the
/// watching thread, which ends xtask or (cosmolkit's handler) is lost; a Ctrl-C reaches the child
/// either way, and [`status`] and [`output`] end xtask when it ended the child.
fn unblocked<T>(run: impl FnOnce() -> T) -> T {
    let signals = stop_signals();
    let _ = signals.thread_unblock();
    let result = run();
    let _ = signals.thread_block();
    result
}

fn stop_signals() -> SigSet {
    let mut set = SigSet::empty();
    set.add(Signal::SIGINT);
    set.add(Signal::SIGTERM);
    set
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// The signals blocked in a child that `run` starts, from the child's `/proc/self/status`.
    fn blocked_in_child(run: impl FnOnce(&mut Command) -> io::Result<ExitStatus>) -> Vec<Signal> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("status");
        let mut grep = Command::new("grep");
        grep.args(["^SigBlk:", "/proc/self/status"])
            .stdout(std::fs::File::create(&path).unwrap());
        assert!(run(&mut grep).unwrap().success());
        let line = std::fs::read_to_string(&path).unwrap();
        let mask = u64::from_str_radix(line.trim().trim_start_matches("SigBlk:").trim(), 16)
            .unwrap_or_else(|e| panic!("{line:?}: {e}"));
        [Signal::SIGINT, Signal::SIGTERM]
            .into_iter()
            .filter(|&s| mask & (1 << (s as u64 - 1)) != 0)
            .collect()
    }

    #[test]
    #[allow(clippy::disallowed_methods)]
    fn children_start_with_the_stop_signals_unblocked() {
        stop_signals().thread_block().unwrap();
        // Why the helpers exist: std passes the blocked mask on.
        assert_eq!(
            blocked_in_child(|cmd| cmd.status()),
            [Signal::SIGINT, Signal::SIGTERM]
        );
        assert_eq!(blocked_in_child(status), []);
        assert_eq!(
            blocked_in_child(|cmd| output(cmd).map(|out| out.status)),
            []
        );
        // And this thread has them blocked again.
        let mask = SigSet::thread_get_mask().unwrap();
        assert!(mask.contains(Signal::SIGINT) && mask.contains(Signal::SIGTERM));
        stop_signals().thread_unblock().unwrap();
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
