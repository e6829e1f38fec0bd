//! `ExperimentLogger`: one run directory per experiment run, with the TensorBoard events, the
//! resolved config and a `metrics.jsonl` mirror that scripts and pandas read without TensorBoard.

use std::fs::File;
use std::io::{BufWriter, Seek, Write};
use std::path::{Path, PathBuf};

use crate::error::io;
use crate::{ChartCategory, HParam, Image, LogError, SummaryWriter};

/// File name of the metrics mirror in a run directory.
pub const METRICS_FILE: &str = "metrics.jsonl";
/// File name of the resolved config in a run directory.
pub const CONFIG_FILE: &str = "config.toml";

/// A run directory `{output_dir}/{name}_{YYYYmmdd_HHMMSS}` and everything logged into it.
pub struct ExperimentLogger {
    run_dir: PathBuf,
    writer: SummaryWriter,
    metrics: BufWriter<File>,
    step: i64,
}

impl ExperimentLogger {
    /// Creates the run directory (with `_2`, `_3`, ... appended if the name is taken), writes
    /// `config_toml` there as `config.toml` and as a `config` text summary.
    pub fn create(
        output_dir: impl AsRef<Path>,
        name: &str,
        config_toml: &str,
    ) -> Result<Self, LogError> {
        let output_dir = output_dir.as_ref();
        std::fs::create_dir_all(output_dir).map_err(io("create the output folder", output_dir))?;
        let stamp = chrono::Local::now().format("%Y%m%d_%H%M%S");
        let base = format!("{}_{stamp}", name.replace(['/', '\\'], "_"));
        let mut run_dir = output_dir.join(&base);
        let mut n = 1;
        loop {
            match std::fs::create_dir(&run_dir) {
                Ok(()) => break,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    n += 1;
                    run_dir = output_dir.join(format!("{base}_{n}"));
                }
                Err(e) => return Err(io("create the run folder", &run_dir)(e)),
            }
        }
        let config_path = run_dir.join(CONFIG_FILE);
        std::fs::write(&config_path, config_toml).map_err(io("write", &config_path))?;
        let metrics_path = run_dir.join(METRICS_FILE);
        let metrics = File::create(&metrics_path).map_err(io("create", &metrics_path))?;
        let writer = SummaryWriter::new_session(&run_dir, 0)?;
        writer.add_text("config", &config_text(config_toml), 0)?;
        Ok(ExperimentLogger {
            run_dir,
            writer,
            metrics: BufWriter::new(metrics),
            step: 0,
        })
    }

    /// Reopens an existing run directory to go on logging into it (a run resumed from a
    /// checkpoint taken at `step`). What the interrupted session logged at `step` or later is
    /// superseded, since the resumed run logs those steps again: TensorBoard is told to drop those
    /// events (a new event file that starts a session at `step`, see
    /// [`SummaryWriter::new_session`]), and `metrics.jsonl` keeps only its complete lines before
    /// `step` (cut short in place when the lines to drop are its tail, as after a crash, else
    /// rewritten through a temporary file and a rename; a crash here loses nothing either way).
    /// `config_toml`, the config this session runs with, is logged as a `config` text summary at
    /// `step`; `config.toml` stays the one the run started with.
    pub fn resume(
        run_dir: impl AsRef<Path>,
        step: i64,
        config_toml: &str,
    ) -> Result<Self, LogError> {
        let run_dir = run_dir.as_ref().to_path_buf();
        let metrics_path = run_dir.join(METRICS_FILE);
        if !run_dir.join(CONFIG_FILE).is_file() {
            return Err(LogError::NotARunDir { path: run_dir });
        }
        truncate_metrics(&metrics_path, step)?;
        let metrics = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&metrics_path)
            .map_err(io("open", &metrics_path))?;
        let writer = SummaryWriter::new_session(&run_dir, step)?;
        writer.add_text("config", &config_text(config_toml), step)?;
        Ok(ExperimentLogger {
            run_dir,
            writer,
            metrics: BufWriter::new(metrics),
            step,
        })
    }

    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }

    /// The underlying writer, for what the logger does not wrap.
    pub fn writer(&self) -> &SummaryWriter {
        &self.writer
    }

    pub fn step(&self) -> i64 {
        self.step
    }

    pub fn set_step(&mut self, step: i64) {
        self.step = step;
    }

    pub fn increment_step(&mut self) -> i64 {
        self.step += 1;
        self.step
    }

    fn mirror(&mut self, tag: &str, value: f64) -> Result<(), LogError> {
        let wall = crate::writer::now();
        let value = if value.is_nan() {
            "NaN".to_owned()
        } else if value.is_infinite() {
            if value > 0.0 { "Infinity" } else { "-Infinity" }.to_owned()
        } else {
            format!("{value:?}")
        };
        let tag = escape_json(tag);
        writeln!(
            self.metrics,
            "{{\"step\":{},\"tag\":{tag},\"value\":{value},\"wall_time\":{wall:?}}}",
            self.step
        )
        .map_err(|error| LogError::Io {
            action: "write",
            path: self.run_dir.join(METRICS_FILE),
            error,
        })
    }

    /// A scalar at the current step, in TensorBoard and in `metrics.jsonl`.
    pub fn log_scalar(&mut self, tag: &str, value: f64) -> Result<(), LogError> {
        self.writer.add_scalar(tag, value, self.step)?;
        self.mirror(tag, value)
    }

    /// Several scalars at the current step, each under its own tag.
    pub fn log_scalars(&mut self, scalars: &[(&str, f64)]) -> Result<(), LogError> {
        for (tag, value) in scalars {
            self.log_scalar(tag, *value)?;
        }
        Ok(())
    }

    pub fn log_histogram<T: Copy + Into<f64>>(
        &mut self,
        tag: &str,
        values: &[T],
    ) -> Result<(), LogError> {
        self.writer.add_histogram(tag, values, self.step)
    }

    pub fn log_image(&mut self, tag: &str, image: &Image) -> Result<(), LogError> {
        self.writer.add_image(tag, image, self.step)
    }

    pub fn log_text(&mut self, tag: &str, markdown: &str) -> Result<(), LogError> {
        self.writer.add_text(tag, markdown, self.step)
    }

    /// The Custom Scalars tab's layout; see [`SummaryWriter::add_custom_scalars`].
    pub fn log_custom_scalars(&mut self, layout: &[ChartCategory]) -> Result<(), LogError> {
        self.writer.add_custom_scalars(layout)
    }

    /// A row in the HParams tab, in a sub-run of its own: `hparams` for the first, then
    /// `hparams-2`, `hparams-3`, ... (a finished run resumed for more epochs, say). TensorBoard
    /// keeps the first hparams it reads in a folder, so a second set written beside the first
    /// would show the old config next to the new metrics.
    pub fn log_hparams(
        &mut self,
        hparams: &[(String, HParam)],
        metrics: &[(&str, f64)],
    ) -> Result<(), LogError> {
        let name = hparams_run_name(Self::hparams_runs(&self.run_dir).len() + 1);
        self.writer.add_hparams(hparams, metrics, &name)
    }

    /// The hparams sub-runs [`log_hparams`](Self::log_hparams) has written in `run_dir`, in the
    /// order it wrote them.
    pub fn hparams_runs(run_dir: &Path) -> Vec<PathBuf> {
        (1..)
            .map(|n| run_dir.join(hparams_run_name(n)))
            .take_while(|path| path.exists())
            .collect()
    }

    /// Everything logged so far is in the files.
    pub fn flush(&mut self) -> Result<(), LogError> {
        self.metrics.flush().map_err(|error| LogError::Io {
            action: "write",
            path: self.run_dir.join(METRICS_FILE),
            error,
        })?;
        self.writer.flush()
    }

    pub fn close(mut self) -> Result<(), LogError> {
        self.flush()?;
        self.writer.close()
    }
}

