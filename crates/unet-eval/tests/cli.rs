//! `unet-eval` end to end: a tiny model trained by `unet-train` on generated photos (square
//! and not), run over labelled and unlabelled items; the errors a user can run into.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use facepipe_testutil::{bin, fails, json, ok, output_within, stderr_has, stderr_lacks};
use serde_json::{Value, json};

/// A photo with a bright box (class 1) on a dark ground, and its mask.
fn sample(w: u32, h: u32, i: u32) -> (image::RgbImage, image::GrayImage) {
    let (bx, by) = ((i * 7) % (w - 12), (i * 11) % (h - 12));
    let mask = image::GrayImage::from_fn(w, h, |x, y| {
        image::Luma([u8::from((bx..bx + 12).contains(&x) && (by..by + 12).contains(&y))])
    });
    let photo = image::RgbImage::from_fn(w, h, |x, y| {
        let v = if mask.get_pixel(x, y).0[0] == 1 { 210 } else { 50 } + ((x * 3 + y * 5) % 20) as u8;
        image::Rgb([v, v / 2 + 20, 255 - v])
    });
    (photo, mask)
}

fn classes() -> Value {
    json!([{"id":0,"name":"background","rgb":[0,0,0]}, {"id":1,"name":"box","rgb":[255,255,255]}])
}

fn write_manifest(p: &Path, items: Vec<Value>) {
    facepipe_testutil::write_manifest(p, classes(), items);
}

/// A model trained once for all tests (seconds): smp, 32 px, on 8 square 32×32 samples. It
/// lives in cargo's folder for test scratch, replaced by each run: a temporary folder would
/// never be removed (statics are not dropped) and left 650 MB behind per run.
fn model() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("unet-eval-cli-model");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut items = vec![];
        for i in 0..8 {
            let (p, m) = sample(32, 32, i);
            p.save(dir.join(format!("t{i}.png"))).unwrap();
            m.save(dir.join(format!("t{i}.tif"))).unwrap();
            let split = if i < 6 { "train" } else { "valid" };
            items.push(json!({"id": format!("t{i}"), "image": format!("t{i}.png"),
                "mask": format!("t{i}.tif"), "split": split}));
        }
        write_manifest(&dir.join("split.json"), items);
        let out = dir.join("model");
        ok(Command::new(bin("unet-train"))
            .arg("-i")
            .arg(dir.join("split.json"))
            .arg("--out-dir")
            .arg(&out)
            .args(["--arch", "smp", "--size", "32", "--bs", "2", "--fine-tune-epochs", "0"])
            .args(["--no-lr-find", "--epochs", "2", "--lr", "1e-3", "-q"])
            .output()
            .unwrap());
        out
    })
}

/// A manifest of mixed items in `dir`: square and non-square labelled ones (valid and train),
/// an unlabelled one; every item has an extra field to carry through.
fn eval_set(dir: &Path) -> PathBuf {
    let mut items = vec![];
    for (i, (w, h, split)) in [
        (32, 32, "valid"),
        (48, 32, "valid"),
        (32, 56, "valid"),
        (40, 40, "train"),
        (64, 36, "train"),
    ]
    .into_iter()
    .enumerate()
    {
        let (p, m) = sample(w, h, i as u32 + 3);
        p.save(dir.join(format!("e{i}.png"))).unwrap();
        m.save(dir.join(format!("e{i}.tif"))).unwrap();
        items.push(
            json!({"id": format!("faces/e{i}"), "image": format!("e{i}.png"), "mask": format!("e{i}.tif"),
            "split": split, "participant": format!("P{i}")}),
        );
    }
    let (p, _) = sample(50, 30, 9);
    p.save(dir.join("u.png")).unwrap();
    items.push(json!({"id": "faces/unlabelled", "image": "u.png", "split": "valid", "participant": "P9"}));
    let p = dir.join("set.json");
    write_manifest(&p, items);
    p
}

/// A command running the built `unet-eval` with `model` on `input`, into `out` and `dir`.
fn eval(model: &Path, input: &Path, out: &Path, dir: &Path) -> Command {
    let mut c = Command::new(bin("unet-eval"));
    c.arg("--model")
        .arg(model)
        .arg("-i")
        .arg(input)
        .arg("-o")
        .arg(out)
        .arg("--out-dir")
        .arg(dir)
        .args(["--bs", "3"]);
    c
}

