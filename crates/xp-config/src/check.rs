//! Turns a TOML document into a valid [`ExperimentConfig`], or into the list of **every** problem
//! with it: unknown keys, wrong types and missing keys (checked against the JSON Schema), values
//! serde rejects (such as a bad device), and range and file checks (garde).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

use garde::Validate;
use serde_json::{Map, Value};
use toml_edit::{Item, TableLike};

use crate::convert::describe;
use crate::model::{DATA_FILE_KEYS, RUN_NAME_KEY};
use crate::schema::{self, enum_values, is_required, properties, type_name, types};
use crate::{ExperimentConfig, Location, Violation};

/// What is known about where the values of a document came from.
pub(crate) struct Origin<'a> {
    /// Name shown in messages (the path as the user gave it).
    pub name: String,
    /// The document as parsed, with spans; `None` when it was not read from text.
    pub spanned: Option<&'a toml_edit::Document<String>>,
    /// `key.path` -> the override text that set it.
    pub overrides: &'a BTreeMap<String, String>,
    /// Folder against which relative paths from the text are resolved.
    pub base_dir: &'a Path,
    /// Whether the data files must exist (not for a config a run saved: see `from_saved_toml`).
    pub data_files: bool,
}

impl Origin<'_> {
    /// Where the value (or, with `key`, the key) at `path` was written.
    pub fn locate(&self, path: &str, key: bool) -> Option<Location> {
        if let Some(text) = self.overrides.get(path) {
            return Some(Location::Override(text.clone()));
        }
        let doc = self.spanned?;
        let mut span = doc.as_table().span();
        let mut table: &dyn TableLike = doc.as_table();
        for part in path.split('.') {
            let Some((k, item)) = table.get_key_value(part) else {
                break;
            };
            span = if key {
                k.span()
            } else {
                item.span().or(k.span())
            };
            match item.as_table_like() {
                Some(t) => table = t,
                None => break,
            }
        }
        let (line, column) = line_column(doc.raw(), span?.start);
        Some(Location::File {
            file: self.name.clone(),
            line,
            column,
        })
    }

    fn base_for(&self, path: &str) -> PathBuf {
        if self.overrides.contains_key(path) {
            std::env::current_dir().unwrap_or_default()
        } else {
            self.base_dir.to_path_buf()
        }
    }
}

struct Checker<'a> {
    schema: Value,
    origin: &'a Origin<'a>,
    violations: Vec<Violation>,
    /// Paths already reported: later stages stay quiet about them and what lies below.
    reported: BTreeSet<String>,
}

/// Checks `root` against the config's rules and builds the typed config.
pub(crate) fn check(
    root: &dyn TableLike,
    origin: &Origin<'_>,
) -> Result<ExperimentConfig, Vec<Violation>> {
    let mut checker = Checker {
        schema: schema::json_schema(),
        origin,
        violations: Vec::new(),
        reported: BTreeSet::new(),
    };
    let schema = checker.schema.clone();
    let mut value = Value::Object(checker.table(root, &schema, ""));
    checker.resolve_paths(&mut value, &schema, "");
    let config = checker.deserialize(value.clone(), &schema);
    if let Some(config) = &config {
        checker.validate(config, &value, &schema);
    }
    match config {
        Some(config) if checker.violations.is_empty() => Ok(config),
        _ => {
            let mut v = checker.violations;
            v.sort_by(|a, b| a.location.cmp(&b.location).then(a.path.cmp(&b.path)));
            Err(v)
        }
    }
}

