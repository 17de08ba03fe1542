//! Every JSON Schema under `schemas/` is generated from the types every writer and reader
//! uses: the dataset manifest's and the palette's (facepipe-core) and the published formats'
//! (this crate), checked here in one place. This test fails when one is stale; `make schemas`
//! (UPDATE_SCHEMAS=1) rewrites them.
#![cfg(feature = "schema")]

use std::path::PathBuf;

use facepipe_formats::{cheeks, eval, model};

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
    check("dataset.schema.json", facepipe_core::manifest::json_schema());
}

#[test]
fn palette_schema_is_current() {
    check("palette.schema.json", facepipe_core::manifest::palette_json_schema());
}

#[test]
fn model_schema_is_current() {
    check(
        "model.schema.json",
        facepipe_formats::json_schema::<model::ModelInfo>(facepipe_formats::tag::MODEL),
    );
}

#[test]
fn eval_schema_is_current() {
    check(
        "eval.schema.json",
        facepipe_formats::json_schema::<eval::EvalFile>(facepipe_formats::tag::EVAL),
    );
}

#[test]
fn cheek_lab_schema_is_current() {
    check(
        "cheek-lab.schema.json",
        facepipe_formats::json_schema::<cheeks::Report>(facepipe_formats::tag::CHEEK_LAB),
    );
}
