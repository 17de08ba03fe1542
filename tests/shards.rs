//! `--shard K/N` and `manifest-merge`: the shards of rgb2class, run one after another or side by
//! side into one mask folder, merge into exactly what one unsharded run writes (manifest bytes
//! apart from the merge's own provenance step, and every mask); a missing, repeated or foreign
//! shard is an error; sharded and unsharded runs on one folder exclude each other.

use std::fs;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use facepipe_testutil::{fails, files, json, ok, run, stage, train_tiny};

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
    // an item deleted from a shard by hand (its step still counts it)
    let mut fewer_items = json(&dir.join(&names[2]));
    fewer_items["items"].as_array_mut().unwrap().pop();
    fs::write(dir.join("cut.json"), serde_json::to_vec(&fewer_items).unwrap()).unwrap();
    let mut with_cut: Vec<&str> = names.iter().map(String::as_str).collect();
    with_cut[2] = "cut.json";
    fails(merge(&with_cut), "cut.json holds");
    fails(merge(&with_cut), "items were added or removed after the stage ran");
    // a shard of another dataset folder: the roots named in words (it printed Some("/…"))
    let mut moved = json(&dir.join(&names[3]));
    moved["root"] = "elsewhere".into();
    fs::write(dir.join("moved.json"), serde_json::to_vec(&moved).unwrap()).unwrap();
    let mut with_moved: Vec<&str> = names.iter().map(String::as_str).collect();
    with_moved[3] = "moved.json";
    let out = merge(&with_moved);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("Some("), "no Debug text");
    fails(out, "elsewhere, ");
    // a fraction among the counts (a part's score) cannot be added up
    let with_share: Vec<String> = names
        .iter()
        .map(|f| {
            let mut m = json(&dir.join(f));
            let step = m["provenance"].as_array_mut().unwrap().last_mut().unwrap();
            step["summary"]["share"] = serde_json::json!(0.25);
            let out = format!("share.{f}");
            fs::write(dir.join(&out), serde_json::to_vec(&m).unwrap()).unwrap();
            out
        })
        .collect();
    fails(
        merge(&with_share.iter().map(String::as_str).collect::<Vec<_>>()),
        "count share is 0.25",
    );
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

/// The first place two JSON values differ, as a path (for a readable failure).
fn first_difference(a: &Value, b: &Value, at: String) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => x
            .iter()
            .find_map(|(k, v)| first_difference(v, y.get(k).unwrap_or(&Value::Null), format!("{at}.{k}")))
            .or_else(|| y.keys().find(|k| !x.contains_key(*k)).map(|k| format!("{at}.{k}"))),
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (v, w))| first_difference(v, w, format!("{at}[{i}]"))),
        // fractions to 1e-6 (relative): a tile's probabilities depend, in the last bits, on
        // the batch the network saw it in, and the loss with them; whole numbers exactly
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            ((x - y).abs() > 1e-6 * x.abs().max(y.abs()).max(1e-12)).then(|| format!("{at}: {x} ≠ {y}"))
        }
        _ => (a != b).then(|| format!("{at}: {a} ≠ {b}")),
    }
}

