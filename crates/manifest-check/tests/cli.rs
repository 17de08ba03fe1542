//! The real `manifest-check` binary.

use std::fs;

use std::process::Output;

use facepipe_testutil::{fails, ok, stage, stdout_has};
use serde_json::json;

/// Runs the built `manifest-check` with `args` in `dir`, however it ends.
fn check(dir: &std::path::Path, args: &[&str]) -> Output {
    stage("manifest-check", dir).args(args).output().unwrap()
}

#[test]
fn accepts_good_and_names_what_is_wrong() {
    let d = tempfile::tempdir().unwrap();
    fs::write(d.path().join("a.png"), b"x").unwrap();
    let good = json!({"schema": "facepipe/dataset", "schema_version": 1, "classes": [],
                      "items": [{"id": "a", "image": "a.png", "split": "train"}], "provenance": []});
    fs::write(d.path().join("m.json"), good.to_string()).unwrap();
    let out = ok(check(d.path(), &["m.json", "--require", "split"]));
    stdout_has(&out, "1 items (train 1, valid 0)");

    fails(check(d.path(), &["m.json", "--require", "mask"]), "has no `mask`");

    let mut bad = good.clone();
    bad["items"][0]["split"] = json!("test");
    fs::write(d.path().join("bad.json"), bad.to_string()).unwrap();
    fails(check(d.path(), &["bad.json"]), "/items/0/split");

    let mut missing = good.clone();
    missing["items"][0]["image"] = json!("gone.png");
    fs::write(d.path().join("missing.json"), missing.to_string()).unwrap();
    fails(check(d.path(), &["missing.json"]), "gone.png");
    ok(check(d.path(), &["missing.json", "--no-files"]));

    let mut newer = good;
    newer["schema_version"] = json!(3);
    fs::write(d.path().join("newer.json"), newer.to_string()).unwrap();
    fails(check(d.path(), &["newer.json"]), "schema_version");
}

/// Issue 11: every manifest given is checked, and each bad one named, not only the first.
#[test]
fn every_file_is_checked_and_each_bad_one_named() {
    let d = tempfile::tempdir().unwrap();
    let good = json!({"schema": "facepipe/dataset", "schema_version": 1, "classes": [],
                      "items": [{"id": "a"}], "provenance": []});
    fs::write(d.path().join("good.json"), good.to_string()).unwrap();
    fs::write(d.path().join("b1.json"), "{").unwrap();
    fs::write(d.path().join("b2.json"), "[]").unwrap();
    let out = check(d.path(), &["b1.json", "good.json", "b2.json"]);
    stdout_has(&out, "good.json");
    fails(out, "2 manifests failed the check: b1.json, b2.json");
}
