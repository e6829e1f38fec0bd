//! `cargo xtask results`: the results log from the terminal.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use comfy_table::{Cell, CellAlignment, Table, presets};
use serde_json::{Value, json};
use unicode_width::UnicodeWidthStr;
use xp_results::{Entry, Filter, Found, Mode, Query, ResultsTracker, compare};

#[derive(Args)]
pub struct ResultsArgs {
    /// Folder holding results.jsonl (the config's `output_dir`), or a results log file itself.
    #[arg(long, global = true, default_value = "results")]
    dir: PathBuf,
    /// Only results whose config satisfies this, e.g. `model.model_type == vae`,
    /// `training.learning_rate < 1e-3`, `metrics.validity >= 0.9`; may be repeated.
    #[arg(long = "filter", global = true, value_name = "EXPR")]
    filters: Vec<String>,
    /// Only results whose experiment name matches this glob, e.g. `moses_*`.
    #[arg(long, global = true, value_name = "GLOB")]
    experiment: Option<String>,
    #[arg(long, global = true, value_enum, default_value_t = Format::Table)]
    format: Format,
    #[command(subcommand)]
    command: ResultsCommand,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Table,
    Json,
    Csv,
}

#[derive(Subcommand)]
enum ResultsCommand {
    /// Every matching result, oldest first.
    List {
        /// Only the last N.
        #[arg(short = 'n', value_parser = at_least_one)]
        n: Option<usize>,
        #[command(flatten)]
        columns: MetricColumns,
    },
    /// The best result by a metric, shown whole: metrics, artifacts, config.
    Best(RankArgs),
    /// The N best results by a metric, best first.
    Top {
        #[command(flatten)]
        rank: RankArgs,
        #[arg(short = 'n', default_value_t = 10, value_parser = at_least_one)]
        n: usize,
        #[command(flatten)]
        columns: MetricColumns,
    },
    /// The config keys and metrics that differ between two results (their line numbers, as
    /// `list` shows them).
    Compare { a: u64, b: u64 },
}

/// Which metrics get a column: a run logging many metrics makes a table too wide to read.
#[derive(Args)]
struct MetricColumns {
    /// Show only these metrics (comma-separated, e.g. `val_loss,validity`). By default all of
    /// them; a table in a terminal shows those that fit and names the rest. In the table and CSV;
    /// JSON always holds whole results.
    #[arg(long, value_delimiter = ',', value_name = "NAMES")]
    metrics: Vec<String>,
}

#[derive(Args)]
struct RankArgs {
    #[arg(long)]
    metric: String,
    #[arg(long, default_value = "min", value_parser = ["min", "max"])]
    mode: String,
}

impl ResultsArgs {
    /// The log `--dir` names: the `results.jsonl` in that folder, or the file itself (a log
    /// copied elsewhere, or one named otherwise).
    fn query(&self) -> Query {
        if self.dir.is_file() {
            Query::new(&self.dir)
        } else {
            ResultsTracker::open(&self.dir).query()
        }
    }
}