fn close(a: &Value, b: &Value, tol: f64) -> bool {
    (a.as_f64().unwrap() - b.as_f64().unwrap()).abs() <= tol
}

#[test]
fn predicts_every_item_at_full_resolution_and_scores_the_labelled_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let set = eval_set(tmp.path());
    let (out, dir) = (tmp.path().join("pred.json"), tmp.path().join("eval"));
    let run = ok(eval(model(), &set, &out, &dir).output().unwrap());
    stderr_has(&run, "images/s");
    stderr_has(&run, "valid (3 images), full resolution");

    let m = json(&out);
    let items = m["items"].as_array().unwrap();
    assert_eq!(items.len(), 6);
    for it in items {
        // every field carried through, pred_mask added, relative to the manifest
        assert!(it["participant"].as_str().unwrap().starts_with('P'));
        let pm = tmp.path().join(it["pred_mask"].as_str().unwrap());
        let img = image::open(tmp.path().join(it["image"].as_str().unwrap())).unwrap();
        let pred = image::open(&pm).unwrap().to_luma8();
        assert_eq!(pred.dimensions(), (img.width(), img.height()), "{}", pm.display());
        // tiles cover non-square images: every pixel predicted, as a class of the model
        assert!(pred.as_raw().iter().all(|&v| v < 2), "{}", pm.display());
    }
    assert!(dir.join("masks/faces/e1.tif").is_file());
    assert!(dir.join("colour/faces/unlabelled.png").is_file());
    assert!(dir.join("overlay/faces/e2.png").is_file());
    let step = m["provenance"].as_array().unwrap().last().unwrap();
    assert_eq!(step["stage"], "unet-eval");
    assert_eq!(
        step["inputs"].as_array().unwrap().len(),
        3,
        "manifest, model.json, weights"
    );

    let e = json(&dir.join("eval.json"));
    assert_eq!((e["items"].as_u64(), e["labelled"].as_u64()), (Some(6), Some(5)));
    assert_eq!(e["headline"], "valid");
    let groups = e["groups"].as_array().unwrap();
    assert_eq!(
        groups.iter().map(|g| g["name"].as_str().unwrap()).collect::<Vec<_>>(),
        ["valid", "train"]
    );
    let valid = &groups[0];
    assert_eq!(valid["images"], 3);
    // full resolution scores every labelled pixel of the three valid images
    assert_eq!(valid["full_resolution"]["pixels"], 32 * 32 + 48 * 32 + 32 * 56);
    assert_eq!(valid["full_resolution"]["unpredicted_pixels"], 0);
    // model resolution: three 32×32 centre crops
    assert_eq!(valid["model_resolution"]["pixels"], 3 * 32 * 32);
    let conf = &valid["full_resolution"]["confusion"];
    let total: u64 = conf
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r.as_array().unwrap())
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(total, valid["full_resolution"]["pixels"].as_u64().unwrap());
    for k in ["model_json_sha256", "weights_sha256"] {
        assert_eq!(e["model"][k].as_str().unwrap().len(), 64);
    }
    assert!(e["throughput"]["images_per_s"].as_f64().unwrap() > 0.0);
    // the tiles of the non-square images went through the network: 1 + 3 + 3 + 1 + 3 + 3
    assert_eq!(e["throughput"]["tiles"], 14);

    let rows: Vec<csv::StringRecord> = csv::Reader::from_path(dir.join("per_image.csv"))
        .unwrap()
        .records()
        .map(Result::unwrap)
        .collect();
    assert_eq!(rows.len(), 5, "one row per labelled image");
    assert_eq!(&rows[1][0], "faces/e1");
    assert_eq!(&rows[1][1], "valid");
    assert_eq!(&rows[1][5], (48 * 32).to_string());
    let conf_csv = std::fs::read_to_string(dir.join("confusion.csv")).unwrap();
    assert!(
        conf_csv.starts_with("truth \\ predicted,background,box\n"),
        "{conf_csv}"
    );
    for f in ["confusion.png", "contact_sheet.png", "report.md"] {
        assert!(dir.join(f).is_file(), "{f}");
    }
    let report = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(report.contains("](contact_sheet.png)") && report.contains("| valid | 3 | full |"));
}

