//! `SummaryWriter`: TensorBoard event files written by a background thread, so logging from the
//! training loop costs a channel send, not a disk write.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, sync_channel};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use prost::Message;

use crate::LogError;
use crate::error::io;
use crate::proto::{Event, SessionLog, Summary, event::What, session_log, summary};
use crate::record::frame;
use crate::summary::{
    ChartCategory, HParam, Image, custom_scalars_value, default_bucket_edges, histogram,
    histogram_value, hparams_values, image_value, text_value,
};

/// Messages queued before callers wait (back-pressure, so a stalled disk cannot eat memory).
const QUEUE: usize = 1 << 20;
/// The writer thread is woken when this many messages wait (or on flush, or by its timer).
const BATCH: usize = 4096;
/// Unflushed events reach the file at least this often.
const FLUSH_EVERY: Duration = Duration::from_secs(2);

enum Msg {
    Scalar {
        run: usize,
        /// Index into the tags sent with [`Msg::Tag`].
        tag: u32,
        value: f32,
        step: i64,
        wall: f64,
    },
    /// A tag seen for the first time; scalars then refer to it by index.
    Tag(String),
    Value {
        run: usize,
        value: Box<summary::Value>,
        step: i64,
        wall: f64,
    },
    Run {
        run: usize,
        file: File,
        path: PathBuf,
    },
    Flush(SyncSender<Result<(), String>>),
}

/// Wall time in seconds since the Unix epoch, as TensorBoard records it.
pub(crate) fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn host() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "localhost".to_owned());
    name.trim().replace(['/', '\\'], "_")
}

/// Seconds field of an event file's name (`events.out.tfevents.{secs}.{host}.{pid}.{n}`).
fn name_secs(name: &str) -> Option<u64> {
    name.strip_prefix("events.out.tfevents.")?
        .split('.')
        .next()?
        .parse()
        .ok()
}

/// Creates `dir` and a new event file in it, with its `file_version` record written and, for a
/// session (see [`SummaryWriter::new_session`]), a `SessionLog` START at `session_start`.
/// Readers take a folder's event files in name order, so the new name sorts after every event
/// file already there (a resumed run started within the same second as the old one, or with a
/// smaller pid, would otherwise come first).
fn create_event_file(dir: &Path, session_start: Option<i64>) -> Result<(File, PathBuf), LogError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    std::fs::create_dir_all(dir).map_err(io("create the log folder", dir))?;
    let newest = std::fs::read_dir(dir)
        .map_err(io("list the log folder", dir))?
        .filter_map(|entry| name_secs(&entry.ok()?.file_name().to_string_lossy()))
        .max();
    let secs = match newest {
        Some(newest) => (now() as u64).max(newest + 1),
        None => now() as u64,
    };
    let (host, pid) = (host(), std::process::id());
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!("events.out.tfevents.{secs}.{host}.{pid}.{n}"));
        match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(mut file) => {
                let wall_time = now();
                let mut events = vec![Event {
                    wall_time,
                    step: session_start.unwrap_or(0),
                    what: Some(What::FileVersion("brain.Event:2".to_owned())),
                }];
                if let Some(step) = session_start {
                    events.push(Event {
                        wall_time,
                        step,
                        what: Some(What::SessionLog(SessionLog {
                            status: session_log::Status::Start as i32,
                            ..SessionLog::default()
                        })),
                    });
                }
                let mut buf = Vec::new();
                for event in events {
                    frame(&mut buf, &event.encode_to_vec());
                }
                file.write_all(&buf).map_err(io("write", &path))?;
                return Ok((file, path));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io("create an event file in", dir)(e)),
        }
    }
}

/// The hand-off between callers and the writer thread: callers push into `pending`; the thread
/// swaps the whole vector out at once, so the cost of waking it is paid per batch, not per event.
struct Shared {
    failed: AtomicBool,
    error: Mutex<Option<String>>,
    pending: Mutex<Pending>,
    /// The writer thread waits here for work.
    work: Condvar,
    /// Callers wait here when the queue is full.
    space: Condvar,
}

#[derive(Default)]
struct Pending {
    msgs: Vec<Msg>,
    closed: bool,
    /// Scalar tags seen so far -> their index, so a scalar carries no allocation.
    tags: HashMap<String, u32>,
}

impl Shared {
    fn push(&self, msg: Msg, urgent: bool) {
        self.push_with(|_| msg, urgent);
    }

