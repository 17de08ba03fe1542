//! The JSON Schema files under `schemas/` are generated from the Rust types. This test fails
//! when they are stale; `make schemas` (UPDATE_SCHEMAS=1) rewrites them.

use std::path::PathBuf;

use facepipe_core::manifest::{json_schema, palette_json_schema};

fn check(name: &str, schema: serde_json::Value) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../schemas")
        .join(name);
    let mut want = serde_json::to_string_pretty(&schema).unwrap();
    want.push('\n');
    if std::env::var_os("UPDATE_SCHEMAS").is_some() {
        std::fs::write(&path, &want).unwrap();
        return;
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "{} is stale or missing: run `make schemas` and commit the result",
        path.display()
    );
}

#[test]
fn dataset_schema_is_current() {
    check("dataset.schema.json", json_schema());
}

#[test]
fn palette_schema_is_current() {
    check("palette.schema.json", palette_json_schema());
}