#[test]
fn model_resolution_scores_on_the_training_valid_set_reproduce_training() {
    let tmp = tempfile::tempdir().unwrap();
    let split = model().parent().unwrap().join("split.json");
    let (out, dir) = (tmp.path().join("p.json"), tmp.path().join("e"));
    ok(eval(model(), &split, &out, &dir)
        .args(["--split", "valid"])
        .output()
        .unwrap());
    let e = json(&dir.join("eval.json"));
    let g = &e["groups"][0];
    assert_eq!((g["name"].as_str(), g["images"].as_u64()), (Some("valid"), Some(2)));
    let rec = &json(&model().join("model.json"))["best"]["record"];
    let s = &g["model_resolution"];
    assert!(
        close(&s["loss"], &rec["valid_loss"], 1e-5),
        "{} vs {}",
        s["loss"],
        rec["valid_loss"]
    );
    for k in ["pixel_accuracy", "mean_iou", "mean_dice", "mean_iou_fg"] {
        assert!(close(&s[k], &rec[k], 1e-9), "{k}: {} vs {}", s[k], rec[k]);
    }
    // square images: full resolution = model resolution scaled up; close, not equal
    assert!(close(
        &g["full_resolution"]["pixel_accuracy"],
        &s["pixel_accuracy"],
        0.05
    ));
    let m = json(&out);
    assert_eq!(m["items"].as_array().unwrap().len(), 2, "only the selected items");
}

#[test]
fn outside_none_leaves_the_sides_unpredicted_and_unscored() {
    let tmp = tempfile::tempdir().unwrap();
    let set = eval_set(tmp.path());
    let (out, dir) = (tmp.path().join("pred.json"), tmp.path().join("eval"));
    ok(eval(model(), &set, &out, &dir)
        .args(["--outside", "none"])
        .output()
        .unwrap());
    // e1 is 48×32: columns 0..8 and 40..48 are outside the centre square
    let pred = image::open(dir.join("masks/faces/e1.tif")).unwrap().to_luma8();
    for (x, _, p) in pred.enumerate_pixels() {
        assert_eq!(p.0[0] == 255, !(8..40).contains(&x), "column {x}");
    }
    let e = json(&dir.join("eval.json"));
    let full = &e["groups"][0]["full_resolution"];
    // e1 loses 2·8·32 pixels, e2 (32×56) 2·12·32
    assert_eq!(full["unpredicted_pixels"], 2 * 8 * 32 + 2 * 12 * 32);
    assert_eq!(full["pixels"], 3 * 32 * 32);
    assert_eq!(e["throughput"]["tiles"], 6);
}

#[test]
fn unlabelled_manifests_get_masks_and_no_scores() {
    let tmp = tempfile::tempdir().unwrap();
    let (p, _) = sample(40, 30, 1);
    p.save(tmp.path().join("a.png")).unwrap();
    // no classes, no split, no mask: what xml-pairs' output would be for bare photos
    let m = json!({"schema":"facepipe/dataset","schema_version":1,"items":[{"id":"a","image":"a.png"}]});
    let input = tmp.path().join("in.json");
    std::fs::write(&input, m.to_string()).unwrap();
    let (out, dir) = (tmp.path().join("p.json"), tmp.path().join("e"));
    ok(eval(model(), &input, &out, &dir).output().unwrap());
    let e = json(&dir.join("eval.json"));
    assert_eq!(
        (e["labelled"].as_u64(), e["groups"].as_array().unwrap().len()),
        (Some(0), 0)
    );
    assert!(!dir.join("per_image.csv").exists() && dir.join("report.md").exists());
    let m = json(&out);
    assert_eq!(m["classes"], classes(), "the model's palette travels on");
    assert!(dir.join("masks/a.tif").is_file());
}

/// Runs `cmd`, expects failure with `msg`, and checks nothing was written.
fn fails_cleanly(mut cmd: Command, msg: &str, out: &Path, dir: &Path) {
    fails(cmd.output().unwrap(), msg);
    assert!(!out.exists(), "{} written", out.display());
    assert!(!dir.exists(), "{} created", dir.display());
}

/// A copy of the shared model directory to break.
fn model_copy(to: &Path) -> PathBuf {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(model()).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
        }
    }
    to.to_path_buf()
}