    fn push_scalar(&self, run: usize, tag: &str, value: f32, step: i64, wall: f64) {
        self.push_with(
            |p| {
                let tag = match p.tags.get(tag) {
                    Some(id) => *id,
                    None => {
                        let id = p.tags.len() as u32;
                        p.tags.insert(tag.to_owned(), id);
                        p.msgs.push(Msg::Tag(tag.to_owned()));
                        id
                    }
                };
                Msg::Scalar {
                    run,
                    tag,
                    value,
                    step,
                    wall,
                }
            },
            false,
        );
    }

    /// Queues the message `make` builds (under the queue's lock), waiting while the queue is full.
    fn push_with(&self, make: impl FnOnce(&mut Pending) -> Msg, urgent: bool) {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        while p.msgs.len() >= QUEUE {
            p = self.space.wait(p).unwrap_or_else(|e| e.into_inner());
        }
        let msg = make(&mut p);
        p.msgs.push(msg);
        let wake = urgent || p.msgs.len() == BATCH;
        drop(p);
        if wake {
            self.work.notify_one();
        }
    }

    fn close(&self) {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .closed = true;
        self.work.notify_one();
    }
}

impl Shared {
    fn check(&self) -> Result<(), LogError> {
        if self.failed.load(Ordering::Relaxed) {
            let e = self.error.lock().unwrap_or_else(|p| p.into_inner());
            return Err(LogError::Stopped(e.clone().unwrap_or_default()));
        }
        Ok(())
    }
}

/// Writes TensorBoard event files into one log folder (a "run"), with the method names of torch's
/// `SummaryWriter`. Every call only queues work for a background thread; [`flush`](Self::flush)
/// returns once everything queued before it is in the files. I/O errors come back from the next
/// call, `flush` or `close`.
pub struct SummaryWriter {
    logdir: PathBuf,
    thread: Option<JoinHandle<()>>,
    shared: Arc<Shared>,
    /// Sub-runs (`add_scalars`, `add_hparams`): folder -> run index; 0 is the main run.
    runs: Mutex<HashMap<PathBuf, usize>>,
    main_file: PathBuf,
    /// Set for a session ([`new_session`](Self::new_session)): sub-runs start at the same step.
    session_start: Option<i64>,
}

impl SummaryWriter {
    /// Creates `logdir` (and parents) and a new event file in it.
    pub fn new(logdir: impl AsRef<Path>) -> Result<Self, LogError> {
        Self::start(logdir.as_ref(), None)
    }

    /// A new event file that opens a training session at `step` (a `SessionLog` START, as torch's
    /// `SummaryWriter(purge_step=step)` writes). TensorBoard drops what the earlier files of this
    /// folder hold at `step` or later: what a crashed session logged past the checkpoint this one
    /// resumed from. TensorBoard's server takes the first session start of a folder for the
    /// beginning, not a restart, so a run that may be resumed begins with `new_session(dir, 0)`,
    /// as [`ExperimentLogger`](crate::ExperimentLogger) does.
    pub fn new_session(logdir: impl AsRef<Path>, step: i64) -> Result<Self, LogError> {
        Self::start(logdir.as_ref(), Some(step))
    }

    fn start(logdir: &Path, session_start: Option<i64>) -> Result<Self, LogError> {
        let logdir = logdir.to_path_buf();
        let (file, path) = create_event_file(&logdir, session_start)?;
        let shared = Arc::new(Shared {
            failed: AtomicBool::new(false),
            error: Mutex::new(None),
            pending: Mutex::new(Pending::default()),
            work: Condvar::new(),
            space: Condvar::new(),
        });
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("xp-log writer".to_owned())
            .spawn(move || background(thread_shared))
            .map_err(|error| LogError::Io {
                action: "start the writer thread for",
                path: logdir.clone(),
                error,
            })?;
        let writer = SummaryWriter {
            logdir,
            thread: Some(thread),
            shared,
            runs: Mutex::new(HashMap::new()),
            main_file: path.clone(),
            session_start,
        };
        writer.send(Msg::Run { run: 0, file, path })?;
        Ok(writer)
    }

    pub fn logdir(&self) -> &Path {
        &self.logdir
    }

    /// The main run's event file.
    pub fn event_file(&self) -> &Path {
        &self.main_file
    }