pub fn run(args: ResultsArgs) -> anyhow::Result<()> {
    let mut query = args.query();
    if let Some(glob) = &args.experiment {
        query = query.experiment(glob)?;
    }
    for f in &args.filters {
        query = query.filter(f)?;
    }
    let out = &mut std::io::stdout().lock();
    match &args.command {
        ResultsCommand::List { n, columns } => {
            let mut found = query.all()?;
            if found.value.is_empty() {
                explain_empty_answer(&args)?;
            }
            if let Some(n) = n {
                let skip = found.value.len().saturating_sub(*n);
                found.value.drain(..skip);
            }
            report(&query, &found, None);
            print_entries(
                out,
                &found.value,
                None,
                &columns.metrics,
                args.format,
                table_width(),
            )
        }
        ResultsCommand::Best(rank) => {
            let found = query.best(&rank.metric, rank.mode.parse()?)?;
            if found.value.is_none() {
                explain_empty_answer(&args)?;
            }
            check_metric_exists(&query, &found, found.value.is_none(), &rank.metric)?;
            report(&query, &found, Some(&rank.metric));
            let entries: Vec<Entry> = found.value.into_iter().collect();
            match (args.format, entries.first()) {
                (Format::Json, best) => writeln_json(out, &best.map_or(Value::Null, entry_json)),
                (Format::Table, Some(best)) => print_record(out, best, &rank.metric),
                (Format::Table, None) if found.nan_metric > 0 => {
                    bail!("no result to rank: `{}` is NaN in every one", rank.metric)
                }
                (Format::Table, None) => bail!("no result to rank: none matches"),
                (f, _) => print_entries(out, &entries, Some(&rank.metric), &[], f, None),
            }
        }
        ResultsCommand::Top { rank, n, columns } => {
            let mode: Mode = rank.mode.parse()?;
            let found = query.top(&rank.metric, mode, *n)?;
            if found.value.is_empty() {
                explain_empty_answer(&args)?;
            }
            check_metric_exists(&query, &found, found.value.is_empty(), &rank.metric)?;
            report(&query, &found, Some(&rank.metric));
            print_entries(
                out,
                &found.value,
                Some(&rank.metric),
                &columns.metrics,
                args.format,
                table_width(),
            )
        }
        ResultsCommand::Compare { a, b } => compare_lines(out, &query, *a, *b, args.format),
    }
}

fn at_least_one(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_owned()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

/// Tells, on stderr, what was skipped to give the answer, naming the file.
fn report<T>(query: &Query, found: &Found<T>, metric: Option<&str>) {
    for s in &found.skipped {
        eprintln!("warning: {}: {s}", query.path().display());
    }
    if let Some(metric) = metric {
        if found.without_metric > 0 {
            eprintln!(
                "note: {} result(s) without `{metric}` were not ranked",
                found.without_metric
            );
        }
        if found.nan_metric > 0 {
            eprintln!(
                "note: {} result(s) with `{metric}` = NaN were not ranked",
                found.nan_metric
            );
        }
    }
}

/// For an empty answer: an experiment glob that no result's name matches, or a filter on a config
/// key or metric that no result has, is almost always a typo. Fail, naming what there is, rather
/// than print an empty answer.
fn explain_empty_answer(args: &ResultsArgs) -> anyhow::Result<()> {
    if args.filters.is_empty() && args.experiment.is_none() {
        return Ok(());
    }
    let mut query = args.query();
    if let Some(glob) = &args.experiment {
        query = query.experiment(glob)?;
    }
    // What the filters choose from: the results the glob (if any) lets through.
    let records = query.all()?.value;
    if records.is_empty() {
        if let Some(glob) = &args.experiment {
            let mut names: Vec<String> = Vec::new();
            for entry in args.query().all()?.value {
                if names.len() > 10 {
                    break;
                }
                if !names.contains(&entry.record.experiment_name) {
                    names.push(entry.record.experiment_name);
                }
            }
            if !names.is_empty() {
                let more = if names.len() > 10 { ", ..." } else { "" };
                names.truncate(10);
                bail!(
                    "--experiment `{glob}` matches no result's name (the names there: {}{more})",
                    names.join(", ")
                );
            }
        }
        return Ok(());
    }
    let mut seen = std::collections::HashSet::new();
    let mut config_paths = Vec::new();
    for entry in &records {
        for path in entry.record.config_paths() {
            if seen.insert(path.clone()) {
                config_paths.push(path);
            }
        }
    }
    let mut metrics = Vec::new();
    for name in metric_columns(&records, None) {
        metrics.push(format!("metrics.{name}"));
    }
    for expr in &args.filters {
        let filter: Filter = expr.parse()?;
        let path = filter.path();
        let (known, what) = if path.starts_with("metrics.") {
            (&metrics, "metric")
        } else {
            (&config_paths, "config key")
        };
        if known.iter().any(|k| k == path) {
            check_value_kind(expr, &filter, &records)?;
            if let Some(note) = value_not_held(&filter, &records) {
                eprintln!("note: filter `{expr}`: {note}");
            }
            continue;
        }
        let suggestion = closest(known, path)
            .map(|k| format!("; did you mean `{k}`?"))
            .unwrap_or_default();
        bail!("filter `{expr}`: no result has the {what} `{path}`{suggestion}");
    }
    Ok(())
}

/// A filter that compares a key with a value of another kind than every result holds there (a
/// number with text: `model.hidden_dim > abc`, `model.model_type == 3`) matches nothing but
/// `!=`: almost always a typo. Fail, saying what the key holds.
fn check_value_kind(expr: &str, filter: &Filter, records: &[Entry]) -> anyhow::Result<()> {
    if filter.operator() == "!=" {
        return Ok(());
    }
    let kind = |v: &Value| match v {
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Bool(_) => "true or false",
        Value::Null => "null",
        Value::Array(_) => "a list",
        Value::Object(_) => "a table",
    };
    let path = filter.path();
    // (kind, as written) of the value each result holds there; a metric is a number, NaN too.
    let held: Vec<(&str, String)> = records
        .iter()
        .filter_map(|e| match held_at(e, path)? {
            Held::Metric(m) => Some(("a number", number_text(m))),
            Held::Config(v) => Some((kind(v), v.to_string())),
        })
        .collect();
    let wanted = kind(filter.value());
    if held.is_empty() || held.iter().any(|(k, _)| *k == wanted) {
        return Ok(());
    }
    let mut kinds: Vec<&str> = Vec::new();
    for (k, _) in &held {
        if !kinds.contains(k) {
            kinds.push(k);
        }
    }
    let (example_kind, example) = &held[0];
    let fix = match *example_kind {
        "text" => format!(
            "; to compare text, quote the value: `{path} {} \"{}\"`",
            filter.operator(),
            match filter.value() {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            }
        ),
        _ => String::new(),
    };
    bail!(
        "filter `{expr}`: `{path}` holds {} (such as {example}), never {wanted} like {}, so it matches nothing{fix}",
        kinds.join(" or "),
        filter.value()
    )
}

/// What a result holds at a filter's path: a metric (`metrics.NAME`) or a config value.
enum Held<'a> {
    Metric(f64),
    Config(&'a Value),
}

fn held_at<'a>(entry: &'a Entry, path: &str) -> Option<Held<'a>> {
    match path.strip_prefix("metrics.") {
        Some(metric) => entry.record.metrics.get(metric).map(|&m| Held::Metric(m)),
        None => entry.record.config_value(path).map(Held::Config),
    }
}