#[test]
fn broken_models_and_inputs_are_named_and_nothing_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let set = eval_set(t);
    let (out, dir) = (t.join("pred.json"), t.join("eval"));

    // a model whose palette differs from the manifest's
    let bad = model_copy(&t.join("palette"));
    let mut info = json(&bad.join("model.json"));
    info["classes"][1]["name"] = "hat".into();
    std::fs::write(bad.join("model.json"), info.to_string()).unwrap();
    fails_cleanly(eval(&bad, &set, &out, &dir), "do not match the model's", &out, &dir);

    // a model directory without its weight file
    let bad = model_copy(&t.join("noweights"));
    std::fs::remove_file(bad.join("best.bpk")).unwrap();
    fails_cleanly(eval(&bad, &set, &out, &dir), "best weights", &out, &dir);

    // weights of another architecture than model.json says
    let bad = model_copy(&t.join("arch"));
    let mut info = json(&bad.join("model.json"));
    info["arch"] = "fastai".into();
    std::fs::write(bad.join("model.json"), info.to_string()).unwrap();
    fails_cleanly(eval(&bad, &set, &out, &dir), "do not fit a fastai UNet", &out, &dir);

    // not a model directory
    fails_cleanly(eval(t, &set, &out, &dir), "model.json", &out, &dir);

    // a mask value beyond the classes: named with its file, before anything is written
    image::GrayImage::from_pixel(40, 40, image::Luma([7]))
        .save(t.join("e3.tif"))
        .unwrap();
    fails_cleanly(eval(model(), &set, &out, &dir), "e3.tif has value 7", &out, &dir);
    let (p, m) = sample(40, 40, 3);
    p.save(t.join("e3.png")).unwrap();
    m.save(t.join("e3.tif")).unwrap();

    // a mask of another size than its image
    image::GrayImage::new(10, 10).save(t.join("e0.tif")).unwrap();
    fails_cleanly(
        eval(model(), &set, &out, &dir),
        "is 32×32 as shown but its mask",
        &out,
        &dir,
    );
    sample(32, 32, 3).1.save(t.join("e0.tif")).unwrap();

    // a missing image
    std::fs::rename(t.join("u.png"), t.join("u.bak")).unwrap();
    fails_cleanly(eval(model(), &set, &out, &dir), "cannot read image", &out, &dir);
    std::fs::rename(t.join("u.bak"), t.join("u.png")).unwrap();

    // --split valid on a manifest without splits
    let plain = t.join("plain.json");
    let mut m = json(&set);
    for it in m["items"].as_array_mut().unwrap() {
        it.as_object_mut().unwrap().remove("split");
    }
    std::fs::write(&plain, m.to_string()).unwrap();
    let mut c = eval(model(), &plain, &out, &dir);
    c.args(["--split", "valid"]);
    fails_cleanly(c, "run split first", &out, &dir);

    // a foreign, non-empty output directory is never touched
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("notes.txt"), "mine").unwrap();
    fails(
        eval(model(), &set, &out, &dir).output().unwrap(),
        "did not write (notes.txt)",
    );
    assert_eq!(std::fs::read_to_string(dir.join("notes.txt")).unwrap(), "mine");
    assert!(!out.exists());

    // a previous run's files are replaced (the train items' masks of a run on all items are
    // gone after a rerun on the valid ones); a foreign -o file is refused without --force
    let d2 = t.join("eval2");
    ok(eval(model(), &set, &out, &d2).output().unwrap());
    assert!(d2.join("masks/faces/e3.tif").is_file());
    ok(eval(model(), &set, &out, &d2)
        .args(["--split", "valid"])
        .output()
        .unwrap());
    assert!(
        !d2.join("masks/faces/e3.tif").exists() && d2.join("masks/faces/e0.tif").is_file(),
        "the previous run's files were replaced"
    );
    let foreign = t.join("foreign.json");
    std::fs::write(&foreign, "{}").unwrap();
    fails(
        eval(model(), &set, &foreign, &t.join("eval3")).output().unwrap(),
        "refusing to overwrite",
    );
    assert_eq!(std::fs::read_to_string(&foreign).unwrap(), "{}");
}