    fn send(&self, msg: Msg) -> Result<(), LogError> {
        self.shared.check()?;
        let urgent = matches!(msg, Msg::Flush(_) | Msg::Run { .. });
        self.shared.push(msg, urgent);
        Ok(())
    }

    /// Index of the sub-run in `subdir` (created on first use).
    fn run(&self, subdir: &str) -> Result<usize, LogError> {
        let dir = self.logdir.join(subdir);
        let mut runs = self.runs.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(run) = runs.get(&dir) {
            return Ok(*run);
        }
        let (file, path) = create_event_file(&dir, self.session_start)?;
        let run = runs.len() + 1;
        runs.insert(dir, run);
        self.send(Msg::Run { run, file, path })?;
        Ok(run)
    }

    /// One scalar. NaN and infinities are written as they are (TensorBoard shows them).
    pub fn add_scalar(&self, tag: &str, value: f64, step: i64) -> Result<(), LogError> {
        self.add_scalar_at(tag, value, step, now())
    }

    /// [`add_scalar`](Self::add_scalar) with an explicit wall time (seconds since the epoch).
    pub fn add_scalar_at(
        &self,
        tag: &str,
        value: f64,
        step: i64,
        wall_time: f64,
    ) -> Result<(), LogError> {
        self.shared.check()?;
        self.shared
            .push_scalar(0, tag, value as f32, step, wall_time);
        Ok(())
    }

    /// Several scalars on one chart, laid out as torch does: one sub-run per tag, in
    /// `{logdir}/{main_tag}_{tag}` (`/` in `main_tag` becomes `_`), each under the tag `main_tag`.
    pub fn add_scalars(
        &self,
        main_tag: &str,
        scalars: &[(&str, f64)],
        step: i64,
    ) -> Result<(), LogError> {
        let wall = now();
        for (tag, value) in scalars {
            let run = self.run(&format!("{}_{tag}", main_tag.replace('/', "_")))?;
            self.shared.check()?;
            self.shared
                .push_scalar(run, main_tag, *value as f32, step, wall);
        }
        Ok(())
    }

    /// A histogram of `values` with torch's default bucket edges.
    pub fn add_histogram<T: Copy + Into<f64>>(
        &self,
        tag: &str,
        values: &[T],
        step: i64,
    ) -> Result<(), LogError> {
        let values: Vec<f64> = values.iter().map(|v| (*v).into()).collect();
        let h = histogram(tag, &values, default_bucket_edges())?;
        self.value(0, histogram_value(tag.to_owned(), h), step)
    }

    /// A histogram given as its buckets: `bucket_limits[i]` is the right edge of bucket `i`,
    /// holding `bucket_counts[i]` values.
    #[allow(clippy::too_many_arguments)]
    pub fn add_histogram_raw(
        &self,
        tag: &str,
        min: f64,
        max: f64,
        num: f64,
        sum: f64,
        sum_squares: f64,
        bucket_limits: &[f64],
        bucket_counts: &[f64],
        step: i64,
    ) -> Result<(), LogError> {
        if bucket_limits.is_empty() || bucket_limits.len() != bucket_counts.len() {
            return Err(LogError::Histogram {
                tag: tag.to_owned(),
                problem: format!(
                    "{} bucket limits and {} counts: they must be equal in number and not empty",
                    bucket_limits.len(),
                    bucket_counts.len()
                ),
            });
        }
        let h = crate::proto::HistogramProto {
            min,
            max,
            num,
            sum,
            sum_squares,
            bucket_limit: bucket_limits.to_vec(),
            bucket: bucket_counts.to_vec(),
        };
        self.value(0, histogram_value(tag.to_owned(), h), step)
    }

    /// An image (grey, RGB or RGBA, 8-bit, HWC), stored as PNG.
    pub fn add_image(&self, tag: &str, image: &Image, step: i64) -> Result<(), LogError> {
        self.value(0, image_value(tag.to_owned(), image)?, step)
    }

    /// Markdown text for TensorBoard's text tab.
    pub fn add_text(&self, tag: &str, markdown: &str, step: i64) -> Result<(), LogError> {
        self.value(0, text_value(tag, markdown), step)
    }

    /// The Custom Scalars tab's layout: charts that each draw several scalars (as torch's
    /// `add_custom_scalars`). Log it once per run; TensorBoard merges the layouts of all runs.
    pub fn add_custom_scalars(&self, layout: &[ChartCategory]) -> Result<(), LogError> {
        self.value(0, custom_scalars_value(layout), 0)
    }

