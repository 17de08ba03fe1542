//! The real `split` binary.

use std::fs;
use std::process::{Command, Output};
use std::time::Duration;

use facepipe_testutil::{bin, fails, ok, output_within, run_with_stdin, stage, usage_error};
use serde_json::{Value, json};

fn manifest(n: usize) -> Value {
    let items: Vec<Value> = (0..n)
        .map(|i| json!({"id": format!("s/{i:03}"), "image": format!("img/{i}.png"), "group": format!("p{}", i / 5), "x": i}))
        .collect();
    json!({"schema": "facepipe/dataset", "schema_version": 1, "classes": [], "items": items, "provenance": []})
}

/// Runs the built `split` with `args` and the manifest `stdin` on its stdin, however it ends.
fn split(args: &[&str], stdin: &Value) -> Output {
    run_with_stdin(Command::new(bin("split")).args(args), stdin.to_string())
}

fn sides(m: &Value) -> Vec<String> {
    m["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["split"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn exact_valid_count_seeded_and_carried_through() {
    let out = ok(split(&["-i", "-", "-o", "-"], &manifest(40))).stdout;
    let m: Value = serde_json::from_slice(&out).unwrap();
    let s = sides(&m);
    assert_eq!(s.iter().filter(|x| *x == "valid").count(), 14); // floor(0.35 * 40)
    assert_eq!(m["items"][3]["x"], 3);
    assert_eq!(m["items"][3]["image"], "img/3.png");
    let p = &m["provenance"][0];
    assert_eq!(
        (p["params"]["seed"].as_u64(), p["params"]["valid_pct"].as_f64()),
        (Some(2020), Some(0.35))
    );
    assert_eq!(p["summary"]["valid"], 14);

    let again = ok(split(&["-i", "-", "-o", "-"], &manifest(40))).stdout;
    assert_eq!(out, again, "same seed, same bytes");
    let other = ok(split(&["-i", "-", "-o", "-", "--seed", "1"], &manifest(40))).stdout;
    assert_ne!(sides(&m), sides(&serde_json::from_slice(&other).unwrap()));
}

#[test]
fn groups_stay_on_one_side() {
    let out = ok(split(&["--group-by", "group", "--valid-pct", "0.3"], &manifest(40))).stdout;
    let m: Value = serde_json::from_slice(&out).unwrap();
    let s = sides(&m);
    for g in 0..8 {
        assert!(
            s[g * 5..g * 5 + 5].iter().all(|x| *x == s[g * 5]),
            "group {g} split: {s:?}"
        );
    }
    assert_eq!(s.iter().filter(|x| *x == "valid").count(), 10); // floor(0.3*40)=12 → two whole groups fit
    fails(split(&["--group-by", "subject"], &manifest(5)), "no field \"subject\"");
}

#[test]
fn bad_inputs() {
    // usage errors exit 2, like every other flag clap refuses
    for bad in ["1.0", "1.5", "-0.1", "NaN"] {
        usage_error(split(&[&format!("--valid-pct={bad}")], &manifest(5)), "--valid-pct");
    }
    usage_error(split(&["--valid-pct", "abc"], &manifest(5)), "--valid-pct");
    fails(split(&[], &manifest(0)), "no items");
    let mut m = manifest(3);
    m["schema_version"] = json!(2);
    fails(split(&[], &m), "newer");
    let d = tempfile::tempdir().unwrap();
    fs::write(d.path().join("m.json"), manifest(3).to_string()).unwrap();
    let out = stage("split", d.path())
        .args(["-i", "m.json", "-o", "missing-dir/s.json"])
        .output()
        .unwrap();
    fails(out, "missing-dir");
}

/// Issue 11: `-o /dev/stdout` into a pipe is written through (it hung: the stage read the
/// existing output first), temporary files a killed run left beside the output are swept, and
/// a second run on an output another run holds is refused.
#[cfg(unix)]
#[test]
fn special_outputs_temp_files_and_locks() {
    let d = tempfile::tempdir().unwrap();
    let input = d.path().join("in.json");
    std::fs::write(&input, manifest(6).to_string()).unwrap();
    let run = |out: &str| {
        let mut c = stage("split", d.path());
        c.args(["-i", "in.json", "-o", out]);
        output_within(&mut c, Duration::from_secs(60))
    };
    let a = ok(run("/dev/stdout"));
    let v: serde_json::Value = serde_json::from_slice(&a.stdout).unwrap();
    assert_eq!(v["items"].as_array().unwrap().len(), 6);

    let stale = d.path().join(".out.json.facepipe-tmp-Ab12cd");
    std::fs::write(&stale, "half a manifest").unwrap();
    ok(run("out.json"));
    assert!(!stale.exists(), "a killed run's temporary file is swept");
    let names: Vec<String> = std::fs::read_dir(d.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n.contains("facepipe-tmp")), "{names:?}");

    let held = {
        let mut o = facepipe_core::out::Outputs::new("test", false);
        o.lock(d.path().join("out.json").as_path()).unwrap();
        o
    };
    fails(run("out.json"), "being written by another run");
    drop(held);
}
