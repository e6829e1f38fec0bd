//! The JSON Schema of [`ExperimentConfig`], and the documents generated from it: the key
//! reference (`docs/config.md`) and the commented default config (`fixtures/configs/default.toml`).

use serde_json::Value;

use crate::ExperimentConfig;

/// Path of the generated schema, relative to the workspace root.
pub const SCHEMA_PATH: &str = "docs/config.schema.json";
/// Path of the generated key reference, relative to the workspace root.
pub const REFERENCE_PATH: &str = "docs/config.md";
/// Path of the generated default config, relative to the workspace root.
pub const DEFAULT_CONFIG_PATH: &str = "fixtures/configs/default.toml";

/// The JSON Schema (draft 2020-12) of a config file, every sub-table inlined so that tools and
/// this crate's schema walker can walk it without resolving references.
pub fn json_schema() -> Value {
    let generator = schemars::generate::SchemaSettings::draft2020_12()
        .with(|s| s.inline_subschemas = true)
        .for_deserialize()
        .into_generator();
    let mut schema = generator
        .into_root_schema_for::<ExperimentConfig>()
        .to_value();
    if let Some(object) = schema.as_object_mut() {
        object.insert(
            "$id".into(),
            "https://github.com/xp-ml/xp/docs/config.schema.json".into(),
        );
    }
    schema
}

/// `prefix.key`, or `key` at the top.
pub(crate) fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

/// The schema node of the key at `path` (dotted), if the schema has such a key.
pub(crate) fn node<'a>(schema: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .try_fold(schema, |node, key| properties(node)?.get(key))
}

pub(crate) fn properties(node: &Value) -> Option<&serde_json::Map<String, Value>> {
    node.get("properties")?.as_object()
}

pub(crate) fn is_required(parent: &Value, key: &str) -> bool {
    parent
        .get("required")
        .and_then(Value::as_array)
        .is_some_and(|r| r.iter().any(|k| k == key))
}

/// The JSON types a node accepts, `null` left out (an optional key is simply omitted in TOML).
pub(crate) fn types(node: &Value) -> Vec<&str> {
    match node.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .filter(|t| *t != "null")
            .collect(),
        _ => Vec::new(),
    }
}

pub(crate) fn enum_values(node: &Value) -> Option<Vec<&str>> {
    let values = node.get("enum")?.as_array()?;
    Some(values.iter().filter_map(Value::as_str).collect())
}

/// Human name of the type a node expects, as TOML users know it.
pub(crate) fn type_name(node: &Value) -> String {
    if let Some(values) = enum_values(node) {
        return format!("one of {}", quoted_list(&values));
    }
    let names: Vec<&str> = types(node)
        .into_iter()
        .map(|t| match t {
            "integer" if node.get("minimum").and_then(Value::as_f64) == Some(0.0) => {
                "non-negative integer"
            }
            "integer" => "integer",
            "number" => "number",
            "string" if node.get("format").and_then(Value::as_str) == Some("path") => "path",
            "string" => "string",
            "boolean" => "boolean (true or false)",
            "object" => "table",
            "array" => "array",
            other => other,
        })
        .collect();
    names.join(" or ")
}

