//! Questions to the log: all results, the best or top n by a metric, filtered by experiment name
//! (glob) and by config values (`model.model_type == "vae"`).

use std::cmp::Ordering;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::record::{Fields, flatten};
use crate::scan::{Line, SkippedLine, scan};
use crate::{ResultRecord, ResultsError};

/// Whether smaller or larger values of a metric are better.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Min,
    Max,
}

impl std::str::FromStr for Mode {
    type Err = ResultsError;
    fn from_str(s: &str) -> Result<Self, ResultsError> {
        match s {
            "min" => Ok(Mode::Min),
            "max" => Ok(Mode::Max),
            _ => Err(ResultsError::Mode(s.to_owned())),
        }
    }
}

impl Mode {
    /// `Less` when `a` is better than `b`.
    fn compare(self, a: f64, b: f64) -> Ordering {
        match self {
            Mode::Min => a.total_cmp(&b),
            Mode::Max => b.total_cmp(&a),
        }
    }
}

/// A result and its line in the log (1-based), which identifies it in `compare`.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub line: u64,
    pub record: ResultRecord,
}

/// An answer, with the lines that had to be skipped to give it.
#[derive(Debug, Clone, PartialEq)]
pub struct Found<T> {
    pub value: T,
    pub skipped: Vec<SkippedLine>,
    /// Matching results that were not ranked because they lack the metric.
    pub without_metric: u64,
    /// Matching results that were not ranked because the metric is NaN.
    pub nan_metric: u64,
}

/// A comparison between config values: `model.model_type == "vae"`, `training.epochs >= 10`.
/// Paths address the config; `metrics.NAME` addresses a metric. The value is JSON, text in
/// single quotes (`'vae'`, as pandas' `query` takes it) or a bare word (`vae`).
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    path: String,
    op: Op,
    value: Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl std::str::FromStr for Filter {
    type Err = ResultsError;

    fn from_str(expr: &str) -> Result<Self, ResultsError> {
        let bad = |reason: &str| ResultsError::Filter {
            expr: expr.to_owned(),
            reason: reason.to_owned(),
        };
        let ops = [
            ("==", Op::Eq),
            ("!=", Op::Ne),
            ("<=", Op::Le),
            (">=", Op::Ge),
            ("<", Op::Lt),
            (">", Op::Gt),
        ];
        let (at, text, op) = ops
            .iter()
            .filter_map(|(text, op)| expr.find(text).map(|at| (at, *text, *op)))
            .min_by_key(|(at, text, _)| (*at, std::cmp::Reverse(text.len())))
            .ok_or_else(|| bad("expected `PATH OP VALUE` with OP one of == != < <= > >="))?;
        let path = expr[..at].trim();
        let raw = expr[at + text.len()..].trim();
        if path.is_empty() || path.split('.').any(str::is_empty) {
            return Err(bad("the key path is empty or has an empty part"));
        }
        // `a => 1`, `a >> 1`, `a == = 1`: a typo, which would otherwise match nothing, silently.
        // (A space may be part of a key the seed's tracker logged: `learning rate`.)
        let operator_char = |c: char| matches!(c, '=' | '!' | '<' | '>');
        if path.contains(operator_char) {
            return Err(bad(
                "the key path has an operator character in it; write one operator: == != < <= > >=",
            ));
        }
        if raw.is_empty() {
            return Err(bad("the value is missing"));
        }
        if raw.starts_with(operator_char) {
            return Err(bad(
                "the value starts with an operator character; write one operator: == != < <= > >= (quote a string value that starts with one: \"=x\")",
            ));
        }
        // JSON literal (3e-4, "vae", true), text in single quotes as pandas' `query` takes it
        // ('vae'), or a bare word taken as text (vae).
        let value = match serde_json::from_str(raw) {
            Ok(value) => value,
            Err(_) if raw.starts_with('"') => {
                return Err(bad(
                    "the quoted value is not closed, or is not valid JSON text; write it as \"vae\", 'vae' or vae",
                ));
            }
            Err(_) => match raw.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')) {
                Some(text) => Value::String(text.to_owned()),
                None => Value::String(raw.to_owned()),
            },
        };
        Ok(Filter {
            path: path.strip_prefix("config.").unwrap_or(path).to_owned(),
            op,
            value,
        })
    }
}

