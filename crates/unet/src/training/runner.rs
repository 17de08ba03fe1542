//! The recipe runner: one training run in a model directory, phase by phase.
//!
//! [`Runner::open`] checks everything and either resumes the run in the folder or starts a new
//! one (writing nothing before every check has passed). [`Runner::run`] then takes the
//! recipe's phases in order — [`Runner::lr_find`] for a sweep, [`Runner::cycle`] for a
//! one-cycle fit — and [`Runner::finish`] writes the final weights and `model.json`. Each
//! phase ends, and each epoch of a fit ends, with a checkpoint (`checkpoint/state.json`
//! written last, after the files it names), so a run killed at any moment resumes from its
//! last completed step and goes on exactly as it would have.

use std::fs;
use std::path::PathBuf;

use anyhow::{Context, Result, bail, ensure};
use facepipe_core::io::{self, sha256_hex};
use facepipe_core::out::Outputs;

use super::{Outcome, TrainConfig};
use crate::data::loader::{SplitSet, SweepBatches};
use crate::data::{IMAGENET_MEAN, IMAGENET_STD};
use crate::device::DeviceSpec;
use crate::kernels::TrainBackend;
use crate::model::weights::load_pretrained;
use crate::model::{Architecture, start_as_on_cpu};
use crate::model_dir::{
    FitLr, ModelInfo, Preprocessing, Pretrained, WeightFiles, inspect_dir, load_weights, save_weights, write_json,
};
use crate::training::checkpoint::{Progress, RunFile, Settings, load_adam, settings_diff};
use crate::training::fit::{EpochRecord, FitData, Segmenter, fit_one_cycle, lr_find};
use crate::training::optim::GroupAdam;
use crate::training::phase::{Freeze, LrSource, Phase, ResolvedLr, Valley};
use crate::training::recipe::Expand;
use crate::training::recipe::LrFindStep;
use crate::training::schedule::EarlyStopping;
use facepipe_formats::tag;

/// What every phase reads and none changes.
struct Ctx<'a, B: TrainBackend> {
    cfg: &'a TrainConfig,
    device: &'a B::Device,
    data: SplitSet,
    phases: Vec<Phase>,
    /// `checkpoint/` in the run folder.
    ckpt: PathBuf,
    /// `checkpoint/state.json`.
    state_file: PathBuf,
    /// The class foreground scores leave out (a first class named "background").
    background: Option<usize>,
}

/// What the phases advance.
struct State {
    progress: Progress,
    pretrained: Option<Pretrained>,
    /// Epochs trained in all phases so far; numbers the checkpoint files.
    epochs_total: usize,
    /// The last epoch checkpoint's durable writes (optimiser file, `best.bpk`, `state.json`,
    /// removal of the previous epoch's files), finishing in the background while the next
    /// epoch trains; [`State::settle`] waits for them before anything else touches the run
    /// folder.
    pending: Option<std::thread::JoinHandle<Result<()>>>,
}

/// A run, opened: ready to take its remaining phases.
pub(crate) struct Runner<'a, B: TrainBackend, M> {
    /// The run folder, locked against a second run until the runner is dropped.
    _outputs: Outputs,
    ctx: Ctx<'a, B>,
    opt: GroupAdam<B>,
    state: State,
    _model: std::marker::PhantomData<M>,
}

/// What [`Runner::open`] found (made once per run: the size of its variants does not matter).
#[allow(clippy::large_enum_variant)]
pub(crate) enum Opened<'a, B: TrainBackend, M> {
    /// `--resume` on a run that had finished: its model, nothing to do.
    Finished(Outcome),
    /// A run to take on, with the model as it stands.
    Ready(Runner<'a, B, M>, M),
}

/// The checked inputs of a run, before anything is written.
struct Inputs {
    data: SplitSet,
    phases: Vec<Phase>,
    settings: Settings,
    pretrained_bytes: Option<Vec<u8>>,
}

/// Reads and checks the manifest, the recipe and `--pretrained`; nothing is written.
fn check_inputs(cfg: &TrainConfig) -> Result<Inputs> {
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
    if let Some(size) = phases
        .iter()
        .rev()
        .find(|p| p.epochs() > 0)
        .and_then(|p| p.size(cfg.size))
    {
        ensure!(
            size == cfg.size,
            "recipe: the last fit that trains is at size {size}, not the model's --size {}: the saved model is the one fitted at --size (end progressive resizing at it)",
            cfg.size
        );
    }
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
    Ok(Inputs {
        data,
        phases,
        settings,
        pretrained_bytes,
    })
}

