//! The recipe runner: a run's phases (lr_find, one-cycle fits, export) over the model directory
//! of [`crate::model_dir`].
//!
//! Every file is written to a temporary name and renamed, and the checkpoint's progress file is
//! written after the weights it points to: a run killed at any moment resumes (`--resume`) from
//! its last completed epoch, and continues exactly as the uninterrupted run would have (same
//! batches, same schedule positions, same optimiser state), so its `metrics.csv` is the same.

use std::fs;
use std::path::{Path, PathBuf};

use crate::kernels::{Kernels, TrainBackend};
use anyhow::{Context, Result, bail, ensure};
use burn::module::Module;
use burn::tensor::backend::Backend;
use facepipe_core::io::{self, sha256_hex, write_atomic};
use facepipe_core::palette::Class;
use serde::{Deserialize, Serialize};

use crate::device::{BackendTask, DeviceSpec};
use crate::loader::{Batch, SplitSet, batches};
use crate::model::{FastaiUnet, SmpUnet};
use crate::optim::GroupAdam;
use crate::recipe::{Freeze, LrSource, Phase, Recipe};
use crate::resnet::ResNet;
use crate::schedule::EarlyStopping;
use crate::train::{EpochRecord, FitData, LrFind, Segmenter, fit_one_cycle, lr_find};
use crate::weights::{LoadReport, load_resnet};

pub use crate::model_dir::*;

/// ImageNet statistics, as fastai's `imagenet_stats`.
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// The decoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    /// fastai's DynamicUnet (41.2 M parameters).
    Fastai,
    /// segmentation_models_pytorch's Unet decoder (24.4 M parameters).
    Smp,
}

impl std::str::FromStr for Arch {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "fastai" => Ok(Arch::Fastai),
            "smp" => Ok(Arch::Smp),
            _ => Err(format!("unknown arch {s:?}: use fastai or smp")),
        }
    }
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Arch::Fastai => "fastai",
            Arch::Smp => "smp",
        })
    }
}

/// A UNet that can be built for a number of classes and has the ResNet34 encoder.
pub trait Architecture<B: Backend>: Module<B> {
    fn build(n_classes: usize, device: &B::Device) -> Self;
    fn encoder_mut(&mut self) -> &mut ResNet<B>;
}

impl<B: Kernels> Architecture<B> for SmpUnet<B> {
    fn build(n: usize, device: &B::Device) -> Self {
        SmpUnet::new(n, device)
    }
    fn encoder_mut(&mut self) -> &mut ResNet<B> {
        &mut self.encoder
    }
}

impl<B: Kernels> Architecture<B> for FastaiUnet<B> {
    fn build(n: usize, device: &B::Device) -> Self {
        FastaiUnet::new(n, device)
    }
    fn encoder_mut(&mut self) -> &mut ResNet<B> {
        &mut self.encoder
    }
}

/// What to train, how, and where to write it.
#[derive(Clone, Debug)]
pub struct TrainConfig {
    pub manifest: PathBuf,
    pub out_dir: PathBuf,
    pub arch: Arch,
    pub size: u32,
    pub bs: usize,
    pub seed: u64,
    pub recipe: Recipe,
    pub pretrained: Option<PathBuf>,
    pub device: DeviceSpec,
    /// Replace an existing run in `out_dir`.
    pub force: bool,
    /// Continue the run in `out_dir` from its checkpoint.
    pub resume: bool,
    /// Stop (with an error) right after the checkpoint of this many epochs, as a kill would:
    /// for testing resume.
    pub halt_after_epochs: Option<usize>,
    /// Shows batches on a terminal (hidden otherwise).
    pub progress: indicatif::ProgressBar,
}

/// What a finished (or already finished) run reports.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub info: ModelInfo,
    /// The run was already complete (`--resume` on a finished run).
    pub already_done: bool,
}

