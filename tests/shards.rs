//! `--shard K/N` and `manifest-merge`: the shards of rgb2class, run one after another or side by
//! side into one mask folder, merge into exactly what one unsharded run writes (manifest bytes
//! apart from the merge's own provenance step, and every mask); a missing, repeated or foreign
//! shard is an error; sharded and unsharded runs on one folder exclude each other.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

mod common;
use common::bin_dir;

fn stage(name: &str, dir: &Path) -> Command {
    let mut c = Command::new(bin_dir().join(name));
    c.current_dir(dir);
    c
}

/// rgb2class from `pairs.json` into the mask folder `masks`, writing the manifest `out`, on
/// the part `shard` (`K/N`, `env`…) or, with `None`, on every item.
fn rgb2class(dir: &Path, out: &str, shard: Option<&str>) -> Command {
    let mut c = stage("rgb2class", dir);
    c.args(["-i", "pairs.json", "-o", out, "--out-dir", "masks"]);
    if let Some(s) = shard {
        c.args(["--shard", s]);
    }
    c
}

fn ok(out: Output) -> Output {
    assert!(
        out.status.success(),
        "failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn fails(out: Output, want: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(want), "wanted {want:?} in:\n{err}");
}

fn json(p: &Path) -> Value {
    serde_json::from_slice(&fs::read(p).unwrap()).unwrap()
}

/// Every file below `dir`, relative path → bytes (lock files left out).
fn files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = vec![];
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else if !p.file_name().unwrap().to_string_lossy().ends_with(".lock") {
                out.push((p.strip_prefix(dir).unwrap().to_path_buf(), fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// `count` demo faces of 48² in `dir/data` and their pairs manifest `dir/pairs.json`.
fn pairs(dir: &Path, count: usize, seed: u64) {
    ok(stage("demo-faces", dir)
        .args(["--out", "data", "--size", "48", "-q"])
        .args(["--count", &count.to_string(), "--seed", &seed.to_string()])
        .output()
        .unwrap());
    ok(stage("xml-pairs", dir)
        .args(["--xml", "data/training.xml", "-o", "pairs.json"])
        .output()
        .unwrap());
}

fn shard_names(n: usize) -> Vec<String> {
    (0..n).map(|k| format!("part.{k}.json")).collect()
}

#[test]
fn merged_shards_equal_the_unsharded_run() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    pairs(dir, 12, 3);
    ok(rgb2class(dir, "full.json", None).output().unwrap());
    let full = json(&dir.join("full.json"));
    let masks = files(&dir.join("masks"));
    assert_eq!(masks.len(), 12);

    for n in [1usize, 3, 7] {
        fs::remove_dir_all(dir.join("masks")).unwrap();
        let names = shard_names(n);
        if n == 3 {
            // side by side, as array tasks run: they share the mask folder
            let children: Vec<_> = (0..n)
                .map(|k| rgb2class(dir, &names[k], Some(&format!("{k}/{n}"))).spawn().unwrap())
                .collect();
            for c in children {
                assert!(c.wait_with_output().unwrap().status.success());
            }
        } else {
            for (k, name) in names.iter().enumerate() {
                ok(rgb2class(dir, name, Some(&format!("{k}/{n}"))).output().unwrap());
            }
        }
        let sizes: Vec<usize> = names
            .iter()
            .map(|f| json(&dir.join(f))["items"].as_array().unwrap().len())
            .collect();
        assert_eq!(sizes.iter().sum::<usize>(), 12, "N = {n}: {sizes:?}");
        assert!(
            sizes.iter().all(|&s| s == 12 / n || s == 12usize.div_ceil(n)),
            "{sizes:?}"
        );
        // merged in any order of the shard files
        let mut args: Vec<String> = names.iter().rev().cloned().collect();
        args.extend([
            "-o".into(),
            "merged.json".into(),
            "--expect".into(),
            "pairs.json".into(),
        ]);
        ok(stage("manifest-merge", dir).args(&args).output().unwrap());
        let mut merged = json(&dir.join("merged.json"));
        let steps = merged["provenance"].as_array_mut().unwrap();
        let me = steps.pop().unwrap();
        assert_eq!(me["stage"], "manifest-merge");
        assert_eq!(
            me["inputs"].as_array().unwrap().len(),
            n + 1,
            "each shard and the input"
        );
        assert_eq!(merged, full, "N = {n}: merged ≠ unsharded");
        assert_eq!(files(&dir.join("masks")), masks, "N = {n}: the masks differ");
        // a shard's own step says which it is
        assert_eq!(
            json(&dir.join(&names[0]))["provenance"]
                .as_array()
                .unwrap()
                .last()
                .unwrap()["params"]["shard"],
            format!("0/{n}")
        );
    }

    // what is refused, naming the problem (the shards of 7 are on disk now)
    let names = shard_names(7);
    let merge = |files: &[&str]| {
        stage("manifest-merge", dir)
            .args(files)
            .args(["-o", "bad.json"])
            .output()
            .unwrap()
    };
    fails(
        merge(&names[..6].iter().map(String::as_str).collect::<Vec<_>>()),
        "shard 6/7 is missing",
    );
    fails(merge(&[&names[0], &names[0]]), "are both shard 0/7");
    fails(merge(&["pairs.json"]), "is not a shard");
    // an item in two shards
    let mut dup = json(&dir.join(&names[1]));
    let stolen = json(&dir.join(&names[0]))["items"][0].clone();
    dup["items"].as_array_mut().unwrap().push(stolen.clone());
    fs::write(dir.join("dup.json"), serde_json::to_vec(&dup).unwrap()).unwrap();
    let mut with_dup: Vec<&str> = names.iter().map(String::as_str).collect();
    with_dup[1] = "dup.json";
    fails(merge(&with_dup), &format!("item {} is in both", stolen["id"]));
    // --expect: the parts must hold exactly the input's items
    let mut fewer = json(&dir.join("pairs.json"));
    fewer["items"].as_array_mut().unwrap().pop();
    fs::write(dir.join("fewer.json"), serde_json::to_vec(&fewer).unwrap()).unwrap();
    let all: Vec<&str> = names.iter().map(String::as_str).collect();
    let out = stage("manifest-merge", dir)
        .args(&all)
        .args(["-o", "bad.json", "--expect", "fewer.json"])
        .output()
        .unwrap();
    fails(out, "1 shard items are not in it");
    assert!(!dir.join("bad.json").exists(), "no output after an error");
    // the merged manifest may not replace one of its inputs
    let before = fs::read(dir.join(&names[0])).unwrap();
    fails(
        stage("manifest-merge", dir)
            .args(&all)
            .args(["-o", &names[0]])
            .output()
            .unwrap(),
        "is also an input",
    );
    assert_eq!(fs::read(dir.join(&names[0])).unwrap(), before);
    // a shard of another run (another N)
    ok(rgb2class(dir, "other.json", Some("0/2")).output().unwrap());
    let mut mixed = all.clone();
    mixed[0] = "other.json";
    fails(merge(&mixed), "shards of one run share N");
    // bad --shard values are bad usage
    let out = rgb2class(dir, "x.json", Some("3/3")).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    let out = rgb2class(dir, "x.json", Some("env"))
        .env_remove("SLURM_ARRAY_TASK_ID")
        .env_remove("JOB_COMPLETION_INDEX")
        .output()
        .unwrap();
    fails(out, "neither SLURM_ARRAY_TASK_ID");
    // from a Slurm array task's environment
    ok(rgb2class(dir, "slurm.json", Some("env"))
        .env("SLURM_ARRAY_TASK_ID", "1")
        .env("SLURM_ARRAY_TASK_COUNT", "7")
        .output()
        .unwrap());
    assert_eq!(
        json(&dir.join("slurm.json"))["items"],
        json(&dir.join(&names[1]))["items"]
    );
}

#[test]
fn sharded_and_unsharded_runs_on_one_folder_exclude_each_other() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    pairs(dir, 3, 4);
    fs::create_dir(dir.join("masks")).unwrap();
    let lock = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(".masks.lock"))
        .unwrap();
    // a shard holds the folder (shared): an unsharded run refuses, another shard goes on
    lock.try_lock_shared().unwrap();
    fails(
        rgb2class(dir, "full.json", None).output().unwrap(),
        "is being written by another run",
    );
    ok(rgb2class(dir, "p0.json", Some("0/2")).output().unwrap());
    // an unsharded run holds it: a shard refuses
    lock.unlock().unwrap();
    lock.try_lock().unwrap();
    fails(
        rgb2class(dir, "p1.json", Some("1/2")).output().unwrap(),
        "is being written by another run",
    );
    assert!(!dir.join("p1.json").exists());
}
