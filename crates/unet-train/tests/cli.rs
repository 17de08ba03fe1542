//! `unet-train` end to end on a tiny generated dataset: the model directory, same seed → same
//! metrics, a killed run resumed to the same result, and the errors a user can run into.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use facepipe_testutil::{bin, fails, ok, stderr_has, usage_error};

/// A split manifest of `n` 32×32 photos with a bright box (class 1) on a dark ground.
fn dataset(dir: &Path, n: usize) -> PathBuf {
    let mut items = vec![];
    for i in 0..n {
        let (sx, sy) = ((i * 7) % 16, (i * 11) % 16);
        let mask = image::GrayImage::from_fn(32, 32, |x, y| {
            let inside = (sx..sx + 12).contains(&(x as usize)) && (sy..sy + 12).contains(&(y as usize));
            image::Luma([u8::from(inside)])
        });
        let photo = image::RgbImage::from_fn(32, 32, |x, y| {
            let v = if mask.get_pixel(x, y).0[0] == 1 { 210 } else { 50 } + ((x * 3 + y * 5) % 20) as u8;
            image::Rgb([v, v / 2 + 20, 255 - v])
        });
        photo.save(dir.join(format!("{i}.png"))).unwrap();
        mask.save(dir.join(format!("{i}.tif"))).unwrap();
        let split = if i < n - 2 { "train" } else { "valid" };
        items.push(serde_json::json!({"id": format!("s{i}"), "image": format!("{i}.png"),
            "mask": format!("{i}.tif"), "split": split}));
    }
    let classes = serde_json::json!([{"id":0,"name":"background","rgb":[0,0,0]},
        {"id":1,"name":"box","rgb":[255,255,255]}]);
    let m = serde_json::json!({"schema":"facepipe/dataset","schema_version":1,"classes":classes,
        "items":items,"provenance":[]});
    let p = dir.join("split.json");
    std::fs::write(&p, serde_json::to_string_pretty(&m).unwrap()).unwrap();
    p
}

const RECIPE: &str = r#"{"patience": null, "steps": [
  {"fine_tune": {"epochs": 1}},
  {"lr_find": {"num_it": 12}},
  {"fit_one_cycle": {"epochs": 2, "lr_max": "auto"}}]}"#;

/// unet-train on `manifest` into `out` with the recipe file `recipe`, at 32², batch 2.
fn train_with(manifest: &Path, out: &Path, recipe: &Path) -> Command {
    let mut c = Command::new(bin("unet-train"));
    c.arg("-i")
        .arg(manifest)
        .arg("--out-dir")
        .arg(out)
        .args(["--arch", "smp", "--size", "32", "--bs", "2", "--recipe"])
        .arg(recipe);
    c
}

/// unet-train on `manifest` into `out` with [`RECIPE`] (written beside the manifest) and `extra`.
fn train(manifest: &Path, out: &Path, extra: &[&str]) -> Command {
    let recipe = manifest.with_file_name("recipe.json");
    std::fs::write(&recipe, RECIPE).unwrap();
    let mut c = train_with(manifest, out, &recipe);
    c.args(extra);
    c
}

/// `unet-train --summary dir`, however it ends.
fn summary(dir: &Path) -> Output {
    Command::new(bin("unet-train"))
        .arg("--summary")
        .arg(dir)
        .output()
        .unwrap()
}

/// metrics.csv without its time column.
fn metrics_without_time(dir: &Path) -> Vec<Vec<String>> {
    let mut r = csv::Reader::from_path(dir.join("metrics.csv")).unwrap();
    let header = r.headers().unwrap().clone();
    let t = header.iter().position(|h| h == "seconds").expect("a seconds column");
    r.records()
        .map(|rec| {
            rec.unwrap()
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != t)
                .map(|(_, v)| v.to_string())
                .collect()
        })
        .collect()
}