/// Trains as `cfg` says on its device.
pub fn train(cfg: &TrainConfig) -> Result<Outcome> {
    crate::device::dispatch(cfg.device, Task(cfg))
}

struct Task<'a>(&'a TrainConfig);

impl BackendTask for Task<'_> {
    type Output = Outcome;
    fn run<B: TrainBackend>(self, device: B::Device) -> Result<Outcome> {
        match self.0.arch {
            Arch::Fastai => run_arch::<B, FastaiUnet<B>>(self.0, &device),
            Arch::Smp => run_arch::<B, SmpUnet<B>>(self.0, &device),
        }
    }
}

/// `metrics.csv`: one row per epoch; per-class columns named after the classes.
pub fn write_metrics(path: &Path, records: &[EpochRecord], classes: &[Class]) -> Result<()> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut header: Vec<String> = [
        "phase",
        "epoch",
        "train_loss",
        "valid_loss",
        "pixel_accuracy",
        "mean_dice",
        "mean_iou",
        "mean_dice_fg",
        "mean_iou_fg",
    ]
    .map(String::from)
    .to_vec();
    let word = facepipe_core::palette::column_name;
    header.extend(classes.iter().map(|c| format!("dice_{}", word(&c.name))));
    header.extend(classes.iter().map(|c| format!("iou_{}", word(&c.name))));
    header.extend(["lr_group0", "lr_group1", "lr_group2", "seconds"].map(String::from));
    w.write_record(&header)?;
    let opt = |v: &Option<f64>| v.map(|x| x.to_string()).unwrap_or_default();
    for r in records {
        let mut row = vec![
            r.phase.clone(),
            r.epoch.to_string(),
            r.train_loss.to_string(),
            r.valid_loss.to_string(),
            r.pixel_accuracy.to_string(),
            r.mean_dice.to_string(),
            r.mean_iou.to_string(),
            r.mean_dice_fg.to_string(),
            r.mean_iou_fg.to_string(),
        ];
        row.extend(r.dice.iter().map(opt));
        row.extend(r.iou.iter().map(opt));
        row.extend(r.lrs.iter().map(f64::to_string));
        row.push(format!("{:.3}", r.seconds));
        w.write_record(&row)?;
    }
    write_atomic(path, &w.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?)
}

fn plot_losses(path: &Path, records: &[EpochRecord]) -> Result<()> {
    use facepipe_plot::{LineChart, Series};
    let pts = |f: fn(&EpochRecord) -> f64| {
        records
            .iter()
            .enumerate()
            .map(|(i, r)| ((i + 1) as f64, f(r)))
            .collect()
    };
    let chart = LineChart {
        title: "loss per epoch".into(),
        x_label: "epoch (all phases)".into(),
        y_label: "cross-entropy".into(),
        log_x: false,
        series: vec![
            Series {
                name: "train".into(),
                points: pts(|r| r.train_loss),
                dots: false,
            },
            Series {
                name: "valid".into(),
                points: pts(|r| r.valid_loss),
                dots: false,
            },
        ],
        markers: vec![],
    };
    facepipe_plot::save_png(path, &chart.render(720, 420))
}

fn write_lr_finds(dir: &Path, finds: &[LrFind]) -> Result<()> {
    use facepipe_plot::{LineChart, Marker, Series};
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(["sweep", "iteration", "lr", "smoothed_loss"])?;
    for (k, f) in finds.iter().enumerate() {
        for (i, (lr, loss)) in f.lrs.iter().zip(&f.losses).enumerate() {
            w.write_record([k.to_string(), i.to_string(), lr.to_string(), loss.to_string()])?;
        }
    }
    write_atomic(
        &dir.join("lr_find.csv"),
        &w.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?,
    )?;
    let Some(last) = finds.last() else { return Ok(()) };
    let mut markers = vec![];
    if let Some(s) = &last.suggestions {
        for (name, x) in [("valley", s.valley), ("minimum/10", s.minimum), ("steep", s.steep)] {
            markers.push(Marker {
                x,
                label: format!("{name} {x:.2e}"),
            });
        }
    }
    let chart = LineChart {
        title: "lr_find".into(),
        x_label: "learning rate".into(),
        y_label: "smoothed loss".into(),
        log_x: true,
        series: vec![Series {
            name: "loss".into(),
            points: last.lrs.iter().copied().zip(last.losses.iter().copied()).collect(),
            dots: false,
        }],
        markers,
    };
    facepipe_plot::save_png(&dir.join("lr_find.png"), &chart.render(720, 420))
}

