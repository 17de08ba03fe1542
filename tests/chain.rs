//! End to end: the data chain on a few generated faces, the manifests against the committed
//! schemas, unknown fields carried through every stage, the Python stage swap, and `make all`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use facepipe_testutil::bin_dir;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // stdout (make's commands) then stderr (the stages' logs and summaries)
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn stage(name: &str, dir: &Path) -> Command {
    let mut c = Command::new(bin_dir().join(name));
    c.current_dir(dir);
    c
}

fn read(p: &Path) -> Value {
    serde_json::from_slice(&fs::read(p).unwrap()).unwrap()
}

fn assert_schema_valid(p: &Path) {
    assert_valid_as(p, "dataset");
}

/// `p` validates against `schemas/{name}.schema.json`.
fn assert_valid_as(p: &Path, name: &str) {
    let schema = read(&repo().join(format!("schemas/{name}.schema.json")));
    let v = jsonschema::validator_for(&schema).unwrap();
    let doc = read(p);
    let errs: Vec<String> = v
        .iter_errors(&doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errs.is_empty(), "{} does not validate: {errs:?}", p.display());
}

/// demo-faces → xml-pairs → rgb2class → split in `dir`, with a custom field injected after
/// xml-pairs. Returns the split manifest path.
fn chain(dir: &Path) -> PathBuf {
    run(stage("demo-faces", dir).args(["--out", "data", "--count", "8", "--size", "72x64", "--seed", "5", "-q"]));
    run(stage("xml-pairs", dir).args(["--xml", "data/training.xml", "-o", "pairs.json"]));
    let mut pairs = read(&dir.join("pairs.json"));
    pairs["study"] = "pilot".into();
    pairs["items"][0]["rater"] = "A".into();
    fs::write(dir.join("pairs.json"), serde_json::to_vec_pretty(&pairs).unwrap()).unwrap();
    run(stage("rgb2class", dir).args(["-i", "pairs.json", "-o", "masks.json", "--out-dir", "masks"]));
    run(stage("split", dir).args(["-i", "masks.json", "-o", "split.json"]));
    dir.join("split.json")
}