/// Hostile reruns and outputs (issue 11): a user's files in --out-dir survive a rerun, a FIFO
/// or /dev/null as -o is written through.
#[cfg(unix)]
#[test]
fn reruns_keep_user_files_and_odd_outputs_are_written_through() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let set = eval_set(t);
    let (out, dir) = (t.join("pred.json"), t.join("ev"));
    ok(eval(model(), &set, &out, &dir).output().unwrap());
    // the summary says which weights were scored
    let summary = ok(Command::new(bin("unet-eval"))
        .arg("--summary")
        .arg(&dir)
        .output()
        .unwrap());
    stderr_has(&summary, "6 images (5 labelled) with the best weights");
    stderr_has(&summary, "\n    IoU per class: ");
    // the user's files: a rerun refuses and changes nothing
    std::fs::write(dir.join("notes.txt"), "mine").unwrap();
    std::fs::create_dir_all(dir.join("masks/mine")).unwrap();
    std::fs::write(dir.join("masks/mine/k.txt"), "mine").unwrap();
    let before = std::fs::read(dir.join("eval.json")).unwrap();
    fails(
        eval(model(), &set, &out, &dir).output().unwrap(),
        "masks/mine/k.txt, notes.txt",
    );
    assert_eq!(std::fs::read(dir.join("eval.json")).unwrap(), before);
    // with --force the evaluation is replaced and the user's files stay
    ok(eval(model(), &set, &out, &dir).arg("--force").output().unwrap());
    assert_eq!(std::fs::read_to_string(dir.join("notes.txt")).unwrap(), "mine");
    assert_eq!(std::fs::read_to_string(dir.join("masks/mine/k.txt")).unwrap(), "mine");
    assert!(dir.join("masks/faces/e0.tif").is_file());

    // -o through a symlink to /dev/null, with --force: written through, the link stays a link
    let null = t.join("null.json");
    std::os::unix::fs::symlink("/dev/null", &null).unwrap();
    ok(eval(model(), &set, &null, &t.join("ev2"))
        .arg("--force")
        .output()
        .unwrap());
    assert!(std::fs::symlink_metadata(&null).unwrap().file_type().is_symlink());
    // -o a FIFO: written through (a reader gets the manifest), no hang, not replaced
    let fifo = t.join("pred.fifo");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read(&fifo).unwrap())
    };
    ok(output_within(
        &mut eval(model(), &set, &fifo, &t.join("ev3")),
        Duration::from_secs(120),
    ));
    let got: Value = serde_json::from_slice(&reader.join().unwrap()).unwrap();
    assert_eq!(got["items"].as_array().unwrap().len(), 6);
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
}

/// Refused before any work (issue 11): -o = -i that would drop items, a model.json with an
/// impossible input size, broken weights, a missing or read-only folder for -o.
#[cfg(unix)]
#[test]
fn impossible_models_and_outputs_are_refused_before_any_work() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let set = eval_set(t);
    // -o = -i while --split valid would drop the train items: refused
    let copy = t.join("copy.json");
    std::fs::copy(&set, &copy).unwrap();
    let mut c = eval(model(), &copy, &copy, &t.join("ev4"));
    c.args(["--split", "valid"]);
    fails_cleanly(c, "would drop the others", &t.join("nothing.json"), &t.join("ev4"));
    assert_eq!(std::fs::read(&copy).unwrap(), std::fs::read(&set).unwrap());

    // a model.json claiming a 100000² input (it aborted on a 30 GB allocation)
    let huge = model_copy(&t.join("huge"));
    let mut info = json(&huge.join("model.json"));
    info["preprocessing"]["input_size"] = 100000.into();
    std::fs::write(huge.join("model.json"), info.to_string()).unwrap();
    let (o5, d5) = (t.join("o5.json"), t.join("ev5"));
    fails_cleanly(
        eval(&huge, &set, &o5, &d5),
        "input size 100000 is outside 32..=2048",
        &o5,
        &d5,
    );

    // broken weights: a message, not Rust's debug output of burn's error types
    let trunc = model_copy(&t.join("trunc"));
    let bytes = std::fs::read(trunc.join("best.bpk")).unwrap();
    std::fs::write(trunc.join("best.bpk"), &bytes[..bytes.len() / 2]).unwrap();
    let arch = model_copy(&t.join("arch2"));
    let mut info = json(&arch.join("model.json"));
    info["arch"] = "fastai".into();
    std::fs::write(arch.join("model.json"), info.to_string()).unwrap();
    for m in [&trunc, &arch] {
        let (o, d) = (t.join("o8.json"), t.join("ev8"));
        let a = eval(m, &set, &o, &d).output().unwrap();
        for debug in ["IoError(", "ShapeMismatch {", "DTypeMismatch {", "Some("] {
            stderr_lacks(&a, debug);
        }
        fails(a, "best.bpk");
        assert!(!o.exists() && !d.exists());
    }

    // a folder for -o that does not exist: found before the evaluation folder is made (it
    // used to fail at the very end, after every mask was written)
    let d7 = t.join("ev7");
    fails_cleanly(
        eval(model(), &set, &t.join("no/such/p.json"), &d7),
        "does not exist",
        &t.join("no/such/p.json"),
        &d7,
    );

    // a folder for -o that cannot be written: found before the evaluation folder is made
    let ro = t.join("ro");
    std::fs::create_dir(&ro).unwrap();
    let mut perm = std::fs::metadata(&ro).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o555);
    std::fs::set_permissions(&ro, perm).unwrap();
    if std::fs::write(ro.join("probe"), "x").is_err() {
        // (as root the folder is writable anyway, and there is nothing to test)
        let d6 = t.join("ev6");
        fails_cleanly(
            eval(model(), &set, &ro.join("p.json"), &d6),
            "cannot write in",
            &ro.join("p.json"),
            &d6,
        );
    }
}

