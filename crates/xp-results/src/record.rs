//! One line of the results log, written and read in the seed's format.
//!
//! Python's `json.dumps` writes non-finite floats as the bare tokens `NaN`, `Infinity` and
//! `-Infinity`, and a diverged run's loss is exactly that, so we write and read them too (Python
//! and pandas read them back). Strict JSON is tried first; only a line that fails is re-read with
//! those tokens allowed.

use std::borrow::Cow;
use std::fmt;

use indexmap::IndexMap;
use serde::de::{self, DeserializeSeed, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One finished run: what it was, how it was configured, how it scored, and where its files are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultRecord {
    /// When the result was logged: RFC 3339 with offset (the seed's Python wrote local time
    /// without an offset; such files are read as they are).
    pub timestamp: String,
    pub experiment_name: String,
    /// The run's config, as a JSON object (nested tables stay nested).
    pub config: Map<String, Value>,
    /// Metric name -> value, in the order they were logged. Values may be NaN or infinite.
    #[serde(deserialize_with = "de_metrics")]
    pub metrics: IndexMap<String, f64>,
    /// Artifact name -> path.
    #[serde(default)]
    pub artifacts: IndexMap<String, String>,
}

impl ResultRecord {
    /// The config value at a dotted path, e.g. `model.model_type`.
    pub fn config_value(&self, path: &str) -> Option<&Value> {
        let mut parts = path.split('.');
        let first = self.config.get(parts.next()?)?;
        parts.try_fold(first, |v, k| v.get(k))
    }

    /// The dotted path of every value in the config (`model.model_type`, ...), in file order.
    pub fn config_paths(&self) -> Vec<String> {
        let mut flat = Vec::new();
        flatten(&self.config, "", &mut flat);
        flat.into_iter().map(|(path, _)| path).collect()
    }

    /// The record as one line of the log, newline included.
    pub fn to_line(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        write_line(
            &mut out,
            &self.timestamp,
            &self.experiment_name,
            &self.config,
            self.metrics.iter().map(|(k, v)| (k.as_str(), *v)),
            self.artifacts.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        )
        .expect("a JSON map always serialises");
        out
    }
}

/// Writes one record as a line (newline included) in the seed's field order, straight from the
/// caller's data. Fails only when `config` cannot be serialised or is not a JSON object.
pub(crate) fn write_line<'a>(
    out: &mut Vec<u8>,
    timestamp: &str,
    experiment_name: &str,
    config: &impl Serialize,
    metrics: impl Iterator<Item = (&'a str, f64)>,
    artifacts: impl Iterator<Item = (&'a str, &'a str)>,
) -> Result<(), String> {
    let json = |out: &mut Vec<u8>, v: &dyn erased::Ser| v.write(out);
    out.extend_from_slice(b"{\"timestamp\":");
    json(out, &timestamp);
    out.extend_from_slice(b",\"experiment_name\":");
    json(out, &experiment_name);
    out.extend_from_slice(b",\"config\":");
    let start = out.len();
    serde_json::to_writer(&mut *out, config)
        .map_err(|e| format!("a value that does not serialise: {e}"))?;
    if out.get(start) != Some(&b'{') {
        let got = String::from_utf8_lossy(&out[start..])
            .chars()
            .take(60)
            .collect();
        return Err(got);
    }
    out.extend_from_slice(b",\"metrics\":{");
    for (i, (name, value)) in metrics.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        json(out, &name);
        out.push(b':');
        write_number(out, value);
    }
    out.extend_from_slice(b"},\"artifacts\":{");
    for (i, (name, path)) in artifacts.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        json(out, &name);
        out.push(b':');
        json(out, &path);
    }
    out.extend_from_slice(b"}}\n");
    Ok(())
}

mod erased {
    /// Writes any serialisable value as compact JSON; these never fail for strings and maps.
    pub trait Ser {
        fn write(&self, out: &mut Vec<u8>);
    }
    impl<T: serde::Serialize> Ser for T {
        fn write(&self, out: &mut Vec<u8>) {
            serde_json::to_writer(out, self).expect("strings and JSON maps always serialise");
        }
    }
}

