//! Ctrl-C (SIGINT) and SIGTERM for every command, taken by one thread from a signalfd instead of
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
//!
//! A process ended by a signal runs no destructors, so xtask ends itself on a stop signal
//! through [`exit`], which first removes the temporary files and folders made through
//! [`tempdir`] and [`remove_on_stop`] (a benchmark's folder can hold a gigabyte). Children are
//! started through [`status`] and [`output`] (xtask's `clippy.toml` forbids the other ways):
//! they start with both signals unblocked, a stop signal that comes while one runs is passed on
//! to it (unless it was a terminal's Ctrl-C, which reached it too), and xtask ends once it has,
//! so that no child outlives xtask.

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use anyhow::Context;
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::unistd::Pid;

type Action = Box<dyn FnMut(Signal) + Send>;

/// What a stop signal does; `None`: [`stop`].
static ON_STOP: Mutex<Option<Action>> = Mutex::new(None);

/// The first stop signal that [`stop`] took: the child being waited for was given it, and
/// xtask ends when that child has.
static STOPPING: Mutex<Option<Signal>> = Mutex::new(None);

/// The children running now. A child leaves once it has ended but before it is reaped, so a
/// pid here never names another process that has taken its number.
static CHILDREN: Mutex<Vec<Pid>> = Mutex::new(Vec::new());

/// What [`exit`] removes, by registration number.
static LEFT_BEHIND: Mutex<Vec<(u64, PathBuf)>> = Mutex::new(Vec::new());
static REGISTRATIONS: AtomicU64 = AtomicU64::new(0);

/// Taken for good by the thread that ends the process: a second caller of [`exit`] waits.
static EXITING: Mutex<()> = Mutex::new(());

/// The exit status a shell reports for a process that `signal` ended.
fn status_after(signal: Signal) -> i32 {
    128 + signal as i32
}

/// Blocks SIGINT and SIGTERM in this thread, and so in every thread started after, and starts
/// the thread that takes them. Call it first in `main`, before any other thread exists.
pub fn watch() -> anyhow::Result<()> {
    let signals = stop_signals();
    signals
        .thread_block()
        .context("cannot block SIGINT and SIGTERM")?;
    // A signalfd rather than `sigwait`: it also says who sent the signal.
    let taken = SignalFd::with_flags(&signals, SfdFlags::SFD_CLOEXEC)
        .context("cannot take SIGINT and SIGTERM");
    let started = taken.and_then(|taken| {
        std::thread::Builder::new()
            .name("stop-signals".to_owned())
            .spawn(move || {
                loop {
                    match taken.read_signal() {
                        Ok(Some(info)) => took(info),
                        Ok(None) | Err(nix::errno::Errno::EINTR) => {}
                        Err(_) => break,
                    }
                }
                // Cannot happen; were it to, a thread that takes the signals by their default
                // action (ending xtask) is better than none.
                let _ = stop_signals().thread_unblock();
                loop {
                    std::thread::park();
                }
            })
            .context("cannot start the thread that handles Ctrl-C")
    });
    if let Err(e) = started {
        // Nobody would take a blocked signal: leave them to their default (ending the process).
        let _ = signals.thread_unblock();
        return Err(e);
    }
    Ok(())
}

fn took(info: nix::libc::signalfd_siginfo) {
    let Ok(signal) = Signal::try_from(info.ssi_signo as i32) else {
        return;
    };
    let mut action = lock(&ON_STOP);
    match action.as_mut() {
        Some(action) => action(signal),
        None => {
            drop(action);
            // The kernel sends a terminal's Ctrl-C to the whole foreground process group.
            stop(signal, info.ssi_code == nix::libc::SI_KERNEL);
        }
    }
}

/// Runs `action` on each Ctrl-C or SIGTERM from now on, instead of ending the process.
pub fn on_stop(action: impl FnMut(Signal) + Send + 'static) {
    *lock(&ON_STOP) = Some(Box::new(action));
}

/// A stop signal with no [`on_stop`] action. With no child running, xtask ends at once.
/// Otherwise the first signal is passed on to the children unless it reached them already
/// (`to_the_group`: a Ctrl-C at a terminal; a `kill` of xtask alone or `docker stop` did not),
/// and xtask ends when [`status`] or [`output`] sees its child end; a second signal kills them.
fn stop(signal: Signal, to_the_group: bool) {
    let first = {
        let mut stopping = lock(&STOPPING);
        let first = stopping.is_none();
        stopping.get_or_insert(signal);
        first
    };
    let children = lock(&CHILDREN);
    if children.is_empty() {
        drop(children);
        exit(signal);
    }
    let pass_on = match (first, to_the_group) {
        (true, true) => return,
        (true, false) => signal,
        (false, _) => Signal::SIGKILL,
    };
    for &child in children.iter() {
        let _ = nix::sys::signal::kill(child, pass_on);
    }
}