#[test]
fn clashing_ids_thin_photos_and_two_outputs_on_one_path_are_refused_before_writing() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    sample(32, 32, 1).0.save(t.join("a.png")).unwrap();
    let all = |mut c: Command| {
        c.args(["--split", "all"]);
        c
    };
    // `x` writes masks/x.tif, `x.tif/y` would need masks/x.tif/ (it failed after 21 files)
    let clash = t.join("clash.json");
    write_manifest(
        &clash,
        vec![
            json!({"id": "x", "image": "a.png"}),
            json!({"id": "x.tif/y", "image": "a.png"}),
        ],
    );
    let (o, d) = (t.join("o.json"), t.join("ev"));
    fails_cleanly(
        all(eval(model(), &clash, &o, &d)),
        "item ids \"x\" and \"x.tif/y\"",
        &o,
        &d,
    );
    // a 400×2 picture would be cut into a tile per two pixels
    image::RgbImage::new(400, 2).save(t.join("thin.png")).unwrap();
    let thin = t.join("thin.json");
    write_manifest(&thin, vec![json!({"id": "thin", "image": "thin.png"})]);
    fails_cleanly(
        all(eval(model(), &thin, &o, &d)),
        "is 400×2, more than 10 times as long as it is wide",
        &o,
        &d,
    );
    // -o and --out-dir on one path
    let set = eval_set(t);
    let same = t.join("same");
    fails_cleanly(
        eval(model(), &set, &same, &same),
        "must not be inside --out-dir",
        &same,
        &same,
    );
}

#[test]
fn weights_other_than_the_ones_model_json_records_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let set = eval_set(t);
    // best.bpk from "another run": still a valid file, one value changed
    let swapped = model_copy(&t.join("swapped"));
    let mut bytes = std::fs::read(swapped.join("best.bpk")).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    std::fs::write(swapped.join("best.bpk"), bytes).unwrap();
    assert!(
        json(&swapped.join("model.json"))["best"]["burnpack_sha256"].is_string(),
        "model.json records the hash"
    );
    let (o, d) = (t.join("o.json"), t.join("ev"));
    fails_cleanly(eval(&swapped, &set, &o, &d), "are not the ones", &o, &d);
    // weights of a 2-class head for a model.json of 3 classes: the shapes in words
    let three = model_copy(&t.join("three"));
    let mut info = json(&three.join("model.json"));
    info["classes"]
        .as_array_mut()
        .unwrap()
        .push(json!({"id": 2, "name": "hat", "rgb": [9, 9, 9]}));
    std::fs::write(three.join("model.json"), info.to_string()).unwrap();
    sample(32, 32, 1).0.save(t.join("u.png")).unwrap();
    let unlabelled = t.join("u.json");
    facepipe_testutil::write_manifest(&unlabelled, json!([]), vec![json!({"id": "u", "image": "u.png"})]);
    let out = eval(&three, &unlabelled, &o, &d)
        .args(["--split", "all"])
        .output()
        .unwrap();
    stderr_lacks(&out, "Shape {");
    fails(out, "in the file, the model needs [3");
    assert!(!o.exists() && !d.exists());
}
