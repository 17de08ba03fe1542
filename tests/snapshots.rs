//! Snapshots (insta) of what a user reads: every stage's `--help`, and one manifest written by
//! each stage of the chain on a few demo faces, with what differs between machines redacted
//! (hashes and sizes of inputs, versions, fractional scores: see `facepipe_testutil::redact`).
//! A change to a flag, a help line or a manifest field shows up here as a diff to review:
//! `INSTA_UPDATE=always make test` rewrites the snapshots (tests/snapshots/), `git diff` shows
//! what changed.

use facepipe_testutil::{json, redact, run, stage};

const STAGES: [&str; 9] = [
    "demo-faces",
    "xml-pairs",
    "rgb2class",
    "split",
    "unet-train",
    "unet-eval",
    "cheek-lab",
    "manifest-check",
    "manifest-merge",
];

#[test]
fn every_stage_help() {
    let d = tempfile::tempdir().unwrap();
    for name in STAGES {
        // a fixed width: clap wraps help to the terminal, or to COLUMNS without one
        let out = stage(name, d.path())
            .arg("--help")
            .env("COLUMNS", "100")
            .output()
            .unwrap();
        assert!(out.status.success(), "{name} --help");
        insta::assert_snapshot!(format!("help-{name}"), String::from_utf8(out.stdout).unwrap());
    }
}

#[test]
fn one_manifest_per_stage() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    run(
        dir,
        "demo-faces",
        &["--out-dir", "data", "--count", "4", "--size", "40", "--seed", "9", "-q"],
    );
    run(dir, "xml-pairs", &["-i", "data/training.xml", "-o", "pairs.json", "-q"]);
    run(
        dir,
        "rgb2class",
        &["-i", "pairs.json", "-o", "masks.json", "--out-dir", "masks", "-q"],
    );
    run(dir, "split", &["-i", "masks.json", "-o", "split.json", "-q"]);
    run(
        dir,
        "unet-train",
        &[
            "-i",
            "split.json",
            "--out-dir",
            "model",
            "--arch",
            "smp",
            "--size",
            "32",
            "--bs",
            "2",
            "--fine-tune-epochs",
            "0",
            "--no-lr-find",
            "--epochs",
            "1",
            "--lr",
            "1e-3",
            "-q",
        ],
    );
    for k in 0..2 {
        let (o, s) = (format!("p.{k}.json"), format!("{k}/2"));
        let od = format!("e.{k}");
        run(
            dir,
            "unet-eval",
            &[
                "--model",
                "model",
                "-i",
                "split.json",
                "-o",
                &o,
                "--out-dir",
                &od,
                "--shard",
                &s,
                "-q",
            ],
        );
    }
    run(
        dir,
        "manifest-merge",
        &[
            "-o",
            "predictions.json",
            "--expect",
            "split.json",
            "p.0.json",
            "p.1.json",
            "-q",
        ],
    );
    for (name, file) in [
        ("xml-pairs", "pairs.json"),
        ("rgb2class", "masks.json"),
        ("split", "split.json"),
        ("unet-eval-shard", "p.0.json"),
        ("manifest-merge", "predictions.json"),
    ] {
        let m = redact(&json(&dir.join(file)));
        insta::assert_snapshot!(format!("manifest-{name}"), serde_json::to_string_pretty(&m).unwrap());
    }
}
