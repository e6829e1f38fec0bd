//! Snapshots of what users read: the schema, the generated docs, and the error text of bad configs.

use std::path::Path;

#[test]
fn json_schema() {
    insta::assert_json_snapshot!(xp_config::schema::json_schema());
}

#[test]
fn default_toml() {
    insta::assert_snapshot!(xp_config::schema::default_toml());
}

#[test]
fn key_reference() {
    insta::assert_snapshot!(xp_config::schema::markdown_reference());
}

/// Every file in tests/bad is a config a new user might write; each must fail (never panic) with
/// every one of its problems named by key path and line.
#[test]
fn bad_configs() {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = here.join("../..").canonicalize().unwrap();
    let tests = here.join("tests");
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(&regex_escape(&tests.display().to_string()), "[tests]");
    settings.add_filter(&regex_escape(&root.display().to_string()), "[root]");
    settings.bind(|| {
        insta::glob!("bad/*.toml", |path| {
            let err = xp_config::create_config(Some(path), &[] as &[&str])
                .expect_err("every bad config must be rejected");
            insta::assert_snapshot!(err.to_string());
        });
    });
}

fn regex_escape(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let special = "\\.+*?()|[]{}^$".contains(c);
            special
                .then_some('\\')
                .into_iter()
                .chain(std::iter::once(c))
        })
        .collect()
}
