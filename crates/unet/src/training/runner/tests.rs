//! Tests of [`super`] (`runner`).

use std::path::Path;

use burn::backend::flex::FlexDevice;

use super::*;
use crate::device::{CpuBackend, DeviceSpec};
use crate::model::{Arch, SmpUnet};
use crate::training::fit::EpochRecord;

type Net = SmpUnet<CpuBackend>;

/// A split manifest of `n` 32×32 photos (PNG) and masks (TIFF) in `dir`, the last two valid:
/// a bright box (class 1) on a dark ground (class 0).
fn dataset(dir: &Path, n: usize) -> PathBuf {
    let mut rng = facepipe_core::rng::SplitMix64::new(11);
    let mut items = vec![];
    for i in 0..n {
        let (sx, sy) = (rng.below(16) as u32, rng.below(16) as u32);
        let inside = |x: u32, y: u32| (sx..sx + 10).contains(&x) && (sy..sy + 10).contains(&y);
        let mask = image::GrayImage::from_fn(32, 32, |x, y| image::Luma([u8::from(inside(x, y))]));
        let photo = image::RgbImage::from_fn(32, 32, |x, y| image::Rgb([if inside(x, y) { 220 } else { 60 }; 3]));
        photo.save(dir.join(format!("{i}.png"))).unwrap();
        mask.save(dir.join(format!("{i}.tif"))).unwrap();
        let split = if i < n - 2 { "train" } else { "valid" };
        items.push(serde_json::json!({"id": format!("s{i}"), "image": format!("{i}.png"), "mask": format!("{i}.tif"), "split": split}));
    }
    let classes =
        serde_json::json!([{"id":0,"name":"background","rgb":[0,0,0]},{"id":1,"name":"box","rgb":[255,255,255]}]);
    let m = serde_json::json!({"schema":"facepipe/dataset","schema_version":1,"classes":classes,"items":items,"provenance":[]});
    let p = dir.join("split.json");
    std::fs::write(&p, m.to_string()).unwrap();
    p
}

/// A run of `recipe` (JSON) on 4 training and 2 validation images, at 32 px, batch 2.
fn config(dir: &Path, recipe: &str) -> TrainConfig {
    TrainConfig {
        manifest: dataset(dir, 6),
        out_dir: dir.join("run"),
        arch: Arch::Smp,
        size: 32,
        bs: 2,
        seed: 7,
        recipe: crate::training::recipe::parse(recipe).unwrap(),
        pretrained: None,
        device: DeviceSpec::Cpu,
        force: false,
        resume: false,
        halt_after_epochs: None,
        progress: indicatif::ProgressBar::hidden(),
    }
}

fn open(cfg: &TrainConfig) -> (Runner<'_, CpuBackend, Net>, Net) {
    match Runner::<CpuBackend, Net>::open(cfg, &FlexDevice).unwrap() {
        Opened::Ready(r, net) => (r, net),
        Opened::Finished(_) => panic!("a new run opened as finished"),
    }
}

/// `checkpoint/state.json` as written.
fn saved(cfg: &TrainConfig) -> Progress {
    let path = cfg.out_dir.join("checkpoint/state.json");
    serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap()
}

/// The model's weights as burnpack bytes (identical weights give identical bytes).
fn weights(net: &Net, dir: &Path, stem: &str) -> Vec<u8> {
    save_weights(net, dir, stem, None).unwrap();
    fs::read(dir.join(format!("{stem}.bpk"))).unwrap()
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn open_writes_run_json_and_nothing_else_of_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(
        tmp.path(),
        r#"{"steps": [{"fit_one_cycle": {"epochs": 1, "lr_max": 1e-3}}]}"#,
    );
    let (runner, _) = open(&cfg);
    assert_eq!(names(&cfg.out_dir), [".unet-train", "checkpoint", "run.json"]);
    assert!(names(&cfg.out_dir.join("checkpoint")).is_empty());
    assert_eq!(runner.state.progress, Progress::default());
    assert_eq!(runner.ctx.background, Some(0));
}