/// Ends xtask as `signal` would (status 128 + its number: 130 for Ctrl-C, 143 for SIGTERM),
/// after removing what [`tempdir`] and [`remove_on_stop`] registered.
#[allow(clippy::disallowed_methods)]
pub fn exit(signal: Signal) -> ! {
    let _exiting = lock(&EXITING);
    for (_, path) in lock(&LEFT_BEHIND).drain(..) {
        remove(&path);
    }
    std::process::exit(status_after(signal))
}

fn remove(path: &Path) {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => {
            // A thread still writing into it can add an entry between listing and removal.
            for _ in 0..3 {
                if std::fs::remove_dir_all(path).is_ok() {
                    break;
                }
            }
        }
        Ok(_) => {
            let _ = std::fs::remove_file(path);
        }
        Err(_) => {}
    }
}

/// Keeps `path` (a temporary file or folder) on the list of what a stop signal removes until
/// the returned value drops. Drop it after the file is gone or in its place.
pub fn remove_on_stop(path: &Path) -> RemovedOnStop {
    let id = REGISTRATIONS.fetch_add(1, Ordering::Relaxed);
    lock(&LEFT_BEHIND).push((id, path.to_path_buf()));
    RemovedOnStop(id)
}

/// See [`remove_on_stop`].
#[must_use = "the path leaves the list when this drops"]
pub struct RemovedOnStop(u64);

impl Drop for RemovedOnStop {
    fn drop(&mut self) {
        lock(&LEFT_BEHIND).retain(|(id, _)| *id != self.0);
    }
}

/// A temporary folder that goes when it drops, as `tempfile`'s, and also when a stop signal
/// ends xtask.
pub struct TempDir {
    // Declared first, dropped first: the folder goes before it leaves the list.
    dir: tempfile::TempDir,
    _listed: RemovedOnStop,
}

impl TempDir {
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// A new [`TempDir`] in the system's temporary folder.
#[allow(clippy::disallowed_methods)]
pub fn tempdir() -> io::Result<TempDir> {
    listed(tempfile::tempdir()?)
}

/// A new [`TempDir`] inside `base`.
#[allow(clippy::disallowed_methods)]
pub fn tempdir_in(base: &Path) -> io::Result<TempDir> {
    listed(tempfile::tempdir_in(base)?)
}

fn listed(dir: tempfile::TempDir) -> io::Result<TempDir> {
    let listed = remove_on_stop(dir.path());
    Ok(TempDir {
        dir,
        _listed: listed,
    })
}

/// `cmd.status()`, the child started with both signals unblocked (see [`unblocked`]) and given
/// a stop signal that xtask gets meanwhile; a child that Ctrl-C ended ends xtask too, as if
/// xtask had been given it.
pub fn status(cmd: &mut Command) -> io::Result<ExitStatus> {
    supervise(cmd, |_| Ok(())).map(|(status, ())| status)
}

/// `cmd.output()` (stdin empty, stdout and stderr captured), as [`status`].
pub fn output(cmd: &mut Command) -> io::Result<Output> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let (status, (stdout, stderr)) = supervise(cmd, |child| {
        let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
        std::thread::scope(|scope| {
            let stderr = scope.spawn(move || read_all(stderr));
            let stdout = read_all(stdout);
            let stderr = stderr
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p));
            Ok((stdout?, stderr?))
        })
    })?;
    Ok(Output {
        status,
        stdout,
        stderr,
    })
}

fn read_all(pipe: Option<impl Read>) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    if let Some(mut pipe) = pipe {
        pipe.read_to_end(&mut bytes)?;
    }
    Ok(bytes)
}