#[test]
fn trains_writes_a_model_directory_and_resumes_a_killed_run_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let m = dataset(tmp.path(), 8);
    let a = tmp.path().join("runs/a");
    stderr_has(&ok(train(&m, &a, &[]).output().unwrap()), "fit epoch 2/2");

    for f in [
        "model.json",
        "run.json",
        "metrics.csv",
        "loss.png",
        "lr_find.csv",
        "lr_find.png",
        "best.bpk",
        "best.safetensors",
        "last.bpk",
        "last.safetensors",
        "checkpoint/state.json",
    ] {
        assert!(a.join(f).is_file(), "{f} missing");
    }
    for png in ["loss.png", "lr_find.png"] {
        let img = image::open(a.join(png)).unwrap();
        assert_eq!((img.width(), img.height()), (720, 420));
    }
    let info = unet::model_dir::ModelInfo::read(&a).unwrap();
    assert_eq!(info.classes.len(), 2);
    assert_eq!(info.classes[1].name, "box");
    assert_eq!((info.n_train, info.n_valid, info.epochs), (6, 2, 4));
    assert_eq!(info.preprocessing.input_size, 32);
    assert_eq!(info.lr_find.len(), 1);
    let valley = info.lr_find[0].suggestions.as_ref().expect("a suggestion").valley;
    assert!(valley > 1e-7 && valley < 10.0);
    assert!(info.best.record.valid_loss <= info.last.record.valid_loss);

    let rows = metrics_without_time(&a);
    let phases: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(phases, ["frozen", "unfrozen", "fit", "fit"]);
    let header: Vec<String> = csv::Reader::from_path(a.join("metrics.csv"))
        .unwrap()
        .headers()
        .unwrap()
        .iter()
        .map(String::from)
        .collect();
    for h in [
        "valid_loss",
        "mean_iou_fg",
        "dice_background",
        "iou_box",
        "lr_group2",
        "seconds",
    ] {
        assert!(header.iter().any(|x| x == h), "column {h} missing from {header:?}");
    }
    // a 12-iteration sweep is too short for its valley: the fit fell back to the rates of the
    // unfrozen fit before it (fine_tune's default base_lr 2e-3, halved), and says so
    let why = info.lr_find[0]
        .untrusted
        .as_deref()
        .expect("a 12-iteration sweep is not trusted");
    assert!(why.contains("the sweep ran 12 iterations"), "{why}");
    let sources: Vec<String> = info.fit_lrs.iter().map(|f| f.lr.source.to_string()).collect();
    assert_eq!(sources, ["stated", "stated", "fallback"]);
    assert_eq!(info.fit_lrs[2].lr.lr_max, info.fit_lrs[1].lr.lr_max);
    assert!((info.fit_lrs[2].lr.lr_max[2] - 1e-3).abs() < 1e-15);
    let lr_rows: Vec<f64> = rows[2..].iter().map(|r| r[header.len() - 2].parse().unwrap()).collect();
    assert!(lr_rows.iter().all(|&lr| lr <= 1e-3 * 1.000001), "{lr_rows:?}");

    // the summary make all prints
    let said = ok(summary(&a));
    stderr_has(
        &said,
        "smp decoder, 32x32 inputs, ce loss, 4 epochs on 6 train / 2 valid images",
    );
    stderr_has(&said, "IoU per class: background");
    stderr_has(
        &said,
        "fit phase: lr_max [1.00e-5, 1.00e-4, 1.00e-3] from the fallback (lr_find's valley",
    );
    fails(summary(tmp.path()), "model.json");

    // the same seed gives the same metrics, and byte-identical weight files (their metadata
    // is written in a fixed order)
    let b = tmp.path().join("runs/b");
    ok(train(&m, &b, &[]).output().unwrap());
    assert_eq!(metrics_without_time(&a), rows, "same seed, same metrics");
    for f in ["last.safetensors", "last.bpk", "best.safetensors", "best.bpk"] {
        assert!(
            std::fs::read(a.join(f)).unwrap() == std::fs::read(b.join(f)).unwrap(),
            "{f} differs between two identical runs"
        );
    }

    // killed after two epochs (inside fine_tune), then resumed: the same run
    let c = tmp.path().join("runs/c");
    fails(
        train(&m, &c, &["--halt-after-epochs", "2"]).output().unwrap(),
        "--resume continues",
    );
    assert!(!c.join("model.json").exists(), "an unfinished run has no model.json");
    assert_eq!(metrics_without_time(&c).len(), 2);
    // while another run holds the folder, a resume refuses and names it
    let held = {
        let mut o = facepipe_core::out::Outputs::new("test", false);
        o.lock(c.as_path()).unwrap();
        o
    };
    fails(
        train(&m, &c, &["--resume"]).output().unwrap(),
        "being written by another run",
    );
    drop(held);
    // a weight file the kill left half-written is swept by the resume
    let half = c.join("checkpoint/.epoch-0003.bpk.facepipe-tmp-w");
    std::fs::write(&half, "half").unwrap();
    ok(train(&m, &c, &["--resume"]).output().unwrap());
    assert!(!half.exists(), "the interrupted run's temporary file is swept");
    assert_eq!(metrics_without_time(&c), rows, "resumed run = uninterrupted run");
    let (wa, wc) = (
        std::fs::read(a.join("last.safetensors")).unwrap(),
        std::fs::read(c.join("last.safetensors")).unwrap(),
    );
    let (ta, tc) = (
        safetensors::SafeTensors::deserialize(&wa).unwrap(),
        safetensors::SafeTensors::deserialize(&wc).unwrap(),
    );
    let mut names = ta.names();
    names.sort();
    assert!(names.len() > 100, "{} tensors", names.len());
    let differ: Vec<&&str> = names
        .iter()
        .filter(|n| tc.tensor(n).map(|t| t.data().to_vec()).ok() != Some(ta.tensor(n).unwrap().data().to_vec()))
        .collect();
    assert!(differ.is_empty(), "final weights differ in {differ:?}");
    // a finished run resumes to nothing
    stderr_has(&ok(train(&m, &c, &["--resume"]).output().unwrap()), "already complete");

    // a previous run is not replaced without --force, and --resume wants the same settings
    fails(
        train(&m, &a, &[]).output().unwrap(),
        "--resume to continue it, --force to replace it",
    );
    fails(
        train(&m, &c, &["--resume", "--seed", "7"]).output().unwrap(),
        "different settings (seed)",
    );

    // --force replaces the previous run and only it: a user's files in the folder stay
    std::fs::write(a.join("notes.txt"), "keep").unwrap();
    std::fs::write(a.join("checkpoint/keep.txt"), "keep").unwrap();
    std::fs::write(a.join("checkpoint/epoch-0099.bpk"), "an old checkpoint").unwrap();
    stderr_has(
        &ok(train(&m, &a, &["--force"]).output().unwrap()),
        "keeping 2 files unet-train did not write",
    );
    assert_eq!(std::fs::read_to_string(a.join("notes.txt")).unwrap(), "keep");
    assert_eq!(std::fs::read_to_string(a.join("checkpoint/keep.txt")).unwrap(), "keep");
    assert!(
        !a.join("checkpoint/epoch-0099.bpk").exists(),
        "the old run's own files go"
    );
    assert_eq!(metrics_without_time(&a), rows);
}