#[test]
fn lr_find_records_the_sweep_and_leaves_the_model_as_it_was() {
    let tmp = tempfile::tempdir().unwrap();
    let recipe = r#"{"steps": [{"lr_find": {"num_it": 5}}, {"fit_one_cycle": {"epochs": 1, "lr_max": "auto"}}]}"#;
    let cfg = config(tmp.path(), recipe);
    let (mut runner, net) = open(&cfg);
    let before = weights(&net, tmp.path(), "before");
    let step = LrFindStep {
        start_lr: 1e-7,
        end_lr: 10.0,
        num_it: 5,
    };
    runner.lr_find(&net, &step).unwrap();
    assert_eq!(weights(&net, tmp.path(), "after"), before);
    let p = &runner.state.progress;
    assert_eq!((p.phase, p.epochs_done, p.lr_finds.len()), (1, 0, 1));
    assert!(!p.lr_finds[0].lrs.is_empty() && p.lr_finds[0].lrs.len() <= 5);
    assert_eq!(saved(&cfg), *p);
    let csv = fs::read_to_string(cfg.out_dir.join("lr_find.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + p.lr_finds[0].lrs.len());
    assert!(cfg.out_dir.join("lr_find.png").is_file());
    // no epoch trained: the run cannot end with a model
    let err = runner.finish(&net).unwrap_err().to_string();
    assert!(err.contains("trained no epoch"), "{err}");
}

#[test]
fn a_cycle_checkpoints_each_epoch_and_finish_writes_the_model() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(
        tmp.path(),
        r#"{"steps": [{"fit_one_cycle": {"epochs": 2, "lr_max": 1e-3}}]}"#,
    );
    let (mut runner, net) = open(&cfg);
    let phase = runner.ctx.phases[0].clone();
    let net = runner.cycle(net, &phase).unwrap();
    // the last epoch's checkpoint is still being written in the background
    assert!(runner.state.pending.is_some());
    runner.state.settle().unwrap();
    let p = runner.state.progress.clone();
    assert_eq!(
        (p.phase, p.epochs_done, p.records.len(), runner.state.epochs_total),
        (1, 0, 2, 2)
    );
    assert_eq!(p.fit_lrs.len(), 1);
    assert_eq!(p.weights.as_deref(), Some("epoch-0002.bpk"));
    assert_eq!(saved(&cfg), p);
    // only the last epoch's checkpoint is kept
    assert_eq!(
        names(&cfg.out_dir.join("checkpoint")),
        ["epoch-0002.adam.safetensors", "epoch-0002.bpk", "state.json"]
    );
    let best = p.best.unwrap();
    assert!(p.records.iter().all(|r| r.valid_loss >= p.records[best].valid_loss));
    let metrics = fs::read_to_string(cfg.out_dir.join("metrics.csv")).unwrap();
    assert_eq!(metrics.lines().count(), 3);
    assert!(cfg.out_dir.join("loss.png").is_file());

    let out = runner.finish(&net).unwrap();
    assert!(!out.already_done);
    assert_eq!((out.info.epochs, out.info.n_train, out.info.n_valid), (2, 4, 2));
    assert_eq!(out.info.best.record, p.records[best]);
    assert_eq!(out.info.last.record, p.records[1]);
    assert_eq!(ModelInfo::read(&cfg.out_dir).unwrap(), out.info);
    for f in ["best.bpk", "best.safetensors", "last.bpk", "last.safetensors"] {
        assert!(cfg.out_dir.join(f).is_file(), "{f}");
    }
    assert!(saved(&cfg).finished);
    // a finished run resumes as finished, with the same model
    let again = TrainConfig {
        resume: true,
        ..cfg.clone()
    };
    match Runner::<CpuBackend, Net>::open(&again, &FlexDevice).unwrap() {
        Opened::Finished(o) => assert!(o.already_done && o.info == out.info),
        Opened::Ready(..) => panic!("a finished run opened as ready"),
    }
}

#[test]
fn a_halted_cycle_resumes_at_its_next_epoch() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = config(
        tmp.path(),
        r#"{"steps": [{"fit_one_cycle": {"epochs": 2, "lr_max": 1e-3}}]}"#,
    );
    cfg.halt_after_epochs = Some(1);
    let (mut runner, net) = open(&cfg);
    let phase = runner.ctx.phases[0].clone();
    let err = runner.cycle(net, &phase).err().unwrap().to_string();
    assert!(err.contains("halted after 1 epochs"), "{err}");
    let halted = saved(&cfg);
    assert_eq!((halted.phase, halted.epochs_done, halted.records.len()), (0, 1, 1));
    // the folder stays locked while the runner lives: a second run refuses
    let e = Runner::<CpuBackend, Net>::open(&cfg, &FlexDevice)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("another run"), "{e}");
    drop(runner);
    let again = TrainConfig {
        resume: true,
        halt_after_epochs: None,
        ..cfg.clone()
    };
    let (runner, _) = open(&again);
    assert_eq!(runner.state.progress, halted);
    assert_eq!(runner.state.epochs_total, 1);
}