/// For `==` a value that no result holds at the key: what it holds, with a "did you mean". A
/// misspelt value (`model.model_type == vea`, `== VAE`) empties the answer as a misspelt key
/// does, but asking for a value no run has yet is a fair question: a note, not an error.
fn value_not_held(filter: &Filter, records: &[Entry]) -> Option<String> {
    if filter.operator() != "==" {
        return None;
    }
    let path = filter.path();
    let mut held: Vec<Value> = Vec::new();
    for entry in records {
        // A NaN metric is no JSON number, and `==` passes none.
        let value = match held_at(entry, path) {
            Some(Held::Metric(m)) => match serde_json::Number::from_f64(m) {
                Some(n) => Value::Number(n),
                None => continue,
            },
            Some(Held::Config(v)) => v.clone(),
            None => continue,
        };
        if filter.accepts(&value) {
            return None;
        }
        if !held.contains(&value) {
            held.push(value);
        }
    }
    if held.is_empty() {
        return None;
    }
    // Numbers in order, and no "did you mean" among them: digits are not spelling.
    let numbers = held.iter().all(Value::is_number);
    if numbers {
        held.sort_by(|a, b| {
            a.as_f64()
                .zip(b.as_f64())
                .map_or(std::cmp::Ordering::Equal, |(a, b)| a.total_cmp(&b))
        });
    } else {
        held.sort_by_key(|v| v.to_string());
    }
    let wanted = filter.value().to_string();
    let texts: Vec<String> = held.iter().map(Value::to_string).collect();
    let suggestion = texts
        .iter()
        .find(|t| t.eq_ignore_ascii_case(&wanted))
        .or_else(|| closest(&texts, &wanted))
        .filter(|_| !numbers)
        .map(|t| format!("; did you mean {t}?"))
        .unwrap_or_default();
    let holds = match texts.len() {
        n if n > 10 && numbers => format!("{n} values from {} to {}", texts[0], texts[n - 1]),
        n if n > 10 => format!("{}, ... ({n} values)", texts[..10].join(", ")),
        _ => texts.join(", "),
    };
    Some(format!(
        "no result has `{path}` == {wanted}; it holds {holds}{suggestion}"
    ))
}