/// A safetensors file with torchvision's ResNet34 keys and shapes, every float tensor 0.01,
/// with `edit` changing one tensor.
fn pretrained(path: &Path, edit: impl Fn(&str, &mut safetensors::Dtype, &mut Vec<u8>)) {
    use safetensors::Dtype;
    let bufs: Vec<(String, Vec<usize>, Dtype, Vec<u8>)> = unet::model::weights::torchvision_resnet34()
        .into_iter()
        .map(|(name, shape)| {
            let n: usize = shape.iter().product();
            let (mut d, mut b) = if name.ends_with("num_batches_tracked") {
                (Dtype::I64, 0i64.to_le_bytes().to_vec())
            } else {
                (Dtype::F32, 0.01f32.to_le_bytes().repeat(n))
            };
            edit(&name, &mut d, &mut b);
            (name, shape, d, b)
        })
        .collect();
    let views = bufs.iter().map(|(n, s, d, b)| {
        (
            n.clone(),
            safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap(),
        )
    });
    safetensors::serialize_to_file(views, None, path).unwrap();
}

#[test]
fn hostile_weights_sizes_and_recipes_are_refused_before_anything_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let m = dataset(tmp.path(), 6);
    let out = tmp.path().join("run");
    let refused = |args: &[&str], code: i32, why: &str| {
        let mut c = Command::new(bin("unet-train"));
        c.arg("-i").arg(&m).arg("--out-dir").arg(&out);
        c.args(["--arch", "smp", "--bs", "2", "--epochs", "1"]).args(args);
        if !args.contains(&"--size") {
            c.args(["--size", "32"]);
        }
        match code {
            1 => fails(c.output().unwrap(), why),
            2 => usage_error(c.output().unwrap(), why),
            _ => unreachable!("a stage exits 1 (failure) or 2 (bad usage)"),
        }
        assert!(!out.exists(), "{args:?}: nothing may be written");
    };
    // an integer-typed weight (it crashed burn-store: panic, then SIGSEGV or a double free)
    let i64_file = tmp.path().join("i64.safetensors");
    pretrained(&i64_file, |name, d, b| {
        if name == "layer2.0.conv1.weight" {
            *d = safetensors::Dtype::I64;
            *b = vec![0; 128 * 64 * 9 * 8];
        }
    });
    refused(
        &["--pretrained", i64_file.to_str().unwrap()],
        1,
        "layer2.0.conv1.weight is of integer or boolean type I64",
    );
    // NaN and infinity are refused, not trained on
    let nan = tmp.path().join("nan.safetensors");
    pretrained(&nan, |name, _, b| {
        if name == "layer4.2.bn2.running_var" {
            b[..4].copy_from_slice(&f32::NAN.to_le_bytes());
        }
    });
    refused(&["--pretrained", nan.to_str().unwrap()], 1, "non-finite");
    let inf = tmp.path().join("inf.safetensors");
    pretrained(&inf, |name, _, b| {
        if name == "conv1.weight" {
            b[4..8].copy_from_slice(&f32::INFINITY.to_le_bytes());
        }
    });
    refused(
        &["--pretrained", inf.to_str().unwrap()],
        1,
        "conv1.weight holds a non-finite value",
    );
    // sizes: below what the encoder can take, above what memory holds (usage errors)
    for size in ["0", "7", "31", "100000"] {
        refused(&["--size", size], 2, "outside 32..=2048");
    }
    // a recipe that trains no epoch would write a run with no model
    let zero = tmp.path().join("zero.json");
    std::fs::write(
        &zero,
        r#"{"steps": [{"fine_tune": {"epochs": 0, "freeze_epochs": 0}}]}"#,
    )
    .unwrap();
    fails(train_with(&m, &out, &zero).output().unwrap(), "no step trains an epoch");
    assert!(!out.exists());
}