/// A float as Python's `json.dumps` writes it.
fn write_number(out: &mut Vec<u8>, value: f64) {
    if value.is_nan() {
        out.extend_from_slice(b"NaN");
    } else if value.is_infinite() {
        out.extend_from_slice(if value > 0.0 {
            b"Infinity"
        } else {
            b"-Infinity"
        });
    } else {
        serde_json::to_writer(out, &value).expect("finite floats always serialise");
    }
}

/// The top-level fields of a line, found by a structural scan (strings, brackets) that does not
/// validate their contents: queries parse only what they need. Everything a query returns was
/// fully parsed by serde_json first ([`Fields::to_record`]).
pub(crate) struct Fields<'a> {
    line: &'a [u8],
    /// Found by [`Fields::split_fast`]: `config` may then overreach (an unknown key between it
    /// and `metrics`), which its parse notices.
    fast: bool,
    experiment_name: &'a [u8],
    config: &'a [u8],
    metrics: &'a [u8],
}

impl<'a> Fields<'a> {
    /// [`split`](Self::split) without reading the config's bytes, for lines shaped as both we and
    /// the seed write them (`{"timestamp", "experiment_name", "config", "metrics", ...}`): the
    /// start is read forwards, the end backwards. `None` when the line is not plainly so shaped
    /// (including a second `{"timestamp"` in it, as after a torn record): use `split` then. The
    /// config is left unchecked; whoever needs it parses it.
    pub fn split_fast(line: &'a [u8]) -> Option<Self> {
        let mut p = Scanner { bytes: line, at: 0 };
        p.expect(b'{').ok()?;
        p.key(b"\"timestamp\"")?;
        p.value().ok()?;
        p.ws();
        p.expect(b',').ok()?;
        p.key(b"\"experiment_name\"")?;
        let experiment_name = p.string().ok()?;
        p.ws();
        p.expect(b',').ok()?;
        p.key(b"\"config\"")?;
        let config_start = p.at;
        if line.get(config_start) != Some(&b'{') || RECORD_START.find(&line[1..]).is_some() {
            return None;
        }
        // Backwards from the end: `..., "metrics": {...}[, "artifacts": {...}] }`.
        let mut end = trim_end(line, line.len());
        (end > 0 && line[end - 1] == b'}').then_some(())?;
        end -= 1;
        loop {
            let value_end = trim_end(line, end);
            let value_start = value_start(line, value_end)?;
            let colon = trim_end(line, value_start);
            (colon > 0 && line[colon - 1] == b':').then_some(())?;
            let key_end = trim_end(line, colon - 1);
            let key_start = value_start_of_string(line, key_end)?;
            let before = trim_end(line, key_start);
            (before > config_start && line[before - 1] == b',').then_some(())?;
            if &line[key_start..key_end] == b"\"metrics\"" {
                let config_end = trim_end(line, before - 1);
                (line[config_end - 1] == b'}').then_some(())?;
                return Some(Fields {
                    line,
                    fast: true,
                    experiment_name,
                    config: &line[config_start..config_end],
                    metrics: &line[value_start..value_end],
                });
            }
            end = before - 1;
        }
    }

    /// Splits a line into its fields; an error says why it is not a record.
    pub fn split(line: &'a [u8]) -> Result<Self, String> {
        let mut p = Scanner { bytes: line, at: 0 };
        p.ws();
        p.expect(b'{')?;
        let (mut timestamp, mut name, mut config, mut metrics) = (false, None, None, None);
        p.ws();
        if p.peek() == Some(b'}') {
            p.at += 1;
        } else {
            loop {
                p.ws();
                let key = p.string()?;
                p.ws();
                p.expect(b':')?;
                p.ws();
                let value = p.value()?;
                match key {
                    b"\"timestamp\"" => timestamp = true,
                    b"\"experiment_name\"" => name = Some(value),
                    b"\"config\"" => config = Some(value),
                    b"\"metrics\"" => metrics = Some(value),
                    _ => {}
                }
                p.ws();
                match p.next() {
                    Some(b',') => continue,
                    Some(b'}') => break,
                    _ => return Err(p.error("expected `,` or `}` after a field")),
                }
            }
        }
        p.ws();
        if p.at != line.len() {
            return Err(p.error("unexpected text after the record"));
        }
        let missing = |what: &str| format!("not a result: no `{what}` field");
        if !timestamp {
            return Err(missing("timestamp"));
        }
        Ok(Fields {
            line,
            fast: false,
            experiment_name: name.ok_or_else(|| missing("experiment_name"))?,
            config: config.ok_or_else(|| missing("config"))?,
            metrics: metrics.ok_or_else(|| missing("metrics"))?,
        })
    }