#[test]
fn data_chain_end_to_end() {
    let d = tempfile::tempdir().unwrap();
    let split = chain(d.path());
    for f in ["pairs.json", "masks.json", "split.json"] {
        assert_schema_valid(&d.path().join(f));
    }
    let m = read(&split);
    assert_eq!(m["study"], "pilot");
    assert_eq!(m["items"][0]["rater"], "A");
    let items = m["items"].as_array().unwrap();
    assert_eq!(items.len(), 8);
    assert_eq!(items.iter().filter(|i| i["split"] == "valid").count(), 2); // floor(0.35 * 8)
    let stages: Vec<&str> = m["provenance"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stage"].as_str().unwrap())
        .collect();
    assert_eq!(stages, ["xml-pairs", "rgb2class", "split"]);
    // every mask is a class-index image the size of its photo, with skin in it
    for it in items {
        let mask = image::open(d.path().join(it["mask"].as_str().unwrap()))
            .unwrap()
            .to_luma8();
        let photo = image::open(d.path().join(it["image"].as_str().unwrap())).unwrap();
        assert_eq!(mask.dimensions(), (photo.width(), photo.height()));
        assert!(mask.pixels().all(|p| p.0[0] < 12));
        assert!(mask.pixels().any(|p| p.0[0] == 8));
    }
    let summary =
        run(stage("manifest-check", d.path()).args(["split.json", "--require", "mask", "--require", "split"]));
    assert!(summary.contains("8 items (train 6, valid 2)"), "{summary}");

    // The same inputs give byte-identical manifests, wherever the run happens.
    let d2 = tempfile::tempdir().unwrap();
    chain(d2.path());
    for f in ["pairs.json", "masks.json", "split.json"] {
        assert_eq!(
            fs::read(d.path().join(f)).unwrap(),
            fs::read(d2.path().join(f)).unwrap(),
            "{f} differs"
        );
    }
}

#[test]
fn python_split_is_a_drop_in_replacement() {
    let d = tempfile::tempdir().unwrap();
    chain(d.path());
    fs::create_dir_all(d.path().join("py")).unwrap();
    run(Command::new("python3")
        .current_dir(d.path())
        .arg(repo().join("pipelines/split.py"))
        .args(["-i", "masks.json", "-o", "py/split.json", "--seed", "2020"]));
    assert_schema_valid(&d.path().join("py/split.json"));
    let (rust, py) = (
        read(&d.path().join("split.json")),
        read(&d.path().join("py/split.json")),
    );
    let sides = |m: &Value| {
        m["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["split"].clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(sides(&rust), sides(&py), "the Python stage must give the same split");
    assert_eq!(py["study"], "pilot", "unknown fields carried through");
    assert_eq!(
        py["items"][0]["mask"], "../masks/labels/g000/face_00000.tif",
        "paths rebased to the output folder"
    );
    // and the next stage accepts its output
    run(stage("manifest-check", d.path()).args(["py/split.json", "--require", "split"]));
    // grouped, too
    run(stage("split", d.path()).args([
        "-i",
        "masks.json",
        "-o",
        "g.json",
        "--group-by",
        "group",
        "--valid-pct",
        "0.5",
    ]));
    run(Command::new("python3")
        .current_dir(d.path())
        .arg(repo().join("pipelines/split.py"))
        .args([
            "-i",
            "masks.json",
            "-o",
            "gpy.json",
            "--group-by",
            "group",
            "--valid-pct",
            "0.5",
        ]));
    assert_eq!(
        sides(&read(&d.path().join("g.json"))),
        sides(&read(&d.path().join("gpy.json")))
    );
}

#[test]
fn make_all_runs_resumes_and_swaps_stages() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("out");
    // a training run of seconds: 32² inputs, the frozen epoch and one fit epoch
    const TRAIN: &str = "TRAIN_ARGS=--arch smp --size 32 --bs 2 --fine-tune-epochs 0 --no-lr-find --epochs 1 --lr 1e-3";
    let command = |extra: &[&str]| {
        let mut c = Command::new("make");
        c.current_dir(repo())
            .arg("--no-print-directory")
            .arg("all")
            .arg(format!("OUT_DIR={}", out.display()))
            .arg(format!("BIN={}", bin_dir().display()))
            .args(["BUILD=:", "DEMO_COUNT=12", "DEMO_SIZE=64"])
            .args(extra);
        c
    };
    let make = |extra: &[&str]| run(&mut command(extra));
    let first = make(&["SPLIT=python3 pipelines/split.py", TRAIN]);
    assert!(first.contains("pipelines/split.py"), "{first}");
    assert!(first.contains("unet-train -i"), "{first}");
    let m = read(&out.join("split.json"));
    assert_eq!(m["provenance"].as_array().unwrap().last().unwrap()["stage"], "split.py");
    let model = read(&out.join("model/model.json"));
    assert_eq!(
        (model["n_train"].as_u64(), model["n_valid"].as_u64()),
        (Some(8), Some(4))
    );
    // the demo model evaluated on every item: masks, pictures, scores per split
    let preds = read(&out.join("predictions.json"));
    assert_eq!(preds["items"].as_array().unwrap().len(), 12);
    assert!(
        preds["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|it| it["pred_mask"].is_string())
    );
    let eval = read(&out.join("eval/eval.json"));
    assert_eq!(eval["groups"][0]["name"], "valid");
    // what the stages write is what the published schemas say
    assert_valid_as(&out.join("model/model.json"), "model");
    assert_valid_as(&out.join("eval/eval.json"), "eval");
    assert_valid_as(&out.join("cheeks.json"), "cheek-lab");
    assert_valid_as(&out.join("cheeks_truth.json"), "cheek-lab");
    assert!(out.join("eval/contact_sheet.png").is_file());
    assert!(
        first.contains("evaluation ") && first.contains("worst and best images"),
        "{first}"
    );
    // nothing changed: no stage reruns
    let second = make(&[TRAIN]);
    assert!(
        !second.contains("xml-pairs --xml")
            && !second.contains("split -i")
            && !second.contains("unet-train -i")
            && !second.contains("unet-eval --model")
            && !second.contains("cheek-lab -i"),
        "{second}"
    );
    // an interrupted run resumes at the missing stage
    fs::remove_file(out.join("split.json")).unwrap();
    let third = make(&[TRAIN]);
    assert!(
        third.contains("/split -i") && !third.contains("rgb2class -i"),
        "{third}"
    );
    // training killed after its first epoch: the next make all resumes it from the checkpoint
    fs::remove_dir_all(out.join("model")).unwrap();
    let halted = command(&[&format!("{TRAIN} --halt-after-epochs 1")]).output().unwrap();
    assert!(!halted.status.success(), "the halted training fails");
    assert!(!out.join("model/model.json").exists());
    let fourth = make(&[TRAIN]);
    assert!(fourth.contains("--resume"), "{fourth}");
    assert!(
        fourth.contains("unet-eval --model"),
        "a new model is evaluated again: {fourth}"
    );
    assert_eq!(read(&out.join("model/model.json"))["epochs"].as_u64(), Some(2));
}
