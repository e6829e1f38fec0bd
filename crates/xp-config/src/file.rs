//! Reading, overriding and writing configs.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use toml_edit::{DocumentMut, TableLike};

use crate::check::{Origin as CheckOrigin, check, line_column, normalize};
use crate::convert::{flatten, json_to_toml, remove_path, set_path};
use crate::provenance::{Origin, Provenance};
use crate::schema::{self, type_name, types};
use crate::{ConfigError, ExperimentConfig, Location, Violation};

/// Folder of the bundled default config; its data paths are relative to it.
fn bundled_config_dir() -> PathBuf {
    normalize(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/configs"))
}

/// Reads a config file, applies `key.path=value` overrides, and validates the result: the seed's
/// `create_config`. With no file, starts from the default config, whose data paths point at the
/// bundled MOSES fixtures.
pub fn create_config(
    path: Option<&Path>,
    overrides: &[impl AsRef<str>],
) -> Result<ExperimentConfig, ConfigError> {
    let (name, text, base_dir, file) = match path {
        Some(path) => {
            if path.is_dir() {
                let inside = path.join("config.toml");
                return Err(ConfigError::Folder {
                    path: path.to_path_buf(),
                    inside: inside.is_file().then_some(inside),
                });
            }
            let bytes = std::fs::read(path).map_err(|error| ConfigError::Io {
                action: "read config",
                path: path.to_path_buf(),
                error,
            })?;
            let text = utf8_text(bytes, path)?;
            let base = normalize(path.parent().unwrap_or(Path::new(".")));
            (
                path.display().to_string(),
                text,
                base,
                Some(normalize(path)),
            )
        }
        None => (
            "<default config>".to_owned(),
            schema::default_toml(),
            bundled_config_dir(),
            None,
        ),
    };
    build(
        name,
        text,
        base_dir,
        file,
        overrides,
        &BTreeMap::new(),
        Checks::ALL_FROM_TEXT,
    )
}

/// The file's bytes as text, or where the first byte that is not UTF-8 is (TOML is UTF-8 only; a
/// file saved as Latin-1 fails here, typically in a comment).
fn utf8_text(bytes: Vec<u8>, path: &Path) -> Result<String, ConfigError> {
    String::from_utf8(bytes).map_err(|error| {
        let good = error.utf8_error().valid_up_to();
        let prefix = String::from_utf8_lossy(&error.as_bytes()[..good]);
        let (line, column) = line_column(&prefix, good);
        ConfigError::Syntax {
            origin: path.display().to_string(),
            line,
            column,
            message: "not UTF-8 text (TOML files must be UTF-8: save it as UTF-8)".to_owned(),
        }
    })
}

/// Parses TOML text as a config; relative paths in it are resolved against `base_dir`.
pub fn from_toml_str(
    text: &str,
    name: &str,
    base_dir: &Path,
) -> Result<ExperimentConfig, ConfigError> {
    from_text(text, name, base_dir, Checks::ALL_FROM_TEXT)
}

/// [`from_toml_str`] for a config a run saved (a checkpoint's): every rule is checked except
/// that the data files exist, since they may have moved or be on another machine by now, and the
/// rules for `name`, which already names the run's directory. Enough to rebuild the run's model
/// and draw from it; training from such a config checks them again.
pub fn from_saved_toml(
    text: &str,
    name: &str,
    base_dir: &Path,
) -> Result<ExperimentConfig, ConfigError> {
    let checks = Checks {
        data_files: false,
        ..Checks::ALL_FROM_TEXT
    };
    from_text(text, name, base_dir, checks)
}

fn from_text(
    text: &str,
    name: &str,
    base_dir: &Path,
    checks: Checks,
) -> Result<ExperimentConfig, ConfigError> {
    let none: [&str; 0] = [];
    build(
        name.to_owned(),
        text.to_owned(),
        normalize(base_dir),
        None,
        &none,
        &BTreeMap::new(),
        checks,
    )
}

/// Which checks [`build`] makes beyond the schema and the ranges.
#[derive(Clone, Copy)]
struct Checks {
    /// The text is the user's, so problems point at its lines.
    from_user_text: bool,
    /// The data files must exist.
    data_files: bool,
}

impl Checks {
    const ALL_FROM_TEXT: Checks = Checks {
        from_user_text: true,
        data_files: true,
    };
    const ALL_FROM_VALUES: Checks = Checks {
        from_user_text: false,
        data_files: true,
    };
}

fn build(
    name: String,
    text: String,
    base_dir: PathBuf,
    file: Option<PathBuf>,
    overrides: &[impl AsRef<str>],
    earlier_overrides: &BTreeMap<String, String>,
    checks: Checks,
) -> Result<ExperimentConfig, ConfigError> {
    let spanned = toml_edit::Document::parse(text.clone()).map_err(|e| syntax(&name, &text, &e))?;
    let mut doc = spanned.clone().into_mut();
    let mut set_by = earlier_overrides.clone();
    let mut bad = Vec::new();
    for text in overrides {
        let text = text.as_ref();
        match parse_override(text) {
            Ok((path, value)) => {
                let parts: Vec<&str> = path.split('.').collect();
                set_path(doc.as_table_mut(), &parts, value);
                set_by.insert(path, text.to_owned());
            }
            Err(v) => bad.push(v),
        }
    }
    let origin = CheckOrigin {
        name,
        // Text we rendered ourselves has no lines worth pointing at.
        spanned: checks.from_user_text.then_some(&spanned),
        overrides: &set_by,
        base_dir: &base_dir,
        data_files: checks.data_files,
    };
    let result = check(doc.as_table(), &origin);
    let mut config = match result {
        Ok(config) if bad.is_empty() => config,
        Ok(_) => return Err(ConfigError::Invalid(bad)),
        Err(mut v) => {
            bad.append(&mut v);
            return Err(ConfigError::Invalid(bad));
        }
    };
    let loaded = serde_json::to_value(&config).expect("a config always serialises");
    config.provenance = Provenance(Some(Arc::new(Origin {
        file,
        base_dir,
        text,
        loaded,
        overrides: set_by,
    })));
    Ok(config)
}

fn syntax(name: &str, text: &str, err: &toml_edit::TomlError) -> ConfigError {
    let (line, column) = line_column(text, err.span().map_or(0, |s| s.start));
    let message = err.message().trim().replace('\n', "; ");
    ConfigError::Syntax {
        origin: name.to_owned(),
        line,
        column,
        message,
    }
}

/// `key.path=value` -> the key path and the value, typed by the schema: `model.model_type=gnn` is
/// a string, `training.epochs=5` an integer. Strings may be written bare or quoted.
fn parse_override(text: &str) -> Result<(String, toml_edit::Value), Violation> {
    let fail = |path: &str, message: String| Violation {
        path: path.to_owned(),
        message,
        location: Some(Location::Override(text.to_owned())),
    };
    let Some((path, raw)) = text.split_once('=') else {
        return Err(fail(
            text,
            "an override must look like `key.path=value`".to_owned(),
        ));
    };
    let (path, raw) = (path.trim(), raw.trim());
    if path.is_empty() {
        return Err(fail(
            path,
            "no key before `=`; an override must look like `key.path=value`".to_owned(),
        ));
    }
    if path.split('.').any(|part| part.trim().is_empty()) {
        return Err(fail(
            path,
            "a key path with an empty part; write the keys joined by single dots, as \
             `training.epochs`"
                .to_owned(),
        ));
    }
    let schema = schema::json_schema();
    let node = match schema::node(&schema, path) {
        Some(node) if schema::properties(node).is_none() => node,
        Some(_) => {
            return Err(fail(
                path,
                "is a table; set one of its keys, e.g. `{path}.KEY=VALUE`".replace("{path}", path),
            ));
        }
        None => {
            // Name the first key of the path that does not exist.
            let parts: Vec<&str> = path.split('.').collect();
            let mut known = 0;
            while known < parts.len() && schema::node(&schema, &parts[..=known].join(".")).is_some()
            {
                known += 1;
            }
            let prefix = parts[..known].join(".");
            let bad = parts[..=known.min(parts.len() - 1)].join(".");
            let hint = schema::suggest(&schema, &prefix, parts[known.min(parts.len() - 1)]);
            return Err(fail(path, format!("unknown key `{bad}`{hint}")));
        }
    };
    let parsed = raw.parse::<toml_edit::Value>().ok();
    let wants_string = types(node).contains(&"string");
    let value = match parsed {
        Some(v @ toml_edit::Value::String(_)) => v,
        Some(v) if !wants_string => v,
        _ if wants_string => raw.into(),
        _ => {
            return Err(fail(
                path,
                format!("expected {}, got `{raw}`", type_name(node)),
            ));
        }
    };
    Ok((path.to_owned(), value.decorated(" ", "")))
}

impl ExperimentConfig {
    /// Reads and validates a config file; see [`create_config`].
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        create_config(Some(path.as_ref()), &[] as &[&str])
    }

    /// Sets one key from `key.path=value`, typed by the schema, and re-validates the whole
    /// config; on error the config is unchanged. A relative path value is taken relative to the
    /// working directory.
    pub fn apply_override(&mut self, text: &str) -> Result<(), ConfigError> {
        self.apply_overrides(&[text])
    }

    /// [`apply_override`](Self::apply_override) for several at once; all errors are reported.
    pub fn apply_overrides(&mut self, overrides: &[impl AsRef<str>]) -> Result<(), ConfigError> {
        let text = self.values_toml();
        let origin = self.provenance.0.clone();
        let earlier = origin
            .as_ref()
            .map(|o| o.overrides.clone())
            .unwrap_or_default();
        let base = std::env::current_dir().unwrap_or_default();
        let mut updated = build(
            "<config>".to_owned(),
            text,
            base,
            None,
            overrides,
            &earlier,
            Checks::ALL_FROM_VALUES,
        )?;
        if let Some(origin) = origin {
            let set_by = updated.provenance.0.as_ref().map(|o| o.overrides.clone());
            updated.provenance = Provenance(Some(Arc::new(Origin {
                file: origin.file.clone(),
                base_dir: origin.base_dir.clone(),
                text: origin.text.clone(),
                loaded: origin.loaded.clone(),
                overrides: set_by.unwrap_or_default(),
            })));
        }
        *self = updated;
        Ok(())
    }

    /// Deep-merges a TOML table into the config (the seed's `_deep_update`): every key present in
    /// `update` replaces the config's value, nested tables merge key by key.
    pub fn merge_toml(&mut self, update: &str) -> Result<(), ConfigError> {
        let doc = toml_edit::Document::parse(update.to_owned())
            .map_err(|e| syntax("<merged TOML>", update, &e))?;
        let mut pairs = Vec::new();
        flatten(doc.as_table(), "", &mut pairs);
        let overrides: Vec<String> = pairs
            .iter()
            .map(|(k, v)| format!("{k}={}", v.clone().decorated("", "")))
            .collect();
        self.apply_overrides(&overrides)
    }

    /// Checks every rule again (ranges, files exist). Configs from [`create_config`] already
    /// passed; use this after editing fields in code.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let text = self.values_toml();
        let base = std::env::current_dir().unwrap_or_default();
        let none: [&str; 0] = [];
        build(
            "<config>".to_owned(),
            text,
            base,
            None,
            &none,
            &BTreeMap::new(),
            Checks::ALL_FROM_VALUES,
        )
        .map(|_| ())
    }

    /// The config as TOML, data paths absolute. For a config read from a file, that file's
    /// text with its comments and key order, changing only the values that changed; otherwise
    /// the commented default template with this config's values.
    pub fn to_toml_string(&self) -> String {
        self.render(None)
    }

    /// Writes the config to `path` atomically (a temporary file in the same folder, flushed to
    /// disk, then renamed over `path`). A config read from a file keeps that file's comments and
    /// key order; only changed values are rewritten, and relative data paths stay relative when
    /// saved into the same folder (absolute otherwise).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), ConfigError> {
        let path = path.as_ref();
        let text = self.render(Some(path));
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let io = |action, error| ConfigError::Io {
            action,
            path: path.to_path_buf(),
            error,
        };
        let mut tmp =
            replacement_beside(dir, path).map_err(|e| io("create a temporary file beside", e))?;
        tmp.write_all(text.as_bytes()).map_err(|e| io("write", e))?;
        tmp.as_file().sync_all().map_err(|e| io("flush", e))?;
        tmp.persist(path).map_err(|e| io("replace", e.error))?;
        Ok(())
    }

    /// Plain TOML of the values, no template: the input of re-validation.
    fn values_toml(&self) -> String {
        let value = serde_json::to_value(self).expect("a config always serialises");
        let mut doc = DocumentMut::new();
        for (path, _, _) in schema::leaves(&schema::json_schema()) {
            let parts: Vec<&str> = path.split('.').collect();
            let v = parts.iter().try_fold(&value, |v, k| v.get(*k));
            if let Some(v) = v.and_then(json_to_toml) {
                set_path(doc.as_table_mut(), &parts, v);
            }
        }
        doc.to_string()
    }

    fn render(&self, target: Option<&Path>) -> String {
        let origin = self.provenance.0.as_ref();
        let template = origin.map_or_else(schema::default_toml, |o| o.text.clone());
        let mut doc: DocumentMut = template.parse().expect("template was parsed before");
        let value = serde_json::to_value(self).expect("a config always serialises");
        let schema = schema::json_schema();
        // Relative paths in the original text stay valid only in the same folder.
        let same_dir = match (origin, target) {
            (Some(o), Some(t)) => normalize(t.parent().unwrap_or(Path::new("."))) == o.base_dir,
            (Some(_), None) => false,
            (None, _) => false,
        };
        for (path, node, _) in schema::leaves(&schema) {
            let parts: Vec<&str> = path.split('.').collect();
            let new = parts.iter().try_fold(&value, |v, k| v.get(*k));
            let old = origin.and_then(|o| parts.iter().try_fold(&o.loaded, |v, k| v.get(*k)));
            let is_path = node.get("format").and_then(|f| f.as_str()) == Some("path");
            let in_text = origin.is_some_and(|o| !o.overrides.contains_key(&path));
            if origin.is_some() && new == old && in_text && (!is_path || same_dir) {
                continue;
            }
            match new.and_then(json_to_toml) {
                Some(v) => set_path(
                    doc.as_table_mut() as &mut dyn TableLike,
                    &parts,
                    v.decorated(" ", ""),
                ),
                None => remove_path(doc.as_table_mut(), &parts),
            }
        }
        doc.to_string()
    }
}

/// The temporary file that replaces `path`, in `dir`, with the permissions a plain
/// `File::create` would give (0666 less the umask), or those of the file it replaces:
/// tempfile's own 0600 would hide a run's config from the rest of a team.
fn replacement_beside(dir: &Path, path: &Path) -> std::io::Result<tempfile::NamedTempFile> {
    let mut builder = tempfile::Builder::new();
    #[cfg(unix)]
    builder.permissions(match std::fs::metadata(path) {
        Ok(existing) => existing.permissions(),
        Err(_) => std::os::unix::fs::PermissionsExt::from_mode(0o666),
    });
    builder.tempfile_in(dir)
}