impl Checker<'_> {
    fn report(&mut self, path: &str, message: String, at_key: bool) {
        if self.is_reported(path) {
            return;
        }
        let location = self.origin.locate(path, at_key);
        self.violations.push(Violation {
            path: path.to_owned(),
            message,
            location,
        });
        self.reported.insert(path.to_owned());
    }

    fn is_reported(&self, path: &str) -> bool {
        self.reported
            .iter()
            .any(|p| path == p || path.starts_with(&format!("{p}.")))
    }

    /// Structural check of one table: unknown keys, missing keys, types. Returns the cleaned
    /// table: bad values dropped (so defaults apply), missing required values filled with a
    /// placeholder (already reported, so nothing downstream reports it again).
    fn table(&mut self, table: &dyn TableLike, node: &Value, prefix: &str) -> Map<String, Value> {
        let props = properties(node).cloned().unwrap_or_default();
        let mut out = Map::new();
        for (key, item) in table.iter() {
            let path = schema::join(prefix, key);
            match props.get(key) {
                None => {
                    let hint = schema::suggest(&self.schema, prefix, key);
                    self.report(&path, format!("unknown key{hint}"), true);
                }
                Some(child) => {
                    if let Some(v) = self.item(item, child, &path) {
                        out.insert(key.to_owned(), v);
                    }
                }
            }
        }
        for (key, child) in &props {
            if is_required(node, key) && !out.contains_key(key) && !table.contains_key(key) {
                let path = schema::join(prefix, key);
                let example = child
                    .get("examples")
                    .and_then(|e| e.get(0))
                    .map(|e| format!(", e.g. `{key} = {}`", schema::toml_literal(e)))
                    .unwrap_or_default();
                let what = if properties(child).is_some() {
                    format!("missing required table [{path}]")
                } else {
                    format!("missing required key ({}){example}", type_name(child))
                };
                // Point at the table that should hold it.
                let location = self.origin.locate(prefix, false);
                if !self.is_reported(&path) {
                    self.violations.push(Violation {
                        path: path.clone(),
                        message: what,
                        location,
                    });
                    self.reported.insert(path.clone());
                }
            }
            if !out.contains_key(key) && is_required(node, key) {
                out.insert(key.clone(), placeholder(child));
            }
        }
        out
    }

    fn item(&mut self, item: &Item, node: &Value, path: &str) -> Option<Value> {
        let expected = types(node);
        if properties(node).is_some() {
            return match item.as_table_like() {
                Some(t) => Some(Value::Object(self.table(t, node, path))),
                None => {
                    let msg = format!("expected a table, got {}", describe(item));
                    self.report(path, msg, false);
                    Some(placeholder(node))
                }
            };
        }
        let value = item.as_value();
        let wrong = |this: &mut Self| {
            let msg = format!("expected {}, got {}", type_name(node), describe(item));
            this.report(path, msg, false);
            None
        };
        let Some(value) = value else {
            return wrong(self);
        };
        match value {
            toml_edit::Value::String(s) if expected.contains(&"string") => {
                let s = s.value();
                if let Some(allowed) = enum_values(node)
                    && !allowed.contains(&s.as_str())
                {
                    let msg = format!(
                        "expected one of {}, got \"{s}\"",
                        schema::quoted_list(&allowed)
                    );
                    self.report(path, msg, false);
                    return None;
                }
                Some(Value::String(s.clone()))
            }
            toml_edit::Value::Integer(i) if expected.contains(&"integer") => {
                // Checked here, not left to serde: a negative or huge integer would otherwise
                // read "invalid value: integer `-1`, expected u32".
                let i = *i.value();
                let (lo, hi) = integer_bounds(node);
                let message = if i < lo {
                    format!("must be at least {lo}, got {i}")
                } else if i > hi {
                    format!("must be at most {hi}, got {i}")
                } else {
                    return Some(Value::from(i));
                };
                self.report(path, message, false);
                None
            }
            toml_edit::Value::Integer(i) if expected.contains(&"number") => {
                Some(Value::from(*i.value() as f64))
            }
            toml_edit::Value::Float(f) if expected.contains(&"number") => {
                let f = *f.value();
                match serde_json::Number::from_f64(f) {
                    Some(n) => Some(Value::Number(n)),
                    None => {
                        self.report(path, format!("must be a finite number, got {f}"), false);
                        None
                    }
                }
            }
            toml_edit::Value::Boolean(b) if expected.contains(&"boolean") => {
                Some(Value::Bool(*b.value()))
            }
            _ => wrong(self),
        }
    }

    /// Makes relative paths (schema format `path`) absolute, against the folder of the file
    /// they were written in, or the working directory for overrides.
    fn resolve_paths(&self, value: &mut Value, node: &Value, prefix: &str) {
        let Some(props) = properties(node) else {
            return;
        };
        let Some(map) = value.as_object_mut() else {
            return;
        };
        for (key, child) in props {
            let path = schema::join(prefix, key);
            let Some(v) = map.get_mut(key) else { continue };
            if child.get("format").and_then(Value::as_str) == Some("path") {
                if let Value::String(s) = v
                    && !s.is_empty()
                {
                    let resolved = normalize(&self.origin.base_for(&path).join(&*s));
                    *s = resolved.to_string_lossy().into_owned();
                }
            } else {
                self.resolve_paths(v, child, &path);
            }
        }
    }

    /// serde, reporting each rejected value and retrying without it until the rest is accepted.
    fn deserialize(&mut self, mut value: Value, schema: &Value) -> Option<ExperimentConfig> {
        for _ in 0..64 {
            match serde_path_to_error::deserialize::<_, ExperimentConfig>(&value) {
                Ok(config) => return Some(config),
                Err(err) => {
                    let path = err.path().to_string();
                    let message = err.inner().to_string();
                    if path.is_empty() || path == "." {
                        self.report("", message, false);
                        return None;
                    }
                    self.report(&path, message, false);
                    if !drop_rejected(&mut value, schema, &path) {
                        return None;
                    }
                }
            }
        }
        None
    }

    fn validate(&mut self, config: &ExperimentConfig, value: &Value, schema: &Value) {
        let Err(report) = Validate::validate(config) else {
            return;
        };
        for (path, error) in report.iter() {
            let path = path.to_string();
            // A saved config's run exists: its data may have moved, and its directory was named
            // (perhaps before today's rules for `name`), so neither is checked again.
            if !self.origin.data_files
                && (DATA_FILE_KEYS.contains(&path.as_str()) || path == RUN_NAME_KEY)
            {
                continue;
            }
            let node = schema::node(schema, &path);
            let actual = path.split('.').try_fold(value, |v, k| v.get(k));
            let message = range_message(node, actual).unwrap_or_else(|| error.message().to_owned());
            self.report(&path, message, false);
        }
    }
}