/// The `n`th hparams sub-run's name (from 1): `hparams`, then `hparams-2`, `hparams-3`, ...
fn hparams_run_name(n: usize) -> String {
    match n {
        1 => "hparams".to_owned(),
        n => format!("hparams-{n}"),
    }
}

fn config_text(config_toml: &str) -> String {
    format!("```toml\n{config_toml}\n```")
}

/// Keeps the lines of the metrics mirror at `path` that are complete (a crash can leave the last
/// one torn) and logged before `step`. Lines whose step cannot be read are kept: they are not ours
/// to judge. Usually the lines to drop are the file's tail, and the file is cut short in place;
/// otherwise the kept lines are copied to a temporary file that replaces it.
fn truncate_metrics(path: &Path, step: i64) -> Result<(), LogError> {
    let keep = |line: &[u8]| line.ends_with(b"\n") && line_step(line).is_none_or(|s| s < step);
    let file = match File::options().read(true).write(true).open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io("open", path)(e)),
    };
    // First pass: where the first line to drop starts, and whether any line after it stays.
    let (mut offset, mut first_drop, mut kept_after) = (0u64, None, false);
    for_each_line(&file, path, |line| {
        match (keep(line), first_drop) {
            (false, None) => first_drop = Some(offset),
            (true, Some(_)) => kept_after = true,
            _ => {}
        }
        offset += line.len() as u64;
        Ok(())
    })?;
    let Some(cut) = first_drop else {
        return Ok(());
    };
    if !kept_after {
        file.set_len(cut).map_err(io("cut short", path))?;
        return file.sync_all().map_err(io("write", path));
    }
    let tmp = path.with_extension("jsonl.tmp");
    let mut out = BufWriter::new(File::create(&tmp).map_err(io("create", &tmp))?);
    (&file)
        .seek(std::io::SeekFrom::Start(0))
        .map_err(io("read", path))?;
    for_each_line(&file, path, |line| {
        if keep(line) {
            out.write_all(line).map_err(io("write", &tmp))?;
        }
        Ok(())
    })?;
    let out = out
        .into_inner()
        .map_err(|e| io("write", &tmp)(e.into_error()))?;
    out.sync_all().map_err(io("write", &tmp))?;
    std::fs::rename(&tmp, path).map_err(io("replace", path))
}

/// Calls `f` with each line of `file` from its current position, newline included (the last
/// line may lack one).
fn for_each_line(
    file: &File,
    path: &Path,
    mut f: impl FnMut(&[u8]) -> Result<(), LogError>,
) -> Result<(), LogError> {
    use std::io::BufRead;
    let mut reader = std::io::BufReader::new(file);
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader
            .read_until(b'\n', &mut line)
            .map_err(io("read", path))?
            == 0
        {
            return Ok(());
        }
        f(&line)?;
    }
}

/// The step of a metrics line as [`ExperimentLogger`] writes it: `{"step":N,...`.
fn line_step(line: &[u8]) -> Option<i64> {
    let rest = line.strip_prefix(b"{\"step\":")?;
    let end = rest.iter().position(|&b| b == b',')?;
    std::str::from_utf8(&rest[..end]).ok()?.parse().ok()
}

fn escape_json(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