    pub fn experiment_name(&self) -> Result<Cow<'a, str>, String> {
        serde_json::from_slice(self.experiment_name).map_err(|e| format!("experiment_name: {e}"))
    }

    /// One metric, without building the whole map. `None` when absent (or `null`).
    pub fn metric(&self, name: &str) -> Result<Option<f64>, String> {
        let lookup = |text: &[u8]| {
            let mut de = serde_json::Deserializer::from_slice(text);
            let v = MetricLookup(name).deserialize(&mut de)?;
            de.end().map(|_| v)
        };
        match lookup(self.metrics) {
            Ok(v) => Ok(v),
            Err(err) => {
                let text = std::str::from_utf8(self.metrics).map_err(|e| e.to_string())?;
                match quote_non_finite(text) {
                    Some(quoted) => lookup(quoted.as_bytes()).map_err(|e| format!("metrics: {e}")),
                    None => Err(format!("metrics: {err}")),
                }
            }
        }
    }

    pub fn config(&self) -> Result<Map<String, Value>, String> {
        match serde_json::from_slice(self.config) {
            Ok(config) => Ok(config),
            Err(_) if self.fast => Fields::split(self.line)?.config(),
            Err(e) => Err(format!("config: {e}")),
        }
    }

    /// The whole line, fully parsed and validated.
    pub fn to_record(&self) -> Result<ResultRecord, String> {
        let text = std::str::from_utf8(self.line).map_err(|e| format!("not UTF-8: {e}"))?;
        match serde_json::from_str::<ResultRecord>(text) {
            Ok(record) => Ok(record),
            Err(err) => match quote_non_finite(text) {
                Some(quoted) => serde_json::from_str(&quoted).map_err(|_| err.to_string()),
                None => Err(err.to_string()),
            },
        }
    }
}

/// Finds where a record starts inside a line (built once: building it costs more than a search).
pub(crate) static RECORD_START: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
    std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"{\"timestamp\""));

/// The end of `line[..end]` without trailing whitespace.
fn trim_end(line: &[u8], mut end: usize) -> usize {
    while end > 0 && matches!(line[end - 1], b' ' | b'\t' | b'\r' | b'\n') {
        end -= 1;
    }
    end
}

/// Start of the string that ends (closing quote included) at `end`.
fn value_start_of_string(line: &[u8], end: usize) -> Option<usize> {
    (end >= 2 && line[end - 1] == b'"').then_some(())?;
    let mut j = end - 1;
    loop {
        j = memchr::memrchr(b'"', &line[..j])?;
        let backslashes = line[..j].iter().rev().take_while(|b| **b == b'\\').count();
        if backslashes % 2 == 0 {
            return Some(j);
        }
    }
}

/// Start of the value that ends at `end`: a string, a balanced object or array, or a scalar.
fn value_start(line: &[u8], end: usize) -> Option<usize> {
    match line.get(end.checked_sub(1)?)? {
        b'"' => value_start_of_string(line, end),
        b'}' | b']' => {
            let mut depth = 0usize;
            let mut j = end;
            while j > 0 {
                j -= 1;
                match line[j] {
                    b'"' => j = value_start_of_string(line, j + 1)?,
                    b'}' | b']' => depth += 1,
                    b'{' | b'[' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(j);
                        }
                    }
                    _ => {}
                }
            }
            None
        }
        _ => {
            let mut j = end;
            while j > 0 && (line[j - 1].is_ascii_alphanumeric() || b"-+.".contains(&line[j - 1])) {
                j -= 1;
            }
            (j < end).then_some(j)
        }
    }
}