#[test]
fn eval_and_cheek_shards_merge_into_the_unsharded_run() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    pairs(dir, 12, 6);
    run(
        dir,
        "rgb2class",
        &["-i", "pairs.json", "-o", "masks.json", "--out-dir", "masks"],
    );
    run(dir, "split", &["-i", "masks.json", "-o", "split.json"]);
    train_tiny(dir, "split.json", "model");
    let eval = |out: &str, out_dir: &str, shard: Option<String>| {
        let mut a = vec![
            "--model",
            "model",
            "-i",
            "split.json",
            "-o",
            out,
            "--out-dir",
            out_dir,
            "-q",
        ];
        let s = shard.unwrap_or_default();
        if !s.is_empty() {
            a.extend(["--shard", &s]);
        }
        run(dir, "unet-eval", &a)
    };
    eval("preds.json", "eval", None);
    let cheeks = |input: &str, out: &str, report: &str, shard: Option<String>| {
        let mut a = vec![
            "-i",
            input,
            "-o",
            out,
            "--report",
            report,
            "--mask-field",
            "mask",
            "--reference",
            "data/participants.csv",
            "-q",
        ];
        let s = shard.unwrap_or_default();
        if !s.is_empty() {
            a.extend(["--shard", &s]);
        }
        run(dir, "cheek-lab", &a)
    };
    cheeks("split.json", "cheeks.csv", "cheeks.json", None);
    let whole_eval = json(&dir.join("eval/eval.json"));
    let whole_preds = json(&dir.join("preds.json"));
    let mut whole_cheeks = json(&dir.join("cheeks.json"));
    // where each run wrote its CSV (and QC pictures) differs; the merge names its own CSV
    let whole_csv = whole_cheeks.as_object_mut().unwrap().remove("csv");
    // relative to the report's folder, so a moved run folder still reports
    assert_eq!(whole_csv.unwrap(), "cheeks.csv");
    whole_cheeks.as_object_mut().unwrap().remove("qc_dir");
    assert!(
        whole_cheeks["agreement"]["cheeks_compared"].as_u64().unwrap() > 10,
        "the truth masks give cheeks to compare"
    );
    let read = |p: &str| fs::read(dir.join(p)).unwrap();

    for n in [1usize, 3, 7] {
        let (mut dirs, mut parts, mut reports) = (vec![], vec![], vec![]);
        for k in 0..n {
            let (o, od, r) = (format!("p{n}.{k}.json"), format!("e{n}.{k}"), format!("c{n}.{k}.json"));
            eval(&o, &od, Some(format!("{k}/{n}")));
            cheeks("split.json", &format!("c{n}.{k}.csv"), &r, Some(format!("{k}/{n}")));
            dirs.push(od);
            parts.push(o);
            reports.push(r);
        }
        // merged in reverse order of the parts
        let (dirs, parts, reports): (Vec<&str>, Vec<&str>, Vec<&str>) = (
            dirs.iter().rev().map(String::as_str).collect(),
            parts.iter().rev().map(String::as_str).collect(),
            reports.iter().rev().map(String::as_str).collect(),
        );
        let merged_dir = format!("e{n}");
        run(
            dir,
            "unet-eval",
            &[
                &["--out-dir", &merged_dir, "--expect", "split.json", "--merge"][..],
                &dirs,
            ]
            .concat(),
        );
        let merged_preds = format!("p{n}.json");
        run(
            dir,
            "manifest-merge",
            &[&["-o", &merged_preds, "--expect", "split.json"][..], &parts].concat(),
        );
        let (csv, report) = (format!("c{n}.csv"), format!("c{n}.json"));
        run(
            dir,
            "cheek-lab",
            &[
                &["-o", &csv, "--report", &report, "--expect", "split.json", "--merge"][..],
                &reports,
            ]
            .concat(),
        );

        // eval: every score of every group, and the tables and the confusion picture
        let e = json(&dir.join(&merged_dir).join("eval.json"));
        for k in [
            "model",
            "manifest",
            "settings",
            "classes",
            "items",
            "labelled",
            "unlabelled",
            "headline",
        ] {
            assert_eq!(e[k], whole_eval[k], "N = {n}: eval.json {k}");
        }
        if let Some(at) = first_difference(&e["groups"], &whole_eval["groups"], String::new()) {
            panic!("N = {n}: scores differ at {at}");
        }
        assert_eq!(e["shards"].as_array().unwrap().len(), n);
        for f in ["per_image.csv", "confusion.csv", "confusion.png"] {
            assert!(
                read(&format!("{merged_dir}/{f}")) == read(&format!("eval/{f}")),
                "N = {n}: {f} differs"
            );
        }
        // the predictions manifest: the same items, masks (in the shards' folders) and
        // history; the unet-eval step without the whole run's scores, then the merge's
        let mut p = json(&dir.join(&merged_preds));
        let mut w = whole_preds.clone();
        let (pi, wi) = (p["items"].as_array().unwrap(), w["items"].as_array().unwrap());
        assert_eq!(pi.len(), wi.len());
        for (a, b) in pi.iter().zip(wi) {
            assert_eq!(a["id"], b["id"], "N = {n}: item order");
            assert!(
                read(a["pred_mask"].as_str().unwrap()) == read(b["pred_mask"].as_str().unwrap()),
                "N = {n}: the predicted mask of {} differs",
                a["id"]
            );
        }
        for m in [&mut p, &mut w] {
            for it in m["items"].as_array_mut().unwrap() {
                it.as_object_mut().unwrap().remove("pred_mask");
            }
        }
        let steps = p["provenance"].as_array_mut().unwrap();
        assert_eq!(steps.pop().unwrap()["stage"], "manifest-merge");
        let (ps, ws) = (
            steps.pop().unwrap(),
            w["provenance"].as_array_mut().unwrap().pop().unwrap(),
        );
        assert_eq!((&ps["params"], &ps["inputs"]), (&ws["params"], &ws["inputs"]));
        for (k, v) in ps["summary"].as_object().unwrap() {
            assert_eq!(v, &ws["summary"][k], "N = {n}: count {k}");
        }
        assert_eq!(p, w, "N = {n}: predictions manifest");

        // cheeks: the CSV byte for byte, the report with the agreement recomputed on all rows
        assert!(read(&csv) == read("cheeks.csv"), "N = {n}: cheek CSV differs");
        let mut r = json(&dir.join(&report));
        assert_eq!(r["shards"].as_array().unwrap().len(), n);
        r.as_object_mut().unwrap().remove("shards");
        let merged_csv = r.as_object_mut().unwrap().remove("csv").unwrap();
        assert_eq!(merged_csv, csv.as_str(), "the merged report names its CSV");
        assert!(r.get("qc_dir").is_none(), "a merge writes no QC folder");
        assert_eq!(r, whole_cheeks, "N = {n}: cheek report");
        assert!(read(&format!("c{n}_scatter.png")) == read("cheeks_scatter.png"));
    }

    // refusals: a missing or repeated shard, a whole run, a merge into a shard's folder
    let fails_with = |name: &str, args: &[&str], want: &str| fails(stage(name, dir).args(args).output().unwrap(), want);
    fails_with(
        "unet-eval",
        &["--out-dir", "m", "--merge", "e3.0", "e3.1"],
        "shard 2/3 is missing",
    );
    fails_with(
        "unet-eval",
        &["--out-dir", "m", "--merge", "e3.0", "e3.0", "e3.1"],
        "are both shard 0/3",
    );
    fails_with(
        "unet-eval",
        &["--out-dir", "m", "--merge", "eval"],
        "was not run with --shard",
    );
    fails_with(
        "unet-eval",
        &["--out-dir", "e3.0/x", "--merge", "e3.0", "e3.1", "e3.2"],
        "inside one another",
    );
    fails_with(
        "unet-eval",
        &["--out-dir", "m", "--merge", "e3.0", "e7.1", "e3.2"],
        "share N",
    );
    assert!(!dir.join("m").exists() && !dir.join("e3.0/x").exists());
    fails_with(
        "cheek-lab",
        &["-o", "m.csv", "--merge", "c3.0.json", "c3.2.json"],
        "shard 1/3 is missing",
    );
    fails_with(
        "cheek-lab",
        &["-o", "m.csv", "--merge", "c3.0.json", "c3.0.json"],
        "are both shard 0/3",
    );
    fails_with(
        "cheek-lab",
        &["-o", "m.csv", "--merge", "cheeks.json"],
        "was not written with --shard",
    );
    fails_with(
        "cheek-lab",
        &[
            "-i",
            "split.json",
            "-o",
            "m.csv",
            "--shard",
            "0/2",
            "--mask-field",
            "mask",
        ],
        "--shard needs --report FILE",
    );
    assert!(!dir.join("m.csv").exists());
}