/// The name in `names` closest to a misspelled `name`, if one is close.
fn closest<'a>(names: &'a [String], name: &str) -> Option<&'a String> {
    names
        .iter()
        .map(|n| (strsim::jaro_winkler(n, name), n))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, n)| n)
}

/// A metric that no matching result has is almost always a typo: fail, naming the metrics there
/// are, rather than print an empty answer.
fn check_metric_exists<T>(
    query: &Query,
    found: &Found<T>,
    nothing_ranked: bool,
    metric: &str,
) -> anyhow::Result<()> {
    if !nothing_ranked || found.without_metric == 0 || found.nan_metric > 0 {
        return Ok(());
    }
    report(query, found, None);
    let all = query.all()?;
    let names = metric_columns(&all.value, None);
    // `val_loss` for `best_val_loss` is as likely as a misspelling.
    let suggestion = names
        .iter()
        .find(|n| n.contains(metric))
        .or_else(|| closest(&names, metric))
        .map(|n| format!("; did you mean `{n}`?"))
        .unwrap_or_default();
    bail!(
        "no result has a metric `{metric}`{suggestion} (the metrics there: {})",
        names.join(", ")
    )
}

/// A number for a person to read: four decimals, integers plain, very small or large ones in
/// exponent form. `--format json|csv` keep every digit.
fn table_number(x: f64) -> String {
    if !x.is_finite() {
        number_text(x)
    } else if x.fract() == 0.0 && x.abs() < 1e15 {
        // `+ 0.0` turns -0.0 into 0.0.
        format!("{:.0}", x + 0.0)
    } else if (1e-3..1e6).contains(&x.abs()) {
        format!("{x:.4}")
    } else {
        format!("{x:.3e}")
    }
}

/// `2026-11-28T15:25:59.843783+00:00` as `2026-11-28 15:25:59` (the time as recorded, to the
/// second); anything else as it is.
fn table_time(timestamp: &str) -> String {
    let b = timestamp.as_bytes();
    match (timestamp.get(..10), timestamp.get(11..19)) {
        (Some(date), Some(time)) if b[10] == b'T' && b[13] == b':' && b[16] == b':' => {
            format!("{date} {time}")
        }
        _ => timestamp.to_owned(),
    }
}

/// `text` as a table cell shows it: control characters written as escapes (`\n`, `\u{1b}`), so
/// a name from a hand-written or foreign log cannot split a row or drive the terminal. JSON and
/// CSV keep the text as it is.
pub(crate) fn one_line(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return text.into();
    }
    let mut shown = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            shown.extend(c.escape_default());
        } else {
            shown.push(c);
        }
    }
    shown.into()
}

/// One result whole, a field per row: what `best` prints, so "which run, with what config" is
/// answered at once.
fn print_record(out: &mut impl Write, e: &Entry, metric: &str) -> anyhow::Result<()> {
    let mut table = Table::new();
    table.load_preset(presets::UTF8_BORDERS_ONLY);
    table.set_header(["result", &format!("line {}", e.line)]);
    let mut row = |key: String, value: &str| {
        table.add_row([one_line(&key), one_line(value)]);
    };
    row("timestamp".to_owned(), &e.record.timestamp);
    row("experiment".to_owned(), &e.record.experiment_name);
    for m in metric_columns(std::slice::from_ref(e), Some(metric)) {
        let value = e.record.metrics.get(&m).map(|x| table_number(*x));
        row(format!("metrics.{m}"), &value.unwrap_or_default());
    }
    for (k, v) in &e.record.artifacts {
        row(format!("artifacts.{k}"), v);
    }
    for (k, v) in flat_config(e) {
        row(format!("config.{k}"), &v);
    }
    writeln!(out, "{table}")?;
    Ok(())
}