/// Finds the extent of JSON values without validating them.
struct Scanner<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Scanner<'a> {
    fn error(&self, what: &str) -> String {
        format!("{what} at column {}", self.at + 1)
    }

    /// `"name":` and the whitespace around it; `None` for any other key.
    fn key(&mut self, name: &[u8]) -> Option<()> {
        self.ws();
        (self.string().ok()? == name).then_some(())?;
        self.ws();
        self.expect(b':').ok()?;
        self.ws();
        Some(())
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek();
        self.at += 1;
        b
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn expect(&mut self, b: u8) -> Result<(), String> {
        if self.peek() == Some(b) {
            self.at += 1;
            Ok(())
        } else {
            Err(self.error(&format!("expected `{}`", b as char)))
        }
    }

    /// A string, quotes included.
    fn string(&mut self) -> Result<&'a [u8], String> {
        let start = self.at;
        self.expect(b'"')?;
        loop {
            match memchr::memchr2(b'"', b'\\', &self.bytes[self.at..]) {
                Some(i) if self.bytes[self.at + i] == b'"' => {
                    self.at += i + 1;
                    return Ok(&self.bytes[start..self.at]);
                }
                Some(i) => self.at = (self.at + i + 2).min(self.bytes.len()),
                None => {
                    self.at = self.bytes.len();
                    return Err(self.error("unterminated string"));
                }
            }
        }
    }

    /// Any value: a string, a balanced object or array, or a bare scalar.
    fn value(&mut self) -> Result<&'a [u8], String> {
        let start = self.at;
        match self.peek() {
            Some(b'"') => {
                self.string()?;
            }
            Some(b'{' | b'[') => {
                // One pass over the bytes: strings are short, so a plain loop beats searching.
                let bytes = self.bytes;
                let (mut depth, mut in_string, mut i) = (0usize, false, self.at);
                loop {
                    let Some(&b) = bytes.get(i) else {
                        self.at = bytes.len();
                        return Err(self.error("unbalanced brackets (a cut line?)"));
                    };
                    if in_string {
                        match b {
                            b'\\' => i += 1,
                            b'"' => in_string = false,
                            _ => {}
                        }
                    } else {
                        match b {
                            b'"' => in_string = true,
                            b'{' | b'[' => depth += 1,
                            b'}' | b']' => {
                                depth -= 1;
                                if depth == 0 {
                                    self.at = i + 1;
                                    break;
                                }
                            }
                            _ => {}
                        }
                    }
                    i += 1;
                }
            }
            Some(b) if b == b'-' || b.is_ascii_alphanumeric() => {
                while self.peek().is_some_and(|b| {
                    b == b'-' || b == b'+' || b == b'.' || b.is_ascii_alphanumeric()
                }) {
                    self.at += 1;
                }
            }
            _ => return Err(self.error("expected a value")),
        }
        Ok(&self.bytes[start..self.at])
    }
}

/// Turns bare `NaN`, `Infinity`, `-Infinity` (outside strings) into the strings `"NaN"`, ...,
/// which the metric reader accepts. `None` when the line has no such token.
fn quote_non_finite(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len() + 8);
    let (mut i, mut last, mut in_string, mut changed) = (0, 0, false, false);
    while i < bytes.len() {
        let b = bytes[i];
        if in_string {
            match b {
                b'\\' => i += 1,
                b'"' => in_string = false,
                _ => {}
            }
        } else if b == b'"' {
            in_string = true;
        } else if let Some(token) = ["-Infinity", "Infinity", "NaN"]
            .into_iter()
            .find(|t| bytes[i..].starts_with(t.as_bytes()))
        {
            out.push_str(&text[last..i]);
            out.push('"');
            out.push_str(token);
            out.push('"');
            i += token.len();
            last = i;
            changed = true;
            continue;
        }
        i += 1;
    }
    out.push_str(&text[last..]);
    changed.then_some(out)
}

/// A metric value: a number, `null` (absent), or one of Python's non-finite tokens.
struct MetricValue(Option<f64>);

