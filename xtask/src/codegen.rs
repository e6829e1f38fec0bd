//! Files generated from the code, so the code stays the one source of truth.

use anyhow::{Context, bail};
use xp_config::schema;

/// Every generated file: path relative to the workspace root, and its fresh contents.
pub fn generated() -> Vec<(&'static str, String)> {
    let mut schema_text =
        serde_json::to_string_pretty(&schema::json_schema()).expect("JSON always serialises");
    schema_text.push('\n');
    vec![
        (schema::SCHEMA_PATH, schema_text),
        (schema::REFERENCE_PATH, schema::markdown_reference()),
        (schema::DEFAULT_CONFIG_PATH, schema::default_toml()),
    ]
}

pub fn run(check: bool) -> anyhow::Result<()> {
    run_in(&crate::root(), check)
}

/// Writes (or, with `check`, compares) every generated file under `root`.
pub fn run_in(root: &std::path::Path, check: bool) -> anyhow::Result<()> {
    let mut stale = Vec::new();
    for (rel, fresh) in generated() {
        let path = root.join(rel);
        let current = std::fs::read_to_string(&path).ok();
        if current.as_deref() == Some(fresh.as_str()) {
            continue;
        }
        if check {
            stale.push(rel);
        } else {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
            }
            std::fs::write(&path, fresh).with_context(|| format!("writing {}", path.display()))?;
            println!("wrote {rel}");
        }
    }
    if !stale.is_empty() {
        bail!(
            "generated files are out of date: {}; run `cargo xtask codegen` and commit them",
            stale.join(", ")
        );
    }
    if check {
        println!("codegen: all generated files are up to date");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_names_stale_and_missing_files_and_codegen_fixes_them() {
        let dir = crate::interrupt::tempdir().unwrap();
        let err = run_in(dir.path(), true).unwrap_err().to_string();
        for (rel, _) in generated() {
            assert!(err.contains(rel), "{rel} missing from: {err}");
        }
        run_in(dir.path(), false).unwrap();
        run_in(dir.path(), true).unwrap();
        let reference = dir.path().join(schema::REFERENCE_PATH);
        std::fs::write(&reference, "edited by hand\n").unwrap();
        let err = run_in(dir.path(), true).unwrap_err().to_string();
        assert!(err.contains(schema::REFERENCE_PATH), "{err}");
        assert!(!err.contains(schema::SCHEMA_PATH), "{err}");
    }
}
