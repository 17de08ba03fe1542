//! Snapshots (insta) of what a user reads: every stage's `--help`, and one manifest written by
//! each stage of the chain on a few demo faces, with what differs between machines redacted
//! (hashes and sizes of inputs, versions, fractional scores: see `facepipe_testutil::redact`).
//! A change to a flag, a help line or a manifest field shows up here as a diff to review:
//! `INSTA_UPDATE=always make test` rewrites the snapshots (tests/snapshots/), `git diff` shows
//! what changed.

use facepipe_testutil::{json, redact, run, stage, train_tiny};

const STAGES: [&str; 11] = [
    "demo-faces",
    "photos",
    "xml-pairs",
    "rgb2class",
    "split",
    "unet-train",
    "unet-eval",
    "cheek-lab",
    "manifest-check",
    "manifest-merge",
    "report",
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
        let text = String::from_utf8(out.stdout).unwrap();
        let bare = flags_without_help(&text);
        assert!(bare.is_empty(), "{name}: no help line for {bare:?}");
        insta::assert_snapshot!(format!("help-{name}"), text);
    }
}

/// The options in a `--help` text (clap's long form: each option on a line of its own, indented
/// 2 or 6, its help below it, indented further; or, in the short form, on the same line after two
/// spaces) that have no help.
fn flags_without_help(text: &str) -> Vec<String> {
    let indent = |l: &str| l.len() - l.trim_start().len();
    // the Options section: up to the next heading (a line that is not indented)
    let lines: Vec<&str> = text
        .lines()
        .skip_while(|l| *l != "Options:")
        .skip(1)
        .take_while(|l| l.is_empty() || indent(l) > 0)
        .collect();
    let is_option = |l: &str| l.trim_start().starts_with('-') && indent(l) <= 6;
    lines
        .iter()
        .enumerate()
        .filter(|(_, l)| is_option(l) && !l.trim().contains("  "))
        .filter(|(i, _)| {
            let next = lines.get(i + 1).copied().unwrap_or("");
            next.trim().is_empty() || indent(next) <= 6
        })
        .map(|(_, l)| l.trim().to_string())
        .collect()
}

#[test]
fn a_flag_without_help_is_found() {
    let text = "Options:\n  -i, --input <FILE>\n          Input manifest\n\n      --quiet\n\n  -v\n  -h, --help\n          Print help\n";
    assert_eq!(flags_without_help(text), ["--quiet", "-v"]);
    let text = "Options:\n  -i, --input <FILE>\n          Input manifest\n\n      --force\n          Replace\n";
    assert!(flags_without_help(text).is_empty());
    let short = "Options:\n  -o, --output <FILE>  Output manifest\n      --force\n  -h, --help           Print help\n";
    assert_eq!(flags_without_help(short), ["--force"]);
    let example = "Options:\n  -h, --help  Print help\n\nExamples:\n  stage -i x\n  --epochs 4\n";
    assert!(flags_without_help(example).is_empty());
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
    train_tiny(dir, "split.json", "model");
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