impl<'de> Deserialize<'de> for MetricValue {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = MetricValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number, NaN, Infinity or null")
            }
            fn visit_f64<E>(self, v: f64) -> Result<MetricValue, E> {
                Ok(MetricValue(Some(v)))
            }
            fn visit_i64<E>(self, v: i64) -> Result<MetricValue, E> {
                Ok(MetricValue(Some(v as f64)))
            }
            fn visit_u64<E>(self, v: u64) -> Result<MetricValue, E> {
                Ok(MetricValue(Some(v as f64)))
            }
            fn visit_unit<E>(self) -> Result<MetricValue, E> {
                Ok(MetricValue(None))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<MetricValue, E> {
                Ok(MetricValue(Some(if v { 1.0 } else { 0.0 })))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<MetricValue, E> {
                match v {
                    "NaN" => Ok(MetricValue(Some(f64::NAN))),
                    "Infinity" => Ok(MetricValue(Some(f64::INFINITY))),
                    "-Infinity" => Ok(MetricValue(Some(f64::NEG_INFINITY))),
                    _ => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
                }
            }
        }
        d.deserialize_any(V)
    }
}

fn de_metrics<'de, D: de::Deserializer<'de>>(d: D) -> Result<IndexMap<String, f64>, D::Error> {
    let raw: IndexMap<String, MetricValue> = IndexMap::deserialize(d)?;
    Ok(raw
        .into_iter()
        .filter_map(|(k, v)| v.0.map(|v| (k, v)))
        .collect())
}

/// Finds one key of the metrics object without allocating the others.
struct MetricLookup<'n>(&'n str);