fn entry_json(e: &Entry) -> Value {
    let mut v = serde_json::to_value(&e.record).expect("records serialise");
    // serde_json writes non-finite floats as null; keep them visible as strings.
    if let Some(metrics) = v.get_mut("metrics").and_then(Value::as_object_mut) {
        for (k, m) in metrics.iter_mut() {
            if let Some(x) = e.record.metrics.get(k).filter(|x| !x.is_finite()) {
                *m = json!(number_text(*x));
            }
        }
    }
    v.as_object_mut()
        .expect("a record is an object")
        .insert("line".into(), json!(e.line));
    v
}

fn writeln_json(out: &mut impl Write, value: &Value) -> anyhow::Result<()> {
    serde_json::to_writer_pretty(&mut *out, value)?;
    writeln!(out)?;
    Ok(())
}

fn number_text(x: f64) -> String {
    if x.is_nan() {
        "NaN".to_owned()
    } else if x.is_infinite() {
        if x > 0.0 { "inf" } else { "-inf" }.to_owned()
    } else {
        format!("{x}")
    }
}

/// Metric names of the entries, `first` first, then in order of appearance.
fn metric_columns(entries: &[Entry], first: Option<&str>) -> Vec<String> {
    let mut names: Vec<String> = first.map(str::to_owned).into_iter().collect();
    for e in entries {
        for k in e.record.metrics.keys() {
            if !names.contains(k) {
                names.push(k.clone());
            }
        }
    }
    names
}

fn flat_config(e: &Entry) -> Vec<(String, String)> {
    fn walk(v: &Value, prefix: &str, out: &mut Vec<(String, String)>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    let p = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(v, &p, out);
                }
            }
            Value::String(s) => out.push((prefix.to_owned(), s.clone())),
            other => out.push((prefix.to_owned(), other.to_string())),
        }
    }
    let mut out = Vec::new();
    walk(&Value::Object(e.record.config.clone()), "", &mut out);
    out
}

fn print_entries(
    out: &mut impl Write,
    entries: &[Entry],
    metric: Option<&str>,
    only: &[String],
    format: Format,
    width: Option<usize>,
) -> anyhow::Result<()> {
    let mut metrics = metric_columns(entries, metric);
    if !only.is_empty() && !entries.is_empty() {
        if let Some(unknown) = only.iter().find(|m| !metrics.contains(m)) {
            bail!(
                "--metrics: no result here has a metric `{unknown}` (the metrics there: {})",
                metrics.join(", ")
            );
        }
        // The ranking metric stays first; the rest in the order asked for.
        metrics = metric
            .map(str::to_owned)
            .into_iter()
            .chain(only.iter().cloned())
            .collect();
        let mut seen = std::collections::HashSet::new();
        metrics.retain(|m| seen.insert(m.clone()));
    }
    let metric_cell = |e: &Entry, m: &str, text: fn(f64) -> String| {
        e.record
            .metrics
            .get(m)
            .map(|x| text(*x))
            .unwrap_or_default()
    };
    match format {
        Format::Json => writeln_json(out, &Value::Array(entries.iter().map(entry_json).collect())),
        Format::Csv => {
            let mut config_cols: Vec<String> = Vec::new();
            let mut artifact_cols: Vec<String> = Vec::new();
            for e in entries {
                for (k, _) in flat_config(e) {
                    if !config_cols.contains(&k) {
                        config_cols.push(k);
                    }
                }
                for k in e.record.artifacts.keys() {
                    if !artifact_cols.contains(k) {
                        artifact_cols.push(k.clone());
                    }
                }
            }
            let mut w = csv::Writer::from_writer(out);
            let mut header = vec![
                "line".to_owned(),
                "timestamp".to_owned(),
                "experiment_name".to_owned(),
            ];
            header.extend(metrics.iter().map(|m| format!("metrics.{m}")));
            header.extend(config_cols.iter().map(|c| format!("config.{c}")));
            header.extend(artifact_cols.iter().map(|a| format!("artifacts.{a}")));
            w.write_record(&header)?;
            for e in entries {
                let config = flat_config(e);
                let mut row = vec![
                    e.line.to_string(),
                    e.record.timestamp.clone(),
                    e.record.experiment_name.clone(),
                ];
                row.extend(metrics.iter().map(|m| metric_cell(e, m, number_text)));
                row.extend(config_cols.iter().map(|c| {
                    config
                        .iter()
                        .find(|(k, _)| k == c)
                        .map(|(_, v)| v.clone())
                        .unwrap_or_default()
                }));
                row.extend(
                    artifact_cols
                        .iter()
                        .map(|a| e.record.artifacts.get(a).cloned().unwrap_or_default()),
                );
                w.write_record(&row)?;
            }
            w.flush()?;
            Ok(())
        }
        Format::Table => {
            let rows: Vec<Vec<String>> = entries
                .iter()
                .map(|e| {
                    let fixed = [
                        e.line.to_string(),
                        one_line(&table_time(&e.record.timestamp)).into_owned(),
                        one_line(&e.record.experiment_name).into_owned(),
                    ];
                    let metric_cells = metrics.iter().map(|m| metric_cell(e, m, table_number));
                    fixed.into_iter().chain(metric_cells).collect()
                })
                .collect();
            let header: Vec<String> = ["#", "timestamp", "experiment"]
                .into_iter()
                .map(str::to_owned)
                .chain(metrics.iter().map(|m| one_line(m).into_owned()))
                .collect();
            // Metrics the user did not choose are shown while they fit; the rest are named.
            let shown = match width {
                Some(width) if only.is_empty() => fitting_columns(&header, &rows, width),
                _ => header.len(),
            };
            let mut table = metrics_table(&header[..shown]);
            for row in &rows {
                table.add_row(row[..shown].iter().map(Cell::new));
            }
            writeln!(out, "{table}")?;
            if entries.is_empty() {
                writeln!(out, "(no matching results)")?;
            }
            let hidden = &header[shown..];
            if !hidden.is_empty() {
                writeln!(
                    out,
                    "{} more metric{} did not fit: {} (choose the columns with --metrics; --format csv or json shows all)",
                    hidden.len(),
                    if hidden.len() == 1 { "" } else { "s" },
                    hidden.join(", ")
                )?;
            }
            Ok(())
        }
    }
}