/// Training batches for lr_find: shuffled epochs one after another, from streams of their own.
struct SweepBatches {
    data: SplitSet,
    bs: usize,
    size: u32,
    seed: u64,
    stream: u64,
    epoch: u64,
    current: Option<Box<dyn Iterator<Item = Result<Batch>>>>,
}

impl SweepBatches {
    fn next(&mut self) -> Result<Batch> {
        loop {
            if let Some(it) = self.current.as_mut()
                && let Some(b) = it.next()
            {
                return b;
            }
            let it = batches(
                self.data.train.clone(),
                self.bs,
                self.size,
                self.data.n_classes,
                true,
                self.seed,
                self.stream + self.epoch,
            );
            self.epoch += 1;
            self.current = Some(Box::new(it));
        }
    }
}

fn run_arch<B, M>(cfg: &TrainConfig, device: &B::Device) -> Result<Outcome>
where
    B: TrainBackend,
    M: Segmenter<B> + Architecture<B>,
{
    let dir = &cfg.out_dir;
    // held to the end: a second run on the same folder refuses, naming this one
    let _lock = facepipe_core::out::lock_outputs("unet-train", [dir.as_path()])?;
    let data = SplitSet::read(&cfg.manifest)?;
    ensure!(
        !data.valid.is_empty(),
        "manifest {} has no validation items: early stopping and keeping the best model need a valid split",
        cfg.manifest.display()
    );
    ensure!(cfg.bs >= 1, "--bs must be at least 1");
    ensure!(
        data.train.len() >= cfg.bs,
        "manifest {}: {} training items make no full batch of {} (lower --bs)",
        cfg.manifest.display(),
        data.train.len(),
        cfg.bs
    );
    let phases = cfg.recipe.phases()?;
    data.validate()?;
    let pretrained_bytes = match &cfg.pretrained {
        Some(p) => Some(fs::read(p).with_context(|| format!("reading --pretrained {}", p.display()))?),
        None => None,
    };
    let settings = Settings {
        arch: cfg.arch,
        input_size: cfg.size,
        batch_size: cfg.bs,
        seed: cfg.seed,
        recipe: cfg.recipe.clone(),
        manifest_sha256: data.input.sha256.clone(),
        pretrained_sha256: pretrained_bytes.as_deref().map(sha256_hex),
        classes: data.classes.clone(),
    };
    let ckpt = dir.join("checkpoint");
    let state_path = ckpt.join("state.json");

    B::seed(device, cfg.seed);
    let mut net = M::build(data.n_classes, device);
    let mut pretrained = None;
    let (mut opt, mut progress);
    if cfg.resume {
        facepipe_core::out::sweep_temps_under(dir);
        let run_path = dir.join("run.json");
        let run: RunFile = serde_json::from_str(
            &fs::read_to_string(&run_path)
                .with_context(|| format!("--resume: reading {} (is this a unet-train run?)", run_path.display()))?,
        )
        .with_context(|| format!("parsing {}", run_path.display()))?;
        let diff = settings_diff(&run.settings, &settings);
        ensure!(
            diff.is_empty(),
            "--resume: the run in {} was started with different settings ({}); use the same ones, or --force to start over",
            dir.display(),
            diff.join(", ")
        );
        progress = serde_json::from_str::<Progress>(
            &fs::read_to_string(&state_path)
                .with_context(|| format!("--resume: no checkpoint to resume in {}", ckpt.display()))?,
        )
        .with_context(|| format!("parsing {}", state_path.display()))?;
        pretrained = run.pretrained.clone();
        if progress.finished {
            let info = ModelInfo::read(dir)?;
            return Ok(Outcome {
                info,
                already_done: true,
            });
        }
        if let Some(w) = &progress.weights {
            load_weights(&mut net, &ckpt.join(w))?;
        } else if let Some(p) = &cfg.pretrained {
            // killed before the first checkpoint: start again from the same weights
            load_resnet(net.encoder_mut(), p)?;
        }
        opt = GroupAdam::<B>::new(&net);
        if let Some(o) = &progress.optimiser {
            opt.import(load_adam(&ckpt.join(o))?, device)?;
        }
        log::info!(
            "resuming {} at phase {} of {}, epoch {}",
            dir.display(),
            progress.phase + 1,
            phases.len(),
            progress.epochs_done
        );
    } else {
        let mut folder = inspect_dir(dir, cfg.force)?;
        if let (Some(p), Some(bytes)) = (&cfg.pretrained, &pretrained_bytes) {
            let report: LoadReport = load_resnet(net.encoder_mut(), p)?;
            log::info!("--pretrained {}: {report}", p.display());
            pretrained = Some(Pretrained {
                file: p.display().to_string(),
                sha256: sha256_hex(bytes),
                applied: report.applied,
                missing: report.missing.clone(),
                unused: report.unused.clone(),
            });
        }
        // every check passed and the weights are in: only now is anything written
        folder.begin(std::iter::empty())?;
        io::create_dir_all(&ckpt)?;
        write_json(
            &dir.join("run.json"),
            &RunFile {
                format: RUN_FORMAT.into(),
                settings: settings.clone(),
                manifest: cfg.manifest.display().to_string(),
                pretrained: pretrained.clone(),
            },
        )?;
        opt = GroupAdam::<B>::new(&net);
        progress = Progress::default();
    }
    let background = data
        .classes
        .first()
        .filter(|c| c.name.eq_ignore_ascii_case("background"))
        .map(|_| 0);
    let mut halted = false;
    let mut epochs_total = progress.records.len();
    while progress.phase < phases.len() {
        let k = progress.phase;
        let phase = &phases[k];
        match phase {
            Phase::LrFind {
                start_lr,
                end_lr,
                num_it,
            } => {
                let mut sweep = SweepBatches {
                    data: data.clone(),
                    bs: cfg.bs,
                    size: cfg.size,
                    seed: cfg.seed,
                    stream: (1 << 40) + ((k as u64) << 20),
                    epoch: 0,
                    current: None,
                };
                cfg.progress.reset();
                cfg.progress.set_length(*num_it as u64);
                cfg.progress.set_prefix("lr_find");
                let mut found = lr_find(
                    &net,
                    M::build(data.n_classes, device),
                    &opt,
                    progress.beta1.unwrap_or(crate::train::ADAM_BETA1),
                    cfg.recipe.loss,
                    |_| {
                        cfg.progress.inc(1);
                        sweep.next()
                    },
                    &crate::recipe::LrFindStep {
                        start_lr: *start_lr,
                        end_lr: *end_lr,
                        num_it: *num_it,
                    },
                    device,
                )?;
                // the sweep stops at a non-finite loss; keep the finite points
                while found.losses.last().is_some_and(|l| !l.is_finite()) {
                    found.losses.pop();
                    found.lrs.pop();
                }
                cfg.progress.finish_and_clear();
                match &found.suggestions {
                    Some(s) => log::info!(
                        "lr_find: valley {:.2e}, minimum/10 {:.2e}, steep {:.2e} ({} iterations)",
                        s.valley,
                        s.minimum,
                        s.steep,
                        found.lrs.len()
                    ),
                    None => log::warn!(
                        "lr_find: no suggestion ({} iterations before the loss diverged are too few)",
                        found.lrs.len()
                    ),
                }
                progress.lr_finds.push(found);
                write_lr_finds(dir, &progress.lr_finds)?;
                progress.phase += 1;
                progress.epochs_done = 0;
                write_json(&state_path, &progress)?;
            }
            Phase::Cycle {
                name, epochs, freeze, ..
            } => {
                let valley = progress.lr_finds.last().map(LrFind::valley);
                let (sched, resolved) = phase.schedule(valley.as_ref())?.expect("a cycle has a schedule");
                if progress.epochs_done == 0 {
                    match (&resolved.reason, resolved.source) {
                        (Some(why), _) => log::warn!(
                            "{name}: lr_max {} ({why})",
                            crate::recipe::show_groups(&resolved.lr_max)
                        ),
                        (None, LrSource::Valley) => log::info!(
                            "{name}: lr_max {} from lr_find's valley",
                            crate::recipe::show_groups(&resolved.lr_max)
                        ),
                        _ => {}
                    }
                    progress.fit_lrs.push(FitLr {
                        phase: name.clone(),
                        lr: resolved,
                    });
                    match freeze {
                        Freeze::Freeze => opt.freeze(),
                        Freeze::Unfreeze => opt.unfreeze(),
                        Freeze::Keep => {}
                    }
                    progress.stopper = cfg.recipe.patience.map(EarlyStopping::new);
                }
                let offset: usize = phases[..k].iter().map(Phase::epochs).sum();
                let fit = FitData {
                    data: &data,
                    epochs: *epochs,
                    phase: name,
                    bs: cfg.bs,
                    size: cfg.size,
                    seed: cfg.seed,
                    epoch_offset: offset as u64,
                    start_epoch: progress.epochs_done,
                    loss: cfg.recipe.loss,
                    background,
                    progress: cfg.progress.clone(),
                };
                let n_iter = data.train.len() / cfg.bs;
                net = fit_one_cycle(net, &mut opt, &fit, &sched, device, |rec, net, opt| {
                    progress.beta1 = Some(
                        sched
                            .at(crate::schedule::position(
                                rec.epoch,
                                n_iter.max(1) - 1,
                                *epochs,
                                n_iter.max(1),
                            ))
                            .1,
                    );
                    ensure!(
                        rec.train_loss.is_finite() && rec.valid_loss.is_finite(),
                        "training diverged in phase {name}, epoch {}: train loss {}, valid loss {} (lower the learning rate)",
                        rec.epoch,
                        rec.train_loss,
                        rec.valid_loss
                    );
                    progress.records.push(rec.clone());
                    let idx = progress.records.len() - 1;
                    let improved = progress
                        .best
                        .is_none_or(|b| rec.valid_loss < progress.records[b].valid_loss);
                    let stop = match progress.stopper.as_mut() {
                        Some(s) => s.update(rec.valid_loss).1,
                        None => false,
                    };
                    cfg.progress.finish_and_clear();
                    log::info!(
                        "{name} epoch {}/{epochs}: train_loss {:.4} valid_loss {:.4} mean_iou {:.4} fg {:.4} pixel_acc {:.4} ({:.1} s){}{}",
                        rec.epoch + 1,
                        rec.train_loss,
                        rec.valid_loss,
                        rec.mean_iou,
                        rec.mean_iou_fg,
                        rec.pixel_accuracy,
                        rec.seconds,
                        if improved { ", best so far" } else { "" },
                        if stop { ", early stop" } else { "" }
                    );
                    // checkpoint: weights and optimiser, the best model (the same file), then
                    // the progress that names them
                    epochs_total += 1;
                    let stem = format!("epoch-{epochs_total:04}");
                    save_weights(net, &ckpt, &stem, false)?;
                    let adam = format!("{stem}.adam.safetensors");
                    save_adam(&opt.export()?, &ckpt.join(&adam))?;
                    if improved {
                        progress.best = Some(idx);
                        link_or_copy(&ckpt.join(format!("{stem}.bpk")), &dir.join("best.bpk"))?;
                    }
                    let old = (progress.weights.take(), progress.optimiser.take());
                    progress.weights = Some(format!("{stem}.bpk"));
                    progress.optimiser = Some(adam);
                    if stop || rec.epoch + 1 == *epochs {
                        progress.phase += 1;
                        progress.epochs_done = 0;
                    } else {
                        progress.epochs_done = rec.epoch + 1;
                    }
                    write_json(&state_path, &progress)?;
                    for f in [old.0, old.1].into_iter().flatten() {
                        let _ = fs::remove_file(ckpt.join(&f));
                    }
                    write_metrics(&dir.join("metrics.csv"), &progress.records, &data.classes)?;
                    plot_losses(&dir.join("loss.png"), &progress.records)?;
                    if cfg.halt_after_epochs == Some(epochs_total) {
                        halted = true;
                        return Ok(true);
                    }
                    Ok(stop)
                })?;
                if halted {
                    bail!("halted after {epochs_total} epochs as asked (--halt-after-epochs); --resume continues");
                }
                if progress.phase == k {
                    // a phase of no epochs: only its freeze/unfreeze happened; checkpoint that
                    let adam = format!("phase-{k:02}.adam.safetensors");
                    save_adam(&opt.export()?, &ckpt.join(&adam))?;
                    if let Some(old) = progress.optimiser.replace(adam) {
                        let _ = fs::remove_file(ckpt.join(old));
                    }
                    progress.phase = k + 1;
                    write_json(&state_path, &progress)?;
                }
            }
        }
    }
    cfg.progress.finish_and_clear();

    ensure!(
        !progress.records.is_empty(),
        "the recipe trained no epoch: nothing to save"
    );
    save_weights(&net, dir, "last", true)?;
    let mut best_net = M::build(data.n_classes, device);
    load_weights(&mut best_net, &dir.join("best.bpk"))?;
    save_weights(&best_net, dir, "best", true)?;
    let best = progress.best.expect("an epoch was recorded");
    let info = ModelInfo {
        format: MODEL_FORMAT.into(),
        format_version: MODEL_FORMAT_VERSION,
        arch: cfg.arch,
        classes: data.classes.clone(),
        preprocessing: Preprocessing {
            input_size: cfg.size,
            crop: "centre square of side min(width, height)".into(),
            resize: "antialiased bilinear (triangle filter) to input_size x input_size".into(),
            mean: IMAGENET_MEAN,
            std: IMAGENET_STD,
        },
        best: WeightFiles {
            burnpack: "best.bpk".into(),
            safetensors: "best.safetensors".into(),
            record: progress.records[best].clone(),
        },
        last: WeightFiles {
            burnpack: "last.bpk".into(),
            safetensors: "last.safetensors".into(),
            record: progress.records.last().expect("non-empty").clone(),
        },
        recipe: cfg.recipe.clone(),
        manifest: cfg.manifest.display().to_string(),
        manifest_sha256: data.input.sha256.clone(),
        n_train: data.train.len(),
        n_valid: data.valid.len(),
        batch_size: cfg.bs,
        seed: cfg.seed,
        device: cfg.device.to_string(),
        pretrained,
        lr_find: progress.lr_finds.clone(),
        fit_lrs: progress.fit_lrs.clone(),
        epochs: progress.records.len(),
        facepipe_version: env!("CARGO_PKG_VERSION").into(),
    };
    // model.json first: a run killed in between has it and reruns nothing but this ending
    write_json(&dir.join("model.json"), &info)?;
    progress.finished = true;
    write_json(&state_path, &progress)?;
    Ok(Outcome {
        info,
        already_done: false,
    })
}