/// Starts `cmd`, listed in [`CHILDREN`] until it has ended, runs `collect` (which reads its
/// pipes), and waits for it. Ends xtask when a stop signal came meanwhile or the child died of
/// Ctrl-C.
#[allow(clippy::disallowed_methods)]
fn supervise<T>(
    cmd: &mut Command,
    collect: impl FnOnce(&mut Child) -> io::Result<T>,
) -> io::Result<(ExitStatus, T)> {
    let mut child = {
        // Held while it starts: a stop signal then finds the child listed, or ends xtask before.
        let mut children = lock(&CHILDREN);
        let child = unblocked(|| cmd.spawn())?;
        children.push(Pid::from_raw(child.id() as i32));
        child
    };
    let pid = Pid::from_raw(child.id() as i32);
    let collected = collect(&mut child);
    if collected.is_err() {
        let _ = child.kill();
    }
    wait_unreaped(pid);
    lock(&CHILDREN).retain(|&c| c != pid);
    let status = child.wait();
    if let Some(signal) = *lock(&STOPPING) {
        exit(signal);
    }
    let status = status?;
    if ended_by_sigint(&status) {
        exit(Signal::SIGINT);
    }
    Ok((status, collected?))
}

/// Waits until the child `pid` has ended, leaving it to be reaped: until then its number is
/// not given to another process.
fn wait_unreaped(pid: Pid) {
    use nix::sys::wait::{Id, WaitPidFlag, waitid};
    let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT;
    while let Err(nix::errno::Errno::EINTR) = waitid(Id::Pid(pid), flags) {}
}

/// Whether a child was ended by SIGINT: a Ctrl-C reaches the whole foreground process group,
/// so the child had it as well, and it may have reached no xtask thread that acts on it.
fn ended_by_sigint(status: &ExitStatus) -> bool {
    use std::os::unix::process::ExitStatusExt;
    status.signal() == Some(Signal::SIGINT as i32)
}

/// Runs `run` (which starts a child process) with SIGINT and SIGTERM unblocked in this thread.
/// A child inherits the signal mask of the thread that starts it, through exec too, and std's
/// `Command` keeps it: with them blocked, `cargo` or Python would outlive a Ctrl-C or a `kill`.
/// Meanwhile (the moment a child takes to start) a signal may reach this thread's handler
/// instead of the watching thread.
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

/// These locks guard plain lists: a panic elsewhere leaves them usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// The signals blocked in a child that `run` starts and returns the stdout of, from the
    /// child's `/proc/self/status`.
    fn blocked_in_child(run: impl FnOnce(&mut Command) -> Vec<u8>) -> Vec<Signal> {
        let mut grep = Command::new("grep");
        grep.args(["^SigBlk:", "/proc/self/status"]);
        let line = String::from_utf8(run(&mut grep)).unwrap();
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
            blocked_in_child(|cmd| cmd.output().unwrap().stdout),
            [Signal::SIGINT, Signal::SIGTERM]
        );
        assert_eq!(blocked_in_child(|cmd| output(cmd).unwrap().stdout), []);
        let dir = tempdir().unwrap();
        let through_status = |cmd: &mut Command| {
            let path = dir.path().join("stdout");
            cmd.stdout(std::fs::File::create(&path).unwrap());
            assert!(status(cmd).unwrap().success());
            std::fs::read(&path).unwrap()
        };
        assert_eq!(blocked_in_child(through_status), []);
        // And this thread has them blocked again.
        let mask = SigSet::thread_get_mask().unwrap();
        assert!(mask.contains(Signal::SIGINT) && mask.contains(Signal::SIGTERM));
        stop_signals().thread_unblock().unwrap();
    }

    #[test]
    fn a_temporary_folder_is_on_the_removal_list_while_it_lives() {
        let listed = |path: &Path| lock(&LEFT_BEHIND).iter().any(|(_, p)| p == path);
        let dir = tempdir().unwrap();
        let path = dir.path().to_path_buf();
        std::fs::create_dir(path.join("inner")).unwrap();
        std::fs::write(path.join("inner/file"), "x").unwrap();
        assert!(listed(&path));
        drop(dir);
        assert!(!path.exists());
        assert!(!listed(&path));
        // What exit does with what is listed: a folder goes whole, a file goes, and a path that
        // is gone already (a temporary file renamed into place) is no error.
        let dir = tempdir().unwrap();
        let folder = dir.path().join("folder");
        std::fs::create_dir_all(folder.join("a/b")).unwrap();
        std::fs::write(folder.join("a/b/c"), "x").unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, "x").unwrap();
        for path in [&folder, &file, &dir.path().join("gone")] {
            remove(path);
            assert!(!path.exists(), "{}", path.display());
        }
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