/// The width a table must fit: `COLUMNS` when set, else the terminal's; `None` when printing to
/// a pipe or a file, which then gets every column.
fn table_width() -> Option<usize> {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse().ok())
        .filter(|&c: &usize| c > 0)
        .or_else(|| Table::new().width().map(usize::from))
}

/// An empty results table with these columns: the line number and the metrics aligned right.
fn metrics_table(header: &[String]) -> Table {
    let mut table = Table::new();
    table.load_preset(presets::UTF8_BORDERS_ONLY);
    table.set_header(header);
    for (i, col) in table.column_iter_mut().enumerate() {
        if i == 0 || i >= 3 {
            col.set_cell_alignment(CellAlignment::Right);
        }
    }
    table
}

/// How many of the columns (the three fixed ones and at least one metric) fit in `width`.
/// Measured on a table holding each column's widest cell, which is as wide as the whole. Widest
/// in terminal columns, as comfy-table pads: `実験` takes four, not two.
fn fitting_columns(header: &[String], rows: &[Vec<String>], width: usize) -> usize {
    let widest: Vec<&str> = (0..header.len())
        .map(|c| {
            rows.iter()
                .map(|r| r[c].as_str())
                .max_by_key(|cell| cell.width())
                .unwrap_or("")
        })
        .collect();
    let fits = |n: usize| {
        let mut probe = metrics_table(&header[..n]);
        probe.add_row(&widest[..n]);
        probe.lines().all(|line| line.width() <= width)
    };
    let mut n = header.len();
    while n > 4 && !fits(n) {
        n -= 1;
    }
    n
}