    /// A row of TensorBoard's HParams tab: the hyperparameters and final metrics of a run, in
    /// the sub-run `run_name` (as torch does), with each metric also as a scalar there. Give each
    /// row a `run_name` of its own: TensorBoard keeps the first hparams it reads in a folder.
    pub fn add_hparams(
        &self,
        hparams: &[(String, HParam)],
        metrics: &[(&str, f64)],
        run_name: &str,
    ) -> Result<(), LogError> {
        let run = self.run(run_name)?;
        let names: Vec<&str> = metrics.iter().map(|(n, _)| *n).collect();
        for value in hparams_values(hparams, &names) {
            self.value(run, value, 0)?;
        }
        for (name, v) in metrics {
            self.shared.check()?;
            self.shared.push_scalar(run, name, *v as f32, 0, now());
        }
        Ok(())
    }

    fn value(&self, run: usize, value: summary::Value, step: i64) -> Result<(), LogError> {
        self.send(Msg::Value {
            run,
            value: Box::new(value),
            step,
            wall: now(),
        })
    }

    /// Returns once everything logged before it is written to the files.
    pub fn flush(&self) -> Result<(), LogError> {
        let (ack, done) = sync_channel(1);
        self.send(Msg::Flush(ack))?;
        match done.recv() {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(LogError::Stopped(e)),
            Err(_) => Err(LogError::Stopped("the writer thread is gone".to_owned())),
        }
    }

    /// Flushes, stops the writer thread, and reports any error it met.
    pub fn close(mut self) -> Result<(), LogError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), LogError> {
        if let Some(thread) = self.thread.take() {
            self.shared.close();
            let _ = thread.join();
        }
        self.shared.check()
    }
}

impl Drop for SummaryWriter {
    fn drop(&mut self) {
        if self.thread.is_some()
            && let Err(e) = self.shutdown()
        {
            eprintln!(
                "xp-log: {} was not written completely: {e}",
                self.logdir.display()
            );
        }
    }
}

/// The writer thread: takes the pending messages in batches, encodes, frames and writes them;
/// flushes on request, when idle for [`FLUSH_EVERY`], and at the end.
fn background(shared: Arc<Shared>) {
    let mut files: Files = Vec::new();
    let mut tags: Vec<String> = Vec::new();
    let mut batch: Vec<Msg> = Vec::with_capacity(BATCH);
    let mut encoded = Vec::with_capacity(256);
    let mut framed = Vec::with_capacity(256);
    let mut last_flush = Instant::now();
    let mut dirty = false;
    let fail = |e: String| {
        let mut slot = shared.error.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(e);
        }
        shared.failed.store(true, Ordering::Relaxed);
    };
    let flush_all = |files: &mut Files| -> Result<(), String> {
        for (w, path) in files.iter_mut().flatten() {
            w.flush()
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        }
        Ok(())
    };
    loop {
        let closed = {
            let mut p = shared.pending.lock().unwrap_or_else(|e| e.into_inner());
            if p.msgs.is_empty() && !p.closed {
                p = shared
                    .work
                    .wait_timeout(p, FLUSH_EVERY)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            std::mem::swap(&mut p.msgs, &mut batch);
            p.closed
        };
        shared.space.notify_all();
        if batch.is_empty() {
            if closed {
                break;
            }
            // Idle: what was written reaches the file.
            if dirty && !shared.failed.load(Ordering::Relaxed) {
                if let Err(e) = flush_all(&mut files) {
                    fail(e);
                }
                dirty = false;
                last_flush = Instant::now();
            }
            continue;
        }
        for msg in batch.drain(..) {
            let failed = shared.failed.load(Ordering::Relaxed);
            match msg {
                Msg::Run { run, file, path } => {
                    if files.len() <= run {
                        files.resize_with(run + 1, || None);
                    }
                    files[run] = Some((BufWriter::with_capacity(1 << 20, file), path));
                }
                Msg::Flush(ack) => {
                    let result = match shared.check() {
                        Err(e) => Err(e.to_string()),
                        Ok(()) => flush_all(&mut files),
                    };
                    if let Err(e) = &result {
                        fail(e.clone());
                    }
                    dirty = false;
                    last_flush = Instant::now();
                    let _ = ack.send(result);
                }
                Msg::Tag(name) => tags.push(name),
                _ if failed => {} // already reported; keep draining so callers never block
                Msg::Scalar {
                    run,
                    tag,
                    value,
                    step,
                    wall,
                } => {
                    encoded.clear();
                    encode_scalar_event(&mut encoded, wall, step, &tags[tag as usize], value);
                    dirty |= write_event(&mut files, &mut framed, run, &encoded, &fail);
                }
                Msg::Value {
                    run,
                    value,
                    step,
                    wall,
                } => {
                    encoded.clear();
                    event(wall, step, *value)
                        .encode(&mut encoded)
                        .expect("a Vec grows as needed");
                    dirty |= write_event(&mut files, &mut framed, run, &encoded, &fail);
                }
            }
        }
        if dirty && last_flush.elapsed() >= FLUSH_EVERY {
            if let Err(e) = flush_all(&mut files) {
                fail(e);
            }
            dirty = false;
            last_flush = Instant::now();
        }
    }
    if let Err(e) = flush_all(&mut files) {
        fail(e);
    }
}

