//! Conversions between TOML items and JSON values (the form serde and the schema work on).

use serde_json::Value;
use toml_edit::{Item, Table, TableLike};

/// A JSON value as a TOML value; `None` for `null` (TOML has no null: the key is left out).
pub(crate) fn json_to_toml(value: &Value) -> Option<toml_edit::Value> {
    Some(match value {
        Value::Null => return None,
        Value::Bool(b) => (*b).into(),
        Value::Number(n) => match n.as_i64() {
            Some(i) => i.into(),
            None => n.as_f64()?.into(),
        },
        Value::String(s) => s.as_str().into(),
        Value::Array(items) => {
            let mut array = toml_edit::Array::new();
            for item in items.iter().filter_map(json_to_toml) {
                array.push(item);
            }
            array.into()
        }
        Value::Object(map) => {
            let mut table = toml_edit::InlineTable::new();
            for (k, v) in map {
                if let Some(v) = json_to_toml(v) {
                    table.insert(k, v);
                }
            }
            table.into()
        }
    })
}

/// Short description of a TOML item for error messages: `string "abc"`, `integer 3`, `table`.
pub(crate) fn describe(item: &Item) -> String {
    match item {
        Item::None => "nothing".to_owned(),
        Item::Table(_) => "a table".to_owned(),
        Item::ArrayOfTables(_) => "an array of tables".to_owned(),
        Item::Value(v) => {
            let text = v.clone().decorated("", "").to_string();
            let kind = match v {
                toml_edit::Value::String(_) => "string",
                toml_edit::Value::Integer(_) => "integer",
                toml_edit::Value::Float(_) => "float",
                toml_edit::Value::Boolean(_) => "boolean",
                toml_edit::Value::Datetime(_) => "date-time",
                toml_edit::Value::Array(_) => "array",
                toml_edit::Value::InlineTable(_) => return "an inline table".to_owned(),
            };
            format!("{kind} {text}")
        }
    }
}

/// Sets `path` (dotted) in `table` to `value`, creating missing tables, keeping the decor
/// (comments, spacing) of a value it replaces.
pub(crate) fn set_path(table: &mut dyn TableLike, path: &[&str], value: toml_edit::Value) {
    let (last, parents) = path.split_last().expect("a key path is never empty");
    let mut current = table;
    for key in parents {
        if current.get(key).and_then(Item::as_table_like).is_none() {
            let mut new = Table::new();
            new.set_implicit(true);
            current.insert(key, Item::Table(new));
        }
        current = current
            .get_mut(key)
            .and_then(Item::as_table_like_mut)
            .expect("inserted just above");
    }
    let mut value = value;
    if let Some(old) = current.get(last).and_then(Item::as_value) {
        *value.decor_mut() = old.decor().clone();
    }
    current.insert(last, Item::Value(value));
}

/// Removes `path` (dotted) from `table`, if present.
pub(crate) fn remove_path(table: &mut dyn TableLike, path: &[&str]) {
    let (last, parents) = path.split_last().expect("a key path is never empty");
    let mut current = table;
    for key in parents {
        match current.get_mut(key).and_then(Item::as_table_like_mut) {
            Some(next) => current = next,
            None => return,
        }
    }
    current.remove(last);
}

/// Every leaf value of a TOML table as `(dotted path, value)`, for merging one table into a config.
pub(crate) fn flatten(
    table: &dyn TableLike,
    prefix: &str,
    out: &mut Vec<(String, toml_edit::Value)>,
) {
    for (key, item) in table.iter() {
        let path = crate::schema::join(prefix, key);
        match item.as_table_like() {
            Some(sub) => flatten(sub, &path, out),
            None => {
                if let Some(v) = item.as_value() {
                    out.push((path, v.clone()));
                }
            }
        }
    }
}