/// The integers a key accepts: its schema's `minimum` and `maximum`, within what its Rust type
/// (the schema's `format`, e.g. `uint32`) holds.
fn integer_bounds(node: &Value) -> (i64, i64) {
    let (mut lo, mut hi) = match node.get("format").and_then(Value::as_str) {
        Some("uint8") => (0, u8::MAX.into()),
        Some("uint16") => (0, u16::MAX.into()),
        Some("uint32") => (0, u32::MAX.into()),
        Some("uint64" | "uint") => (0, i64::MAX),
        Some("int8") => (i8::MIN.into(), i8::MAX.into()),
        Some("int16") => (i16::MIN.into(), i16::MAX.into()),
        Some("int32") => (i32::MIN.into(), i32::MAX.into()),
        _ => (i64::MIN, i64::MAX),
    };
    if let Some(min) = node.get("minimum").and_then(Value::as_i64) {
        lo = lo.max(min);
    }
    if let Some(max) = node.get("maximum").and_then(Value::as_i64) {
        hi = hi.min(max);
    }
    (lo, hi)
}

/// `must be at most 512, got 1024` from the schema's bounds, where the rule was a range.
fn range_message(node: Option<&Value>, actual: Option<&Value>) -> Option<String> {
    let (node, actual) = (node?, actual?);
    if let Value::String(s) = actual {
        let bound = |key| node.get(key).and_then(Value::as_u64).map(|b| b as usize);
        if bound("minLength").is_some_and(|min| s.chars().count() < min) {
            return Some("must not be empty".to_owned());
        }
        // garde measures in bytes.
        return bound("maxLength")
            .filter(|&max| s.len() > max)
            .map(|max| format!("must be at most {max} bytes long, got {}", s.len()));
    }
    let v = actual.as_f64()?;
    let lo = node.get("minimum");
    let hi = node.get("maximum");
    if let Some(lo) = lo.filter(|lo| lo.as_f64().is_some_and(|lo| v < lo)) {
        return Some(format!("must be at least {lo}, got {actual}"));
    }
    if let Some(hi) = hi.filter(|hi| hi.as_f64().is_some_and(|hi| v > hi)) {
        return Some(format!("must be at most {hi}, got {actual}"));
    }
    None
}

/// Removes the value serde rejected at `path` (so its default applies) or, for a required key,
/// puts a placeholder there. `false` when that changes nothing, so retrying would loop.
fn drop_rejected(value: &mut Value, schema: &Value, path: &str) -> bool {
    let (parent, last) = path.rsplit_once('.').unwrap_or(("", path));
    let parent_node = if parent.is_empty() {
        Some(schema)
    } else {
        schema::node(schema, parent)
    };
    let slot = if parent.is_empty() {
        value.as_object_mut()
    } else {
        parent
            .split('.')
            .try_fold(value, |v, k| v.get_mut(k))
            .and_then(Value::as_object_mut)
    };
    let Some(slot) = slot else { return false };
    let required = parent_node.is_some_and(|p| is_required(p, last));
    match schema::node(schema, path) {
        Some(node) if required => {
            let p = placeholder(node);
            slot.insert(last.to_owned(), p.clone()) != Some(p)
        }
        _ => slot.remove(last).is_some(),
    }
}

/// A value of the right shape for a key that is missing or wrong and already reported.
fn placeholder(node: &Value) -> Value {
    if let Some(props) = properties(node) {
        let map = props
            .iter()
            .filter(|(k, _)| is_required(node, k))
            .map(|(k, child)| (k.clone(), placeholder(child)))
            .collect();
        return Value::Object(map);
    }
    if let Some(first) = enum_values(node).and_then(|e| e.first().copied()) {
        return Value::String(first.to_owned());
    }
    match types(node).first().copied() {
        Some("integer") | Some("number") => node.get("minimum").cloned().unwrap_or(Value::from(0)),
        Some("boolean") => Value::Bool(false),
        _ => Value::String(String::new()),
    }
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
pub(crate) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// `a/b/../c` -> `a/c`, without touching the file system; absolute when `path` is.
pub(crate) fn normalize(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut out = PathBuf::new();
    for part in absolute.components() {
        match part {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}