type Files = Vec<Option<(BufWriter<File>, PathBuf)>>;

/// Frames one encoded event into run `run`'s file; `true` when something was written.
fn write_event(
    files: &mut Files,
    framed: &mut Vec<u8>,
    run: usize,
    encoded: &[u8],
    fail: &impl Fn(String),
) -> bool {
    let Some(Some((writer, path))) = files.get_mut(run) else {
        return false;
    };
    framed.clear();
    frame(framed, encoded);
    if let Err(e) = writer.write_all(framed) {
        fail(format!("cannot write {}: {e}", path.display()));
    }
    true
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

/// An `Event { wall_time, step, summary { value { tag, simple_value } } }` in protobuf wire
/// format, without building the message: the hot path of `add_scalar`. (Tested against prost.)
pub(crate) fn encode_scalar_event(out: &mut Vec<u8>, wall: f64, step: i64, tag: &str, value: f32) {
    let value_len = 1 + varint_len(tag.len() as u64) + tag.len() + 5;
    let summary_len = 1 + varint_len(value_len as u64) + value_len;
    out.push(0x09); // wall_time: field 1, 64-bit
    out.extend_from_slice(&wall.to_le_bytes());
    out.push(0x10); // step: field 2, varint
    varint(out, step as u64);
    out.push(0x2a); // summary: field 5, length-delimited
    varint(out, summary_len as u64);
    out.push(0x0a); // Summary.value: field 1
    varint(out, value_len as u64);
    out.push(0x0a); // Value.tag: field 1
    varint(out, tag.len() as u64);
    out.extend_from_slice(tag.as_bytes());
    out.push(0x15); // Value.simple_value: field 2, 32-bit
    out.extend_from_slice(&value.to_le_bytes());
}

fn event(wall_time: f64, step: i64, value: summary::Value) -> Event {
    Event {
        wall_time,
        step,
        what: Some(What::Summary(Summary { value: vec![value] })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::summary::scalar;

    #[test]
    fn hand_encoded_scalars_decode_as_prost_events() {
        for (wall, step, tag, value) in [
            (1.5e9, 0i64, "loss", 0.25f32),
            (0.0, -1, "", f32::NAN),
            (123.456, i64::MAX, "a/b/c", f32::INFINITY),
            (1.0, 300, &"t".repeat(200)[..], -0.0),
        ] {
            let mut bytes = Vec::new();
            encode_scalar_event(&mut bytes, wall, step, tag, value);
            let decoded = Event::decode(bytes.as_slice()).unwrap();
            let expected = event(wall, step, scalar(tag.to_owned(), value));
            assert_eq!(decoded.wall_time.to_bits(), expected.wall_time.to_bits());
            assert_eq!(decoded.step, expected.step);
            let (Some(What::Summary(d)), Some(What::Summary(e))) = (&decoded.what, &expected.what)
            else {
                panic!()
            };
            assert_eq!(d.value[0].tag, e.value[0].tag);
            let (
                Some(summary::value::Value::SimpleValue(a)),
                Some(summary::value::Value::SimpleValue(b)),
            ) = (&d.value[0].value, &e.value[0].value)
            else {
                panic!()
            };
            assert_eq!(a.to_bits(), b.to_bits());
        }
        for v in [0u64, 1, 127, 128, 16383, 16384, u64::MAX] {
            let mut out = Vec::new();
            varint(&mut out, v);
            assert_eq!(out.len(), varint_len(v), "{v}");
        }
    }
}