#[test]
fn bad_inputs_fail_clearly_and_change_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let m = dataset(tmp.path(), 6);

    // a directory with someone else's files is refused (with --force the run is written
    // beside them, which keep_foreign_files_in_a_run_folder checks)
    let foreign = tmp.path().join("mine");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::write(foreign.join("notes.txt"), "keep").unwrap();
    fails(
        train(&m, &foreign, &[]).output().unwrap(),
        "unet-train did not write (notes.txt)",
    );
    assert_eq!(std::fs::read_to_string(foreign.join("notes.txt")).unwrap(), "keep");
    assert_eq!(std::fs::read_dir(&foreign).unwrap().count(), 1);

    // a mask value that is not a class (and not 255) names the file and the value, before
    // anything is written
    let bad_dir = tmp.path().join("bad");
    std::fs::create_dir(&bad_dir).unwrap();
    let bad_m = dataset(&bad_dir, 6);
    image::GrayImage::from_pixel(32, 32, image::Luma([7]))
        .save(bad_dir.join("4.tif"))
        .unwrap();
    fails(
        train(&bad_m, &tmp.path().join("r1"), &[]).output().unwrap(),
        "4.tif has value 7",
    );
    assert!(!tmp.path().join("r1").exists(), "nothing written");

    // CUDA in a CPU build
    if !unet::device::CUDA_BUILT {
        fails(
            train(&m, &tmp.path().join("r2"), &["--device", "cuda"])
                .output()
                .unwrap(),
            "--features cuda",
        );
    }
    // wgpu in a CPU build; --list-devices says what the build has
    if !unet::device::WGPU_BUILT {
        fails(
            train(&m, &tmp.path().join("r2"), &["--device", "wgpu:1"])
                .output()
                .unwrap(),
            "--features wgpu",
        );
        let listed = ok(Command::new(bin("unet-train")).arg("--list-devices").output().unwrap());
        stderr_has(&listed, "wgpu: not in this build");
        stderr_has(&listed, "cpu: ");
    }
    // the device check on the CPU compares the CPU with itself: every result the same, and the
    // gradients of every parameter of the fastai UNet (154: its 23 biases were once left out)
    let checked = ok(Command::new(bin("unet-train"))
        .args(["--check-device", "--device", "cpu"])
        .output()
        .unwrap());
    stderr_has(&checked, "model fastai (train mode): gradients of 154 parameters");
    stderr_has(&checked, "49 of 49 results within their limit");
    usage_error(
        train(&m, &tmp.path().join("r3"), &["--device", "wgpu:x"])
            .output()
            .unwrap(),
        "wgpu or wgpu:N",
    );
    // usage errors exit 2
    usage_error(
        train(&m, &tmp.path().join("r3"), &["--lr", "fast"]).output().unwrap(),
        "--lr",
    );
    usage_error(
        train(&m, &tmp.path().join("r3"), &["--arch", "vgg"]).output().unwrap(),
        "--arch",
    );

    // a manifest without a split
    let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&m).unwrap()).unwrap();
    v["items"][3].as_object_mut().unwrap().remove("split");
    let nosplit = tmp.path().join("nosplit.json");
    std::fs::write(&nosplit, v.to_string()).unwrap();
    fails(
        train(&nosplit, &tmp.path().join("r4"), &[]).output().unwrap(),
        "has no `split`: run split first",
    );
    // a missing pretrained file
    fails(
        train(&m, &tmp.path().join("r5"), &["--pretrained", "nope.pth"])
            .output()
            .unwrap(),
        "nope.pth",
    );
    for r in ["r1", "r2", "r4", "r5"] {
        assert!(!tmp.path().join(r).join("model.json").exists());
    }
}