impl Filter {
    /// What the filter looks at: a config path (`model.model_type`) or `metrics.NAME`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The operator as written: `==`, `!=`, `<`, `<=`, `>` or `>=`.
    pub fn operator(&self) -> &'static str {
        match self.op {
            Op::Eq => "==",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
        }
    }

    /// The value compared with: a JSON literal, or the bare word as a string.
    pub fn value(&self) -> &Value {
        &self.value
    }

    fn matches(&self, config: &serde_json::Map<String, Value>, fields: &Fields<'_>) -> bool {
        let actual = match self.path.strip_prefix("metrics.") {
            Some(metric) => match fields.metric(metric) {
                Ok(Some(v)) => serde_json::Number::from_f64(v).map(Value::Number),
                _ => None,
            },
            None => {
                let mut parts = self.path.split('.');
                let first = parts.next().and_then(|k| config.get(k));
                first
                    .and_then(|v| parts.try_fold(v, |v, k| v.get(k)))
                    .cloned()
            }
        };
        actual.is_some_and(|actual| self.accepts(&actual))
    }

    /// Whether a result holding `actual` at [`path`](Self::path) passes: numbers compare as
    /// numbers, text with text, true and false with each other; a value of another kind only
    /// passes `!=`.
    pub fn accepts(&self, actual: &Value) -> bool {
        let ordering = match (actual, &self.value) {
            (Value::Number(a), Value::Number(b)) => a
                .as_f64()
                .zip(b.as_f64())
                .and_then(|(a, b)| a.partial_cmp(&b)),
            (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
            (Value::Bool(a), Value::Bool(b)) => Some(a.cmp(b)),
            (a, b) => (a == b).then_some(Ordering::Equal),
        };
        match (self.op, ordering) {
            (Op::Ne, None) => true,
            (_, None) => false,
            (Op::Eq, Some(o)) => o == Ordering::Equal,
            (Op::Ne, Some(o)) => o != Ordering::Equal,
            (Op::Lt, Some(o)) => o == Ordering::Less,
            (Op::Le, Some(o)) => o != Ordering::Greater,
            (Op::Gt, Some(o)) => o == Ordering::Greater,
            (Op::Ge, Some(o)) => o != Ordering::Less,
        }
    }
}

/// A query over one log; build it with [`experiment`](Self::experiment) and
/// [`filter`](Self::filter), then ask [`all`](Self::all), [`best`](Self::best) or [`top`](Self::top).
#[derive(Debug, Clone)]
pub struct Query {
    path: PathBuf,
    name: Option<glob::Pattern>,
    filters: Vec<Filter>,
}

/// Counts of a ranking pass.
#[derive(Default)]
struct Ranking {
    /// (value, line, offset of nothing: re-read later) best first, at most n.
    kept: Vec<(f64, u64, Option<ResultRecord>)>,
    without_metric: u64,
    nan_metric: u64,
}

impl Query {
    /// A query over the log file at `path`.
    pub fn new(path: impl AsRef<Path>) -> Self {
        Query {
            path: path.as_ref().to_path_buf(),
            name: None,
            filters: Vec::new(),
        }
    }

    /// The log file this query reads.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Only results whose experiment name matches the glob (`moses_*`, `run-?`).
    pub fn experiment(mut self, pattern: &str) -> Result<Self, ResultsError> {
        let p = glob::Pattern::new(pattern).map_err(|e| ResultsError::Pattern {
            pattern: pattern.to_owned(),
            reason: e.msg.to_owned(),
        })?;
        self.name = Some(p);
        Ok(self)
    }

    /// Only results for which `expr` holds; see [`Filter`].
    pub fn filter(mut self, expr: &str) -> Result<Self, ResultsError> {
        self.filters.push(expr.parse()?);
        Ok(self)
    }

    /// Whether the line passes the name pattern and the filters; `Err` when the parts needed
    /// to tell are not valid JSON.
    fn selects(&self, fields: &Fields<'_>) -> Result<bool, String> {
        if let Some(p) = &self.name
            && !p.matches(&fields.experiment_name()?)
        {
            return Ok(false);
        }
        if self.filters.is_empty() {
            return Ok(true);
        }
        let config = fields.config()?;
        Ok(self.filters.iter().all(|f| f.matches(&config, fields)))
    }