/// Reads a JSON file of the run folder, saying what it is when it cannot.
fn read_json<T: serde::de::DeserializeOwned>(path: &std::path::Path, missing: impl FnOnce() -> String) -> Result<T> {
    let text = fs::read_to_string(path).with_context(missing)?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

impl<B: TrainBackend, M> Drop for Runner<'_, B, M> {
    /// A run that ends early (an error, `--halt-after-epochs`) still completes its last
    /// checkpoint, before the folder's lock goes with the fields.
    fn drop(&mut self) {
        if let Err(e) = self.state.settle() {
            log::error!("{e:#}");
        }
    }
}

impl<'a, B, M> Runner<'a, B, M>
where
    B: TrainBackend,
    M: Segmenter<B> + Architecture<B>,
{
    /// Checks the inputs, seeds the backend, builds the model and resumes the run in
    /// `cfg.out_dir` (`cfg.resume`) or starts a new one there.
    pub(crate) fn open(cfg: &'a TrainConfig, device: &'a B::Device) -> Result<Opened<'a, B, M>> {
        // held to the end: a second run on the same folder refuses, naming this one
        let mut outputs = Outputs::new("unet-train", cfg.force);
        outputs.lock(&cfg.out_dir)?;
        let inputs = check_inputs(cfg)?;
        let ckpt = cfg.out_dir.join("checkpoint");
        let background = inputs
            .data
            .classes
            .first()
            .filter(|c| c.name.eq_ignore_ascii_case("background"))
            .map(|_| 0);
        let ctx = Ctx {
            cfg,
            device,
            state_file: ckpt.join("state.json"),
            ckpt,
            data: inputs.data,
            phases: inputs.phases,
            background,
        };
        B::seed(device, cfg.seed);
        let mut net = M::build(ctx.data.n_classes, device);
        if cfg.device != DeviceSpec::Cpu {
            start_as_on_cpu(&mut net, cfg.arch, ctx.data.n_classes, cfg.seed)?;
        }
        if cfg.resume {
            Self::resume(outputs, ctx, &inputs.settings, net)
        } else {
            Self::start(outputs, ctx, inputs.settings, inputs.pretrained_bytes.as_deref(), net)
        }
    }

    /// `--resume`: the run's settings must be these; the model and optimiser come back from
    /// the last checkpoint.
    fn resume(outputs: Outputs, ctx: Ctx<'a, B>, settings: &Settings, mut net: M) -> Result<Opened<'a, B, M>> {
        let cfg = ctx.cfg;
        let dir = &cfg.out_dir;
        facepipe_core::out::sweep_temps_under(dir);
        let run_path = dir.join("run.json");
        let run: RunFile = read_json(&run_path, || {
            format!("--resume: reading {} (is this a unet-train run?)", run_path.display())
        })?;
        let diff = settings_diff(&run.settings, settings);
        ensure!(
            diff.is_empty(),
            "--resume: the run in {} was started with different settings ({}); use the same ones, or --force to start over",
            dir.display(),
            diff.join(", ")
        );
        let progress: Progress = read_json(&ctx.state_file, || {
            format!("--resume: no checkpoint to resume in {}", ctx.ckpt.display())
        })?;
        if progress.finished {
            return Ok(Opened::Finished(Outcome {
                info: ModelInfo::read(dir)?,
                already_done: true,
            }));
        }
        if let Some(w) = &progress.weights {
            load_weights(&mut net, &ctx.ckpt.join(w))?;
        } else if let Some(p) = &cfg.pretrained {
            // killed before the first checkpoint: start again from the same weights
            load_pretrained(&mut net, p, cfg.arch)?;
        }
        let mut opt = GroupAdam::<B>::new(&net);
        if let Some(o) = &progress.optimiser {
            opt.import(load_adam(&ctx.ckpt.join(o))?, ctx.device)?;
        }
        log::info!(
            "resuming {} at phase {} of {}, epoch {}",
            dir.display(),
            progress.phase + 1,
            ctx.phases.len(),
            progress.epochs_done
        );
        let state = State {
            epochs_total: progress.records.len(),
            progress,
            pretrained: run.pretrained,
            pending: None,
        };
        Ok(Opened::Ready(Self::new(outputs, ctx, opt, state), net))
    }

    /// A new run: the folder must be free (or ours, or `--force`); the ImageNet weights go in;
    /// only then is the folder claimed and `run.json` written.
    fn start(
        mut outputs: Outputs,
        ctx: Ctx<'a, B>,
        settings: Settings,
        pretrained_bytes: Option<&[u8]>,
        mut net: M,
    ) -> Result<Opened<'a, B, M>> {
        let cfg = ctx.cfg;
        let dir = &cfg.out_dir;
        let mut folder = inspect_dir(&mut outputs, dir, cfg.force)?;
        let mut pretrained = None;
        if let (Some(p), Some(bytes)) = (&cfg.pretrained, pretrained_bytes) {
            let report = load_pretrained(&mut net, p, cfg.arch)?;
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
        io::create_dir_all(&ctx.ckpt)?;
        write_json(
            &dir.join("run.json"),
            &RunFile {
                schema: tag::TRAIN_RUN.tag.into(),
                settings,
                manifest: cfg.manifest.display().to_string(),
                pretrained: pretrained.clone(),
            },
        )?;
        let opt = GroupAdam::<B>::new(&net);
        let state = State {
            progress: Progress::default(),
            pretrained,
            epochs_total: 0,
            pending: None,
        };
        Ok(Opened::Ready(Self::new(outputs, ctx, opt, state), net))
    }

    fn new(outputs: Outputs, ctx: Ctx<'a, B>, opt: GroupAdam<B>, state: State) -> Self {
        Runner {
            _outputs: outputs,
            ctx,
            opt,
            state,
            _model: std::marker::PhantomData,
        }
    }

    /// Takes the remaining phases in order, then [`Runner::finish`]es.
    pub(crate) fn run(mut self, mut net: M) -> Result<Outcome> {
        while let Some(phase) = self.ctx.phases.get(self.state.progress.phase).cloned() {
            net = match phase {
                Phase::LrFind {
                    start_lr,
                    end_lr,
                    num_it,
                } => {
                    let step = LrFindStep {
                        start_lr,
                        end_lr,
                        num_it,
                    };
                    self.lr_find(&net, &step)?;
                    net
                }
                Phase::Cycle { .. } => self.cycle(net, &phase)?,
            };
        }
        self.ctx.cfg.progress.finish_and_clear();
        self.finish(&net)
    }

    /// An lr_find sweep from the model as it stands (which it leaves unchanged); the sweep is
    /// recorded, `lr_find.csv`/`.png` rewritten, and the phase checkpointed.
    pub(crate) fn lr_find(&mut self, net: &M, step: &LrFindStep) -> Result<()> {
        let (cfg, data, device) = (self.ctx.cfg, &self.ctx.data, self.ctx.device);
        let k = self.state.progress.phase;
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
        cfg.progress.set_length(step.num_it as u64);
        cfg.progress.set_prefix("lr_find");
        let beta1 = self.state.progress.beta1.unwrap_or(crate::training::fit::ADAM_BETA1);
        let fresh = M::build(data.n_classes, device);
        let next = |_| {
            cfg.progress.inc(1);
            sweep.next()
        };
        let mut found = lr_find(net, fresh, &self.opt, beta1, cfg.recipe.loss, next, step, device)?;
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
        let progress = &mut self.state.progress;
        progress.lr_finds.push(found);
        super::outputs::write_lr_finds(&cfg.out_dir, &progress.lr_finds)?;
        progress.phase += 1;
        progress.epochs_done = 0;
        self.state.settle()?;
        write_json(&self.ctx.state_file, &self.state.progress)
    }

    /// A one-cycle fit (`phase` is a [`Phase::Cycle`]), from where a resumed run left it:
    /// every epoch is recorded and checkpointed; the phase ends after its epochs or at an early
    /// stop. `--halt-after-epochs` stops here with an error.
    pub(crate) fn cycle(&mut self, net: M, phase: &Phase) -> Result<M> {
        let Phase::Cycle {
            name,
            epochs,
            freeze,
            size,
            ..
        } = phase
        else {
            bail!("internal: cycle() was given a sweep");
        };
        let k = self.state.progress.phase;
        let valley = self.state.progress.lr_finds.last().map(Valley::of);
        let (sched, resolved) = phase
            .schedule(valley.as_ref())?
            .context("internal: a cycle has a schedule")?;
        if self.state.progress.epochs_done == 0 {
            self.begin_cycle(name, resolved, freeze);
        }
        let (ctx, state) = (&self.ctx, &mut self.state);
        let cfg = ctx.cfg;
        let fit = FitData {
            data: &ctx.data,
            epochs: *epochs,
            phase: name,
            bs: cfg.bs,
            size: size.unwrap_or(cfg.size),
            seed: cfg.seed,
            epoch_offset: ctx.phases[..k].iter().map(Phase::epochs).sum::<usize>() as u64,
            start_epoch: state.progress.epochs_done,
            loss: cfg.recipe.loss,
            background: ctx.background,
            progress: cfg.progress.clone(),
        };
        let mut halted = false;
        let net = fit_one_cycle(net, &mut self.opt, &fit, &sched, ctx.device, |rec, net, opt| {
            let stop = state.end_epoch(ctx, &sched, &fit, rec, net, opt)?;
            halted = cfg.halt_after_epochs == Some(state.epochs_total);
            Ok(stop || halted)
        })?;
        if halted {
            self.state.settle()?;
            bail!(
                "halted after {} epochs as asked (--halt-after-epochs); --resume continues",
                self.state.epochs_total
            );
        }
        if self.state.progress.phase == k {
            self.state.end_empty_phase(&self.ctx, &self.opt)?;
        }
        Ok(net)
    }

    /// A fit's first epoch: its learning rates are logged and recorded, the encoder frozen or
    /// unfrozen as the phase says, and early stopping starts afresh.
    fn begin_cycle(&mut self, name: &str, resolved: ResolvedLr, freeze: &Freeze) {
        let show = crate::training::recipe::show_groups(&resolved.lr_max);
        match (&resolved.reason, resolved.source) {
            (Some(why), _) => log::warn!("{name}: lr_max {show} ({why})"),
            (None, LrSource::Valley) => log::info!("{name}: lr_max {show} from lr_find's valley"),
            _ => {}
        }
        let progress = &mut self.state.progress;
        progress.fit_lrs.push(FitLr {
            phase: name.to_string(),
            lr: resolved,
        });
        match freeze {
            Freeze::Freeze => self.opt.freeze(),
            Freeze::Unfreeze => self.opt.unfreeze(),
            Freeze::Keep => {}
        }
        progress.stopper = self.ctx.cfg.recipe.patience.map(EarlyStopping::new);
    }

    /// The end of the run: `last` and `best` weights in both formats, then `model.json`
    /// (whose presence marks a complete model), then the finished checkpoint.
    pub(crate) fn finish(mut self, net: &M) -> Result<Outcome> {
        let dir = &self.ctx.cfg.out_dir;
        ensure!(
            !self.state.progress.records.is_empty(),
            "the recipe trained no epoch: nothing to save"
        );
        self.state.settle()?;
        save_weights(net, dir, "last", Some(self.ctx.cfg.arch))?;
        let mut best_net = M::build(self.ctx.data.n_classes, self.ctx.device);
        load_weights(&mut best_net, &dir.join("best.bpk"))?;
        save_weights(&best_net, dir, "best", Some(self.ctx.cfg.arch))?;
        let info = self.model_info()?;
        // model.json first: a run killed in between has it and reruns nothing but this ending
        write_json(&dir.join("model.json"), &info)?;
        self.state.progress.finished = true;
        write_json(&self.ctx.state_file, &self.state.progress)?;
        Ok(Outcome {
            info,
            already_done: false,
        })
    }

    /// `model.json`'s content for the run as it ends.
    fn model_info(&self) -> Result<ModelInfo> {
        let (cfg, data, progress) = (self.ctx.cfg, &self.ctx.data, &self.state.progress);
        let record = |i: Option<usize>| -> Option<EpochRecord> { progress.records.get(i?).cloned() };
        let best = record(progress.best).context("internal: no best epoch recorded")?;
        let last = record(progress.records.len().checked_sub(1)).context("internal: no epoch recorded")?;
        Ok(ModelInfo {
            schema: tag::MODEL.tag.into(),
            schema_version: tag::MODEL.version,
            arch: cfg.arch,
            classes: data.classes.clone(),
            preprocessing: Preprocessing {
                input_size: cfg.size,
                crop: "centre square of side min(width, height)".into(),
                resize: "antialiased bilinear (triangle filter) to input_size x input_size".into(),
                mean: IMAGENET_MEAN,
                std: IMAGENET_STD,
            },
            best: WeightFiles::hashed(&cfg.out_dir, "best", best)?,
            last: WeightFiles::hashed(&cfg.out_dir, "last", last)?,
            recipe: cfg.recipe.clone(),
            manifest: cfg.manifest.display().to_string(),
            manifest_sha256: data.input.sha256.clone(),
            n_train: data.train.len(),
            n_valid: data.valid.len(),
            batch_size: cfg.bs,
            seed: cfg.seed,
            device: cfg.device.to_string(),
            pretrained: self.state.pretrained.clone(),
            lr_find: progress.lr_finds.clone(),
            fit_lrs: progress.fit_lrs.clone(),
            epochs: progress.records.len(),
            facepipe_version: env!("CARGO_PKG_VERSION").into(),
        })
    }
}

mod epoch;
#[cfg(test)]
mod tests;
