//! Training, the fastai way: the recipe and its phases, the steps, the optimiser, the schedules
//! and the losses, and the runner that takes a recipe through a model directory.
//!
//! * [`recipe`]: a training recipe (fine_tune, lr_find, fit_one_cycle) as JSON, expanded into
//!   resumable phases.
//! * [`phase`]: what a recipe expands into (one fit or one sweep) and how a fit's learning
//!   rates are settled.
//! * [`fit`]: training steps, `lr_find` (which leaves the model as it was), evaluation with
//!   global-sum dice/IoU and pixel accuracy, and `fit_one_cycle` with per-epoch records.
//! * [`optim`]: fastai's Adam over three parameter groups, with freeze/unfreeze.
//! * [`schedule`]: one-cycle, slice, lr_find and early stopping, in fastai's numbers.
//! * [`loss`]: the training losses (fastai's cross-entropy, dice, focal), ignoring label 255.
//! * `runner`: a run's phases (lr_find, one-cycle fits, the end) over the model directory of
//!   [`crate::model_dir`], checkpointed so a killed run resumes exactly.
//! * `outputs`: what a run writes as it goes besides weights (`metrics.csv`, `loss.png`,
//!   `lr_find.csv`/`.png`).

pub mod checkpoint;
pub mod fit;
pub mod loss;
pub mod optim;
mod outputs;
pub mod phase;
pub mod recipe;
mod runner;
pub mod schedule;

pub use outputs::write_metrics;

use std::path::PathBuf;

use anyhow::Result;

use crate::device::{BackendTask, DeviceSpec};
use crate::kernels::TrainBackend;
use crate::model::{Arch, Architecture, FastaiUnet, SmpUnet};
use crate::model_dir::ModelInfo;
use fit::Segmenter;
use recipe::Recipe;
use runner::{Opened, Runner};

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

fn run_arch<B, M>(cfg: &TrainConfig, device: &B::Device) -> Result<Outcome>
where
    B: TrainBackend,
    M: Segmenter<B> + Architecture<B>,
{
    match Runner::<B, M>::open(cfg, device)? {
        Opened::Finished(outcome) => Ok(outcome),
        Opened::Ready(runner, net) => runner.run(net),
    }
}