    /// Every matching result, in file order.
    pub fn all(&self) -> Result<Found<Vec<Entry>>, ResultsError> {
        let (mut entries, skipped) = scan(
            &self.path,
            Vec::new,
            |mut acc: Vec<Entry>, line: &Line<'_>, skipped: &mut Vec<SkippedLine>| {
                let record = line.fields.to_record();
                match self
                    .selects(&line.fields)
                    .and_then(|keep| record.map(|r| (keep, r)))
                {
                    Ok((true, record)) => acc.push(Entry {
                        line: line.number,
                        record,
                    }),
                    Ok((false, _)) => {}
                    Err(reason) => skipped.push(line.corrupt(reason)),
                }
                acc
            },
            |mut a, b| {
                a.extend(b);
                a
            },
        )?;
        entries.sort_by_key(|e| e.line);
        Ok(Found {
            value: entries,
            skipped,
            without_metric: 0,
            nan_metric: 0,
        })
    }

    /// The best matching result by `metric`. Results without the metric are skipped (not
    /// treated as infinitely bad or good), NaN never wins, and of equal values the earliest
    /// logged wins (as Python's `min`/`max` pick).
    pub fn best(&self, metric: &str, mode: Mode) -> Result<Found<Option<Entry>>, ResultsError> {
        let found = self.top(metric, mode, 1)?;
        Ok(Found {
            value: found.value.into_iter().next(),
            skipped: found.skipped,
            without_metric: found.without_metric,
            nan_metric: found.nan_metric,
        })
    }

    /// The `n` best matching results by `metric`, best first; see [`best`](Self::best).
    pub fn top(
        &self,
        metric: &str,
        mode: Mode,
        n: usize,
    ) -> Result<Found<Vec<Entry>>, ResultsError> {
        let better = |a: &(f64, u64, Option<ResultRecord>),
                      b: &(f64, u64, Option<ResultRecord>)| {
            mode.compare(a.0, b.0).then(a.1.cmp(&b.1))
        };
        let keep = |mut kept: Vec<(f64, u64, Option<ResultRecord>)>| {
            kept.sort_by(better);
            kept.truncate(n);
            kept
        };
        let (ranking, skipped) = scan(
            &self.path,
            Ranking::default,
            |mut acc: Ranking, line: &Line<'_>, skipped: &mut Vec<SkippedLine>| {
                let value = self.selects(&line.fields).and_then(|keep| {
                    if keep {
                        line.fields.metric(metric).map(Some)
                    } else {
                        Ok(None)
                    }
                });
                match value {
                    Err(reason) => skipped.push(line.corrupt(reason)),
                    Ok(None) => {}
                    Ok(Some(None)) => acc.without_metric += 1,
                    Ok(Some(Some(v))) if v.is_nan() => acc.nan_metric += 1,
                    Ok(Some(Some(v))) => {
                        let enters = n > 0
                            && (acc.kept.len() < n
                                || acc.kept.last().is_some_and(|w| {
                                    better(&(v, line.number, None), w) == Ordering::Less
                                }));
                        // Only a line that would be returned is parsed whole; one that fails
                        // then is reported and never ranked, so the answer is exact.
                        if enters {
                            match line.fields.to_record() {
                                Ok(record) => {
                                    acc.kept.push((v, line.number, Some(record)));
                                    acc.kept = keep(std::mem::take(&mut acc.kept));
                                }
                                Err(reason) => skipped.push(line.corrupt(reason)),
                            }
                        }
                    }
                }
                acc
            },
            |mut a: Ranking, b: Ranking| {
                a.kept.extend(b.kept);
                a.kept = keep(a.kept);
                a.without_metric += b.without_metric;
                a.nan_metric += b.nan_metric;
                a
            },
        )?;
        let value = ranking
            .kept
            .into_iter()
            .filter_map(|(_, line, record)| record.map(|record| Entry { line, record }))
            .collect();
        Ok(Found {
            value,
            skipped,
            without_metric: ranking.without_metric,
            nan_metric: ranking.nan_metric,
        })
    }
}

/// What differs between two results: config keys (dotted paths) and metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// (path, value in a, value in b); `None` where a side lacks the key.
    pub config: Vec<(String, Option<Value>, Option<Value>)>,
    /// (metric, value in a, value in b); `None` where a side lacks the metric. NaN on both
    /// sides counts as equal.
    pub metrics: Vec<(String, Option<f64>, Option<f64>)>,
}

/// The config keys and metrics that differ between `a` and `b`, in `a`'s order, then `b`'s.
pub fn compare(a: &ResultRecord, b: &ResultRecord) -> Comparison {
    let mut flat_a = Vec::new();
    let mut flat_b = Vec::new();
    flatten(&a.config, "", &mut flat_a);
    flatten(&b.config, "", &mut flat_b);
    let mut keys: Vec<&String> = flat_a.iter().map(|(k, _)| k).collect();
    for (k, _) in &flat_b {
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    let lookup = |flat: &[(String, Value)], k: &str| {
        flat.iter().find(|(p, _)| p == k).map(|(_, v)| v.clone())
    };
    let config = keys
        .into_iter()
        .map(|k| (k.clone(), lookup(&flat_a, k), lookup(&flat_b, k)))
        .filter(|(_, x, y)| x != y)
        .collect();
    let mut names: Vec<&String> = a.metrics.keys().collect();
    names.extend(b.metrics.keys().filter(|k| !a.metrics.contains_key(*k)));
    let same = |x: Option<f64>, y: Option<f64>| match (x, y) {
        (Some(x), Some(y)) => x == y || (x.is_nan() && y.is_nan()),
        (x, y) => x.is_none() && y.is_none(),
    };
    let metrics = names
        .into_iter()
        .map(|k| {
            (
                k.clone(),
                a.metrics.get(k).copied(),
                b.metrics.get(k).copied(),
            )
        })
        .filter(|(_, x, y)| !same(*x, *y))
        .collect();
    Comparison { config, metrics }
}