/// Two real runs on one folder at once: the second refuses at once, naming the first (its
/// pid), and the first finishes undisturbed. An F16 weight file is converted (and logged).
#[test]
fn a_second_run_on_the_same_folder_is_refused_while_the_first_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let m = dataset(tmp.path(), 6);
    let out = tmp.path().join("run");
    let f16 = tmp.path().join("f16.safetensors");
    pretrained(&f16, |name, d, b| {
        if name == "conv1.weight" {
            *d = safetensors::Dtype::F16;
            *b = 0x2000u16.to_le_bytes().repeat(64 * 3 * 7 * 7); // 2^-7
        }
    });
    let mut first = Command::new(bin("unet-train"));
    first
        .arg("-i")
        .arg(&m)
        .arg("--out-dir")
        .arg(&out)
        .args([
            "--arch",
            "smp",
            "--size",
            "32",
            "--bs",
            "2",
            "--epochs",
            "6",
            "--no-lr-find",
            "--lr",
            "1e-3",
        ])
        .arg("--pretrained")
        .arg(&f16)
        .stderr(std::process::Stdio::piped());
    let child = first.spawn().unwrap();
    let lock = tmp.path().join(".run.lock");
    let t0 = std::time::Instant::now();
    while !std::fs::read_to_string(&lock).is_ok_and(|s| s.contains(&format!("pid {}", child.id()))) {
        assert!(t0.elapsed().as_secs() < 60, "the first run never took its lock");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    fails(
        train(&m, &out, &["--force"]).output().unwrap(),
        &format!("being written by another run (pid {}, unet-train", child.id()),
    );
    let done = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&done.stderr);
    assert!(done.status.success(), "{err}");
    assert!(err.contains("converted F16 tensors to F32"), "{err}");
    assert!(out.join("model.json").is_file());
}

#[test]
fn auto_takes_a_long_sweeps_valley_and_the_loss_is_recorded() {
    let tmp = tempfile::tempdir().unwrap();
    let m = dataset(tmp.path(), 8);
    let recipe = tmp.path().join("long.json");
    std::fs::write(
        &recipe,
        r#"{"patience": null, "loss": "ce+dice", "steps": [{"lr_find": {"num_it": 60}},
            {"fit_one_cycle": {"epochs": 1, "lr_max": "auto", "lr_fallback": 5e-4}}]}"#,
    )
    .unwrap();
    let out = tmp.path().join("run");
    stderr_has(
        &ok(train_with(&m, &out, &recipe).output().unwrap()),
        "from lr_find's valley",
    );
    let info = unet::model_dir::ModelInfo::read(&out).unwrap();
    assert_eq!(info.recipe.loss, unet::training::loss::Loss::CrossEntropyDice);
    assert_eq!(info.lr_find[0].untrusted, None, "{:?}", info.lr_find[0]);
    let valley = info.lr_find[0].suggestions.as_ref().unwrap().valley;
    assert_eq!(info.fit_lrs[0].lr.source, unet::training::phase::LrSource::Valley);
    assert!((info.fit_lrs[0].lr.lr_max[2] - valley).abs() <= valley * 1e-12);
    // the summary names the loss and where the fit's rate came from
    let said = ok(summary(&out));
    stderr_has(&said, "ce+dice loss");
    stderr_has(&said, "fit phase: lr_max");
    stderr_has(&said, "from the valley");
    // a loss that is not one of fastai's: bad usage, with the choices
    let mut c = Command::new(bin("unet-train"));
    c.arg("-i")
        .arg(&m)
        .arg("--out-dir")
        .arg(tmp.path().join("never"))
        .args(["--loss", "bce"]);
    usage_error(c.output().unwrap(), "ce, dice, focal, ce+dice");
    assert!(!tmp.path().join("never").exists());
}

#[test]
fn a_closed_stderr_does_not_end_a_training() {
    // `unet-train ... 2>&1 | head -1`: the reader goes away after the first line
    let d = tempfile::tempdir().unwrap();
    let m = dataset(d.path(), 6);
    let out = d.path().join("model");
    let mut child = train(&m, &out, &[])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stderr.take());
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
    assert!(out.join("model.json").is_file());
}
