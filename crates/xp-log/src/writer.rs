//! `SummaryWriter`: TensorBoard event files written by a background thread, so logging from the
//! training loop costs a channel send, not a disk write.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use prost::Message;

use crate::LogError;
use crate::proto::{Event, Summary, event::What, summary};
use crate::record::frame;
use crate::summary::{
    HParam, Image, default_bucket_edges, histogram, histogram_value, hparams_values, image_value,
    scalar, text_value,
};

/// Messages queued before the caller blocks (back-pressure, so a stalled disk cannot eat memory).
const QUEUE: usize = 1 << 16;
/// Unflushed events reach the file at least this often.
const FLUSH_EVERY: Duration = Duration::from_secs(2);

enum Msg {
    Scalar {
        run: usize,
        tag: String,
        value: f32,
        step: i64,
        wall: f64,
    },
    Value {
        run: usize,
        value: summary::Value,
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

fn now() -> f64 {
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

/// Creates `dir` and a new event file in it, with its `file_version` record written.
fn create_event_file(dir: &Path) -> Result<(File, PathBuf), LogError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let io = |action, path: &Path| {
        let path = path.to_path_buf();
        move |source| LogError::Io {
            action,
            path,
            source,
        }
    };
    std::fs::create_dir_all(dir).map_err(io("create the log folder", dir))?;
    let secs = now() as u64;
    let (host, pid) = (host(), std::process::id());
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!("events.out.tfevents.{secs}.{host}.{pid}.{n}"));
        match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(mut file) => {
                let event = Event {
                    wall_time: now(),
                    step: 0,
                    what: Some(What::FileVersion("brain.Event:2".to_owned())),
                };
                let mut buf = Vec::new();
                frame(&mut buf, &event.encode_to_vec());
                file.write_all(&buf).map_err(io("write", &path))?;
                return Ok((file, path));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io("create an event file in", dir)(e)),
        }
    }
}

struct Shared {
    failed: AtomicBool,
    error: Mutex<Option<String>>,
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
    tx: Option<SyncSender<Msg>>,
    thread: Option<JoinHandle<()>>,
    shared: Arc<Shared>,
    /// Sub-runs (`add_scalars`, `add_hparams`): folder -> run index; 0 is the main run.
    runs: Mutex<HashMap<PathBuf, usize>>,
    main_file: PathBuf,
}

impl SummaryWriter {
    /// Creates `logdir` (and parents) and a new event file in it.
    pub fn new(logdir: impl AsRef<Path>) -> Result<Self, LogError> {
        let logdir = logdir.as_ref().to_path_buf();
        let (file, path) = create_event_file(&logdir)?;
        let (tx, rx) = sync_channel(QUEUE);
        let shared = Arc::new(Shared {
            failed: AtomicBool::new(false),
            error: Mutex::new(None),
        });
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("xp-log writer".to_owned())
            .spawn(move || background(rx, thread_shared))
            .map_err(|source| LogError::Io {
                action: "start the writer thread for",
                path: logdir.clone(),
                source,
            })?;
        let writer = SummaryWriter {
            logdir,
            tx: Some(tx),
            thread: Some(thread),
            shared,
            runs: Mutex::new(HashMap::new()),
            main_file: path.clone(),
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
        let tx = self.tx.as_ref().expect("present until closed");
        tx.send(msg)
            .map_err(|_| LogError::Stopped("the writer thread is gone".to_owned()))
    }

    /// Index of the sub-run in `subdir` (created on first use).
    fn run(&self, subdir: &str) -> Result<usize, LogError> {
        let dir = self.logdir.join(subdir);
        let mut runs = self.runs.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(run) = runs.get(&dir) {
            return Ok(*run);
        }
        let (file, path) = create_event_file(&dir)?;
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
        self.send(Msg::Scalar {
            run: 0,
            tag: tag.to_owned(),
            value: value as f32,
            step,
            wall: wall_time,
        })
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
            self.send(Msg::Scalar {
                run,
                tag: main_tag.to_owned(),
                value: *value as f32,
                step,
                wall,
            })?;
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

    /// A row of TensorBoard's HParams tab: the hyperparameters and final metrics of a run, in
    /// the sub-run `run_name` (as torch does), with each metric also as a scalar there.
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
            self.send(Msg::Scalar {
                run,
                tag: (*name).to_owned(),
                value: *v as f32,
                step: 0,
                wall: now(),
            })?;
        }
        Ok(())
    }

    fn value(&self, run: usize, value: summary::Value, step: i64) -> Result<(), LogError> {
        self.send(Msg::Value {
            run,
            value,
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
        drop(self.tx.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.shared.check()
    }
}

impl Drop for SummaryWriter {
    fn drop(&mut self) {
        if self.tx.is_some()
            && let Err(e) = self.shutdown()
        {
            eprintln!(
                "xp-log: {} was not written completely: {e}",
                self.logdir.display()
            );
        }
    }
}

/// The writer thread: encodes, frames and writes events; flushes on request, when idle for
/// [`FLUSH_EVERY`], and at the end.
fn background(rx: Receiver<Msg>, shared: Arc<Shared>) {
    let mut files: Vec<Option<(BufWriter<File>, PathBuf)>> = Vec::new();
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
    let flush_all = |files: &mut Vec<Option<(BufWriter<File>, PathBuf)>>| -> Result<(), String> {
        for (w, path) in files.iter_mut().flatten() {
            w.flush()
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        }
        Ok(())
    };
    loop {
        let msg = match rx.recv_timeout(FLUSH_EVERY) {
            Ok(msg) => msg,
            Err(RecvTimeoutError::Timeout) => {
                if dirty && !shared.failed.load(Ordering::Relaxed) {
                    if let Err(e) = flush_all(&mut files) {
                        fail(e);
                    }
                    dirty = false;
                    last_flush = Instant::now();
                }
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let (run, event) = match msg {
            Msg::Run { run, file, path } => {
                if files.len() <= run {
                    files.resize_with(run + 1, || None);
                }
                files[run] = Some((BufWriter::with_capacity(1 << 20, file), path));
                continue;
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
                continue;
            }
            Msg::Scalar {
                run,
                tag,
                value,
                step,
                wall,
            } => (run, event(wall, step, scalar(tag, value))),
            Msg::Value {
                run,
                value,
                step,
                wall,
            } => (run, event(wall, step, value)),
        };
        if shared.failed.load(Ordering::Relaxed) {
            continue; // already reported; keep draining so callers never block
        }
        let Some(Some((writer, path))) = files.get_mut(run) else {
            continue;
        };
        encoded.clear();
        event.encode(&mut encoded).expect("a Vec grows as needed");
        framed.clear();
        frame(&mut framed, &encoded);
        if let Err(e) = writer.write_all(&framed) {
            fail(format!("cannot write {}: {e}", path.display()));
            continue;
        }
        dirty = true;
        if last_flush.elapsed() >= FLUSH_EVERY {
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

fn event(wall_time: f64, step: i64, value: summary::Value) -> Event {
    Event {
        wall_time,
        step,
        what: Some(What::Summary(Summary { value: vec![value] })),
    }
}