#[test]
fn a_fit_of_no_epochs_checkpoints_its_unfreezing() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(
        tmp.path(),
        r#"{"steps": [{"fine_tune": {"epochs": 0, "freeze_epochs": 1}}]}"#,
    );
    let (mut runner, net) = open(&cfg);
    let (frozen, unfrozen) = (runner.ctx.phases[0].clone(), runner.ctx.phases[1].clone());
    let net = runner.cycle(net, &frozen).unwrap();
    let _ = runner.cycle(net, &unfrozen).unwrap();
    let p = saved(&cfg);
    assert_eq!((p.phase, p.records.len(), p.fit_lrs.len()), (2, 1, 2));
    assert_eq!(p.optimiser.as_deref(), Some("phase-01.adam.safetensors"));
    assert_eq!(
        names(&cfg.out_dir.join("checkpoint")),
        ["epoch-0001.bpk", "phase-01.adam.safetensors", "state.json"]
    );
}

#[test]
fn progressive_resizing_fits_each_step_at_its_size_and_keeps_a_best_at_the_models() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = config(
        tmp.path(),
        r#"{"patience": null, "steps": [
            {"fit_one_cycle": {"epochs": 2, "lr_max": 1e-3, "size": 32}},
            {"fit_one_cycle": {"epochs": 1, "lr_max": 1e-3}}]}"#,
    );
    cfg.size = 64;
    let (runner, net) = open(&cfg);
    let out = runner.run(net).unwrap();
    let p = saved(&cfg);
    let sizes: Vec<u32> = p.records.iter().map(|r| r.size).collect();
    assert_eq!(sizes, [32, 32, 64]);
    // the only epoch at the model's size is the best, whatever the losses at 32 were
    assert_eq!(p.best, Some(2));
    assert_eq!(out.info.best.record.size, 64);
    assert_eq!(out.info.preprocessing.input_size, 64);
    let mut r = csv::Reader::from_path(cfg.out_dir.join("metrics.csv")).unwrap();
    let col = r.headers().unwrap().iter().position(|h| h == "size").unwrap();
    let sizes: Vec<String> = r.records().map(|x| x.unwrap()[col].to_string()).collect();
    assert_eq!(sizes, ["32", "32", "64"]);
}

#[test]
fn a_recipe_that_ends_at_another_size_than_the_models_is_refused_before_anything_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(
        tmp.path(),
        r#"{"steps": [{"fit_one_cycle": {"epochs": 1, "lr_max": 1e-3}},
                      {"fit_one_cycle": {"epochs": 1, "lr_max": 1e-3, "size": 64}},
                      {"fit_one_cycle": {"epochs": 0, "lr_max": 1e-3}}]}"#,
    );
    let err = match Runner::<CpuBackend, Net>::open(&cfg, &FlexDevice) {
        Err(e) => format!("{e:#}"),
        Ok(_) => panic!("a recipe ending at size 64 for a 32 px model was accepted"),
    };
    assert!(err.contains("size 64") && err.contains("--size 32"), "{err}");
    assert!(!cfg.out_dir.join("run.json").exists());
}

#[test]
fn the_best_epoch_is_only_taken_at_the_models_size() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(
        tmp.path(),
        r#"{"steps": [{"fit_one_cycle": {"epochs": 1, "lr_max": 1e-3}}]}"#,
    );
    let (mut runner, _) = open(&cfg);
    let rec = |size: u32, valid_loss: f64| EpochRecord {
        phase: "fit".into(),
        epoch: 0,
        train_loss: 1.0,
        valid_loss,
        dice: vec![],
        iou: vec![],
        mean_dice: 0.0,
        mean_iou: 0.0,
        mean_dice_fg: 0.0,
        mean_iou_fg: 0.0,
        pixel_accuracy: 0.0,
        lrs: [1e-3; 3],
        seconds: 1.0,
        size,
    };
    let s = &mut runner.state;
    // a lower loss at 16 px is never the best; the first epoch at 32 px is, then a lower one
    assert!(!s.record(&rec(16, 0.1), 32).0);
    assert_eq!(s.progress.best, None);
    assert!(s.record(&rec(32, 0.5), 32).0);
    assert!(!s.record(&rec(32, 0.6), 32).0);
    assert!(s.record(&rec(32, 0.4), 32).0);
    assert!(!s.record(&rec(16, 0.01), 32).0);
    assert_eq!(s.progress.best, Some(3));
    // a record from a checkpoint written before sizes were recorded counts as the model's
    assert!(s.record(&rec(0, 0.3), 32).0);
}