fn compare_lines(
    out: &mut impl Write,
    query: &Query,
    a: u64,
    b: u64,
    format: Format,
) -> anyhow::Result<()> {
    let found = query.all()?;
    report(query, &found, None);
    let pick = |line: u64| {
        found
            .value
            .iter()
            .find(|e| e.line == line)
            .with_context(|| format!("no result on line {line} (that matches the filters); `results list` shows the line numbers"))
    };
    let (ea, eb) = (pick(a)?, pick(b)?);
    let c = compare(&ea.record, &eb.record);
    let show = |v: &Option<Value>| match v {
        None => "(absent)".to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    let show_m = |v: &Option<f64>| v.map(number_text).unwrap_or_else(|| "(absent)".to_owned());
    let rows: Vec<[String; 4]> = c
        .config
        .iter()
        .map(|(k, x, y)| ["config".to_owned(), k.clone(), show(x), show(y)])
        .chain(
            c.metrics
                .iter()
                .map(|(k, x, y)| ["metric".to_owned(), k.clone(), show_m(x), show_m(y)]),
        )
        .collect();
    let names = [
        format!("#{a} {}", ea.record.experiment_name),
        format!("#{b} {}", eb.record.experiment_name),
    ];
    match format {
        Format::Json => writeln_json(
            out,
            &json!({"a": entry_json(ea), "b": entry_json(eb),
                    "differences": rows.iter().map(|r| json!({"kind": r[0], "key": r[1], "a": r[2], "b": r[3]})).collect::<Vec<_>>()}),
        ),
        Format::Csv => {
            let mut w = csv::Writer::from_writer(out);
            w.write_record(["kind", "key", &names[0], &names[1]])?;
            for r in &rows {
                w.write_record(r)?;
            }
            w.flush()?;
            Ok(())
        }
        Format::Table => {
            let mut table = Table::new();
            table.load_preset(presets::UTF8_BORDERS_ONLY);
            table.set_header(["", "key", &one_line(&names[0]), &one_line(&names[1])]);
            let same = rows.is_empty();
            for r in &rows {
                table.add_row(r.iter().map(|cell| one_line(cell)));
            }
            writeln!(out, "{table}")?;
            if same {
                writeln!(out, "(no differences in config or metrics)")?;
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use unicode_width::UnicodeWidthStr;

    use super::{fitting_columns, metrics_table, table_number, table_time};

    #[test]
    fn the_fit_measures_cells_in_terminal_columns() {
        // The longer name in characters is the narrower on screen (12 columns against 14).
        let header: Vec<String> = ["#", "timestamp", "experiment"]
            .into_iter()
            .map(str::to_owned)
            .chain((0..8).map(|i| format!("metric_{i}")))
            .collect();
        let rows: Vec<Vec<String>> = ["abcdefghijkl", "実験実験実験実験"]
            .iter()
            .map(|name| {
                ["1", "2026-11-30 02:00:00", name]
                    .into_iter()
                    .map(str::to_owned)
                    .chain((0..8).map(|_| "0.1234".to_owned()))
                    .collect()
            })
            .collect();
        let table_width = |n: usize| {
            let mut table = metrics_table(&header[..n]);
            rows.iter().for_each(|row| {
                table.add_row(&row[..n]);
            });
            table.lines().map(|line| line.width()).max().unwrap()
        };
        for width in table_width(4)..=table_width(header.len()) {
            let n = fitting_columns(&header, &rows, width);
            assert!(table_width(n) <= width, "{n} columns at {width}");
            assert!(n == header.len() || table_width(n + 1) > width);
        }
    }

    #[test]
    fn table_cells_are_short_and_never_panic() {
        let numbers = [
            (0.934995, "0.9350"),
            (1.0, "1"),
            (-0.0, "0"),
            (1e-5, "1.000e-5"),
            (2.5e7, "25000000"),
            (2.5e7 + 0.5, "2.500e7"),
            (f64::NAN, "NaN"),
        ];
        for (x, shown) in numbers {
            assert_eq!(table_number(x), shown);
        }
        assert_eq!(
            table_time("2026-11-28T15:25:59.843783+00:00"),
            "2026-11-28 15:25:59"
        );
        assert_eq!(table_time("2026-11-27T21:51:52"), "2026-11-27 21:51:52");
        // Not a time we know, or a multi-byte character where a cut would fall: shown as it is.
        for odd in [
            "yesterday",
            "2026-11-28T15:25:5\u{e9}",
            "2026-11-28 15:25:59",
        ] {
            assert_eq!(table_time(odd), odd);
        }
    }
}