impl<'de> DeserializeSeed<'de> for MetricLookup<'_> {
    type Value = Option<f64>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Option<f64>, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for MetricLookup<'_> {
    type Value = Option<f64>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object of metrics")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<f64>, A::Error> {
        let mut found = None;
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            if key == self.0 {
                found = map.next_value::<MetricValue>()?.0;
            } else {
                map.next_value::<de::IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

/// Every value of `map` with its dotted path (an empty object counts as a value).
pub(crate) fn flatten(map: &Map<String, Value>, prefix: &str, out: &mut Vec<(String, Value)>) {
    for (k, v) in map {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            Value::Object(inner) if !inner.is_empty() => flatten(inner, &path, out),
            other => out.push((path, other.clone())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_paths_name_every_leaf_in_file_order() {
        let record: ResultRecord = serde_json::from_str(
            r#"{"timestamp": "t", "experiment_name": "e", "config": {"seed": 1, "model": {"model_type": "vae", "extra": {}}, "tags": ["a"]}, "metrics": {}, "artifacts": {}}"#,
        )
        .unwrap();
        let paths = record.config_paths();
        assert_eq!(paths, ["seed", "model.model_type", "model.extra", "tags"]);
        assert!(paths.iter().all(|p| record.config_value(p).is_some()));
    }

    #[test]
    fn non_finite_tokens_are_quoted_only_outside_strings() {
        let line = r#"{"a":"NaN in \" a string","m":{"x":NaN,"y":-Infinity,"z":Infinity}}"#;
        assert_eq!(
            quote_non_finite(line).unwrap(),
            r#"{"a":"NaN in \" a string","m":{"x":"NaN","y":"-Infinity","z":"Infinity"}}"#
        );
        assert_eq!(quote_non_finite(r#"{"a":"NaN"}"#), None);
    }

    #[test]
    fn lines_round_trip_including_non_finite_metrics() {
        let mut metrics = IndexMap::new();
        metrics.insert("loss".to_owned(), f64::NAN);
        metrics.insert("b\"ad".to_owned(), f64::NEG_INFINITY);
        metrics.insert("acc".to_owned(), 0.1 + 0.2);
        let record = ResultRecord {
            timestamp: "2026-11-27T10:00:00.000001+01:00".to_owned(),
            experiment_name: "e\n1".to_owned(),
            config: serde_json::from_str(r#"{"model":{"hidden_dim":256},"x":"NaN"}"#).unwrap(),
            metrics,
            artifacts: [("best".to_owned(), "/r/best".to_owned())]
                .into_iter()
                .collect(),
        };
        let line = record.to_line();
        assert_eq!(line.iter().filter(|b| **b == b'\n').count(), 1, "one line");
        let fields = Fields::split(&line[..line.len() - 1]).unwrap();
        let back = fields.to_record().unwrap();
        assert!(back.metrics["loss"].is_nan());
        assert_eq!(back.metrics["b\"ad"], f64::NEG_INFINITY);
        assert_eq!(back.metrics["acc"], 0.1 + 0.2);
        assert_eq!(back.config, record.config);
        assert_eq!(back.experiment_name, record.experiment_name);
        assert_eq!(fields.metric("acc").unwrap(), Some(0.1 + 0.2));
        assert!(fields.metric("loss").unwrap().unwrap().is_nan());
        assert_eq!(fields.metric("missing").unwrap(), None);
        assert_eq!(fields.experiment_name().unwrap(), "e\n1");
    }

    #[test]
    fn fast_split_agrees_with_the_full_split() {
        let lines: [&[u8]; 7] = [
            br#"{"timestamp":"t","experiment_name":"a\"b","config":{"x":{"y":[1,"}"]}},"metrics":{"m":1.5,"n":NaN},"artifacts":{"p":"a\\"}}"#,
            br#"{"timestamp": "2026-11-27T21:51:52.595732", "experiment_name": "moses", "config": {"a": 1}, "metrics": {"val_loss": 0.85}, "artifacts": {}}"#,
            br#"{"timestamp":"t","experiment_name":"e","config":{},"metrics":{"m":2}}"#,
            br#"{"timestamp":"t","experiment_name":"e","config":{"k":"},\"metrics\":{"},"metrics":{"m":3},"artifacts":{"x":"{"}}"#,
            br#"{"timestamp":"t","experiment_name":"e","config":{"k":2},"extra":[1,{"a":"]"}],"metrics":{"m":4},"more":null}"#,
            br#"{"timestamp":"t","experiment_name":"e","config":{"k":2},"extra":{"a":"]"},"metrics":{"m":4}}"#,
            br#"  {"timestamp":"t","experiment_name":"e","config":{},"metrics":{"m":5}}"#,
        ];
        for line in lines {
            let full = Fields::split(line).unwrap();
            let text = String::from_utf8_lossy(line);
            match Fields::split_fast(line) {
                Some(fast) => {
                    assert_eq!(
                        fast.experiment_name().unwrap(),
                        full.experiment_name().unwrap(),
                        "{text}"
                    );
                    assert_eq!(fast.config().unwrap(), full.config().unwrap(), "{text}");
                    assert_eq!(fast.metrics, full.metrics, "{text}");
                }
                None => assert!(
                    line.starts_with(b" ") || text.contains("extra"),
                    "fast path refused {text}"
                ),
            }
        }
        // Lines the fast path must leave to the full split.
        for line in [
            &br#"{"timestamp":"t","experiment_name":"torn","config":{"a"{"timestamp":"u","experiment_name":"e","config":{},"metrics":{"m":1}}"#[..],
            br#"{"experiment_name":"e","timestamp":"t","config":{},"metrics":{"m":1}}"#,
            br#"{"timestamp":"t","experiment_name":"e","config":{},"metrics":{"m":1}"#,
            br#"{"timestamp":"t","experiment_name":"e","config":[],"metrics":{"m":1}}"#,
        ] {
            assert!(Fields::split_fast(line).is_none(), "{}", String::from_utf8_lossy(line));
        }
    }

    #[test]
    fn structural_split_rejects_what_is_not_a_record() {
        for (line, why) in [
            (&b"not json"[..], "expected `{`"),
            (
                b"{\"timestamp\": 1, \"experiment_name\": \"a\", \"config\": {\"x\": [1, 2}",
                "unbalanced",
            ),
            (
                b"{\"timestamp\": \"t\", \"experiment_name\": \"unterminated",
                "unterminated string",
            ),
            (b"{\"timestamp\": \"t\"} trailing", "after the record"),
            (
                b"{\"timestamp\": \"t\", \"experiment_name\": \"a\", \"config\": {}}",
                "no `metrics`",
            ),
            (
                b"{\"experiment_name\": \"a\", \"config\": {}, \"metrics\": {}}",
                "no `timestamp`",
            ),
            (b"{\"timestamp\": \"t\\", "unterminated string"),
            (b"{\"timestamp\": }", "expected a value"),
        ] {
            let err = Fields::split(line)
                .err()
                .unwrap_or_else(|| panic!("accepted {:?}", String::from_utf8_lossy(line)));
            assert!(
                err.contains(why),
                "{:?}: {err}",
                String::from_utf8_lossy(line)
            );
        }
    }
}