pub(crate) fn quoted_list(values: &[&str]) -> String {
    values
        .iter()
        .map(|v| format!("\"{v}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `; did you mean ...?` for an unknown `key` in the table at `prefix`: the same key in another
/// table (`batch_size` at the top -> `training.batch_size`), else the closest key of this table,
/// else the list of this table's keys.
pub(crate) fn suggest(schema: &Value, prefix: &str, key: &str) -> String {
    let elsewhere = leaves(schema).into_iter().map(|(p, _, _)| p).find(|p| {
        let (parent, last) = p.rsplit_once('.').unwrap_or(("", p));
        last == key && parent != prefix
    });
    if let Some(p) = elsewhere {
        return format!("; did you mean `{p}`?");
    }
    let table = if prefix.is_empty() {
        Some(schema)
    } else {
        node(schema, prefix)
    };
    let keys: Vec<&str> = table
        .and_then(properties)
        .map(|p| p.keys().map(String::as_str).collect())
        .unwrap_or_default();
    let best = keys
        .iter()
        .map(|k| (strsim::jaro_winkler(key, k), k))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0));
    match best {
        Some((_, k)) => format!("; did you mean `{}`?", join(prefix, k)),
        None => format!("; expected one of {}", keys.join(", ")),
    }
}

fn description(node: &Value) -> &str {
    node.get("description")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// Every leaf key of the schema as `(dotted path, node, required)`, in declaration order.
pub(crate) fn leaves(schema: &Value) -> Vec<(String, &Value, bool)> {
    fn walk<'a>(node: &'a Value, prefix: &str, out: &mut Vec<(String, &'a Value, bool)>) {
        let Some(props) = properties(node) else {
            return;
        };
        for (key, child) in props {
            let path = join(prefix, key);
            if properties(child).is_some() {
                walk(child, &path, out);
            } else {
                out.push((path, child, is_required(node, key)));
            }
        }
    }
    let mut out = Vec::new();
    walk(schema, "", &mut out);
    out
}

fn range_text(node: &Value) -> String {
    let bound = |k: &str| node.get(k).map(Value::to_string);
    match (bound("minimum"), bound("maximum")) {
        (Some(lo), Some(hi)) => format!("{lo} ..= {hi}"),
        (Some(lo), None) => format!(">= {lo}"),
        (None, Some(hi)) => format!("<= {hi}"),
        (None, None) => match (node.get("minLength"), node.get("maxLength")) {
            (Some(lo), Some(hi)) => format!("length {lo} ..= {hi} bytes"),
            (Some(lo), None) => format!("length >= {lo}"),
            (None, Some(hi)) => format!("length <= {hi} bytes"),
            (None, None) => String::new(),
        },
    }
}

/// `docs/config.md`: every key with its type, range, default and meaning.
pub fn markdown_reference() -> String {
    let schema = json_schema();
    let mut out = String::from(
        "<!-- Generated by `cargo xtask codegen` from crates/xp-config/src/model.rs; do not edit. -->\n\
         # Config reference\n\n\
         Every key of an experiment config. Required keys have no default. Relative data paths are \
         resolved against the folder of the config file; `--set key.path=value` overrides any key.\n\
         JSON Schema: [`config.schema.json`](config.schema.json).\n\n\
         | key | type | range | default | meaning |\n\
         |---|---|---|---|---|\n",
    );
    for (path, node, required) in leaves(&schema) {
        let default = match node.get("default") {
            Some(v) => format!("`{}`", toml_literal(v)),
            None if required => "required".to_owned(),
            None => "unset".to_owned(),
        };
        let range = match range_text(node) {
            r if r.is_empty() => String::new(),
            r => format!("`{r}`"),
        };
        out.push_str(&format!(
            "| `{path}` | {} | {range} | {default} | {} |\n",
            type_name(node),
            description(node).replace('\n', " ").replace('|', "\\|"),
        ));
    }
    out
}

/// The value as TOML writes it.
pub(crate) fn toml_literal(value: &Value) -> String {
    match crate::convert::json_to_toml(value) {
        Some(v) => v.to_string().trim().to_owned(),
        None => "null".to_owned(),
    }
}

/// `fixtures/configs/default.toml`: every key with its default (or example, for required keys),
/// each under a comment with its meaning and range, headed by a `#:schema` line for editors.
pub fn default_toml() -> String {
    let schema = json_schema();
    let mut out = String::from(
        "#:schema ../../docs/config.schema.json\n\
         # The default experiment: a SMILES language model on the bundled MOSES subset.\n\
         # Generated by `cargo xtask codegen` from crates/xp-config/src/model.rs; do not edit.\n\
         # Copy it to start your own; `docs/config.md` describes every key.\n",
    );
    let Some(props) = properties(&schema) else {
        return out;
    };
    let write_table = |out: &mut String, node: &Value, header: Option<&str>| {
        if let Some(h) = header {
            out.push_str(&format!(
                "\n# {}\n[{h}]\n",
                description(node).replace('\n', "\n# ")
            ));
        }
        for (key, child) in properties(node).into_iter().flatten() {
            if properties(child).is_some() {
                continue;
            }
            let value = child
                .get("default")
                .or_else(|| child.get("examples").and_then(|e| e.get(0)));
            let range = range_text(child);
            out.push('\n');
            out.push_str(&format!("# {}", description(child).replace('\n', "\n# ")));
            if !range.is_empty() {
                out.push_str(&format!(" ({range})"));
            }
            out.push('\n');
            match value {
                Some(v) => out.push_str(&format!("{key} = {}\n", toml_literal(v))),
                None => out.push_str(&format!("# {key} = ...\n")),
            }
        }
    };
    write_table(&mut out, &schema, None);
    for (key, child) in props {
        if properties(child).is_some() {
            write_table(&mut out, child, Some(key));
        }
    }
    out
}
