//! Training steps and fastai's `lr_find` over any of the UNets.

use crate::kernels::TrainBackend;
use anyhow::Result;
use burn::module::AutodiffModule;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};

use facepipe_core::metrics::{self, Confusion};

use crate::data::loader::{Batch, SplitSet, batches};
use crate::training::loss::{Loss, Objective};
use crate::training::optim::GroupAdam;
use crate::training::phase::Valley;
use crate::training::schedule::{LossSmoother, OneCycle, lr_find_lr, position, suggest};

pub use crate::model::Infer;

/// A trainable network whose inference twin (no autodiff: BatchNorm uses running statistics)
/// can also run.
pub trait Segmenter<B: TrainBackend>:
    AutodiffModule<B, InnerModule: Infer<B::InnerBackend>> + Infer<B> + Clone
{
}

impl<B: TrainBackend, M> Segmenter<B> for M where
    M: AutodiffModule<B, InnerModule: Infer<B::InnerBackend>> + Infer<B> + Clone
{
}

/// A batch as tensors on `device` (any backend: training and inference share it).
pub fn to_tensors<B: Backend>(b: &Batch, device: &B::Device) -> (Tensor<B, 4>, Tensor<B, 3, Int>) {
    let x = Tensor::from_data(TensorData::new(b.images.clone(), [b.n, 3, b.size, b.size]), device);
    let y = Tensor::from_data(TensorData::new(b.masks.clone(), [b.n, b.size, b.size]), device);
    (x, y)
}

/// One optimiser step on a batch; returns the updated network and the batch loss.
pub fn train_step<B: TrainBackend, M: Segmenter<B>>(
    net: M,
    opt: &mut GroupAdam<B>,
    batch: &Batch,
    lrs: [f64; 3],
    beta1: f64,
    loss: Loss,
    device: &B::Device,
) -> (M, f64) {
    let (x, y) = to_tensors::<B>(batch, device);
    let loss = loss.compute(net.logits(x), y);
    let value = loss.clone().into_scalar();
    let value: f64 = burn::tensor::ElementConversion::elem(value);
    let grads = loss.backward();
    (opt.step(net, &grads, lrs, beta1), value)
}

pub use facepipe_formats::model::{EpochRecord, LrFind};

/// Adam's β1 before any one-cycle schedule has set it (fastai's `Adam(mom=0.9)`).
pub const ADAM_BETA1: f64 = 0.9;

/// fastai's `lr_find`: an exponential sweep from `start` to `end` over `num_it` training
/// batches (the same rate for every group; β1 as the optimiser holds it: `beta1`, 0.9 before
/// any fit, the last one-cycle momentum after one), stopping when the smoothed loss exceeds
/// four times the best. A NaN loss does not stop fastai's sweep, but its smoothed loss stays
/// NaN from there on; the sweep records those points as NaN without training on (the same
/// record) and the suggestions are cut at the first NaN, as fastai's are. It trains copies:
/// the network and the optimiser given are left exactly as they were.
///
/// `fresh` is a newly built network of the same architecture that receives `net`'s weights and
/// statistics for the sweep. (burn's `clone` shares BatchNorm running statistics, whose storage
/// is reference-counted and updated in place, so a sweep on a clone would move the original's
/// statistics, to NaN when it diverges.)
#[allow(clippy::too_many_arguments)] // the sweep's own settings, each a different kind
pub fn lr_find<B: TrainBackend, M: Segmenter<B>>(
    net: &M,
    fresh: M,
    opt: &GroupAdam<B>,
    beta1: f64,
    loss: Loss,
    mut batches: impl FnMut(usize) -> Result<Batch>,
    sweep: &crate::training::recipe::LrFindStep,
    device: &B::Device,
) -> Result<LrFind> {
    let (start, end, num_it) = (sweep.start_lr, sweep.end_lr, sweep.num_it);
    let mut net = fresh.load_record(net.clone().into_record());
    let mut opt = opt.clone();
    let mut smoother = LossSmoother::default();
    let (mut lrs, mut losses) = (Vec::new(), Vec::new());
    for i in 0..num_it {
        let lr = lr_find_lr(start, end, i, num_it);
        let batch = batches(i)?;
        let (next, value) = train_step(net, &mut opt, &batch, [lr; 3], beta1, loss, device);
        net = next;
        let (smooth, stop) = smoother.push(value);
        lrs.push(lr);
        losses.push(smooth);
        if smooth.is_nan() {
            // NaN from here to the end, as fastai records it
            lrs.extend((i + 1..num_it).map(|j| lr_find_lr(start, end, j, num_it)));
            losses.resize(lrs.len(), f64::NAN);
            break;
        }
        if stop {
            break;
        }
    }
    let suggestions = suggest(&lrs, &losses, num_it);
    let finite = losses.iter().take_while(|l| l.is_finite()).count();
    let untrusted = match Valley::judge(&losses[..finite], num_it, suggestions.as_ref().map(|s| s.valley)) {
        Valley::Trusted(_) => None,
        Valley::Untrusted(why) => Some(why),
    };
    Ok(LrFind {
        lrs,
        losses,
        suggestions,
        untrusted,
    })
}

/// Segmentation scores accumulated over a whole set (global sums, as fastai's `DiceMulti`),
/// with the mean loss.
#[derive(Clone, Debug, PartialEq)]
pub struct Scores {
    pub loss_sum: f64,
    pub confusion: Confusion,
}

impl Scores {
    pub fn new(n_classes: usize) -> Self {
        Scores {
            loss_sum: 0.0,
            confusion: Confusion::new(n_classes),
        }
    }

    /// Adds a batch of predictions against labels (255 ignored) with its mean loss.
    pub fn add(&mut self, pred: &[i64], truth: &[i64], mean_loss: f64) {
        let before = self.confusion.pixels();
        for (&p, &t) in pred.iter().zip(truth) {
            self.confusion.add_pixel(p as u8, t as u8);
        }
        self.loss_sum += mean_loss * (self.confusion.pixels() - before) as f64;
    }

    /// Labelled pixels scored.
    pub fn pixels(&self) -> u64 {
        self.confusion.pixels()
    }

    pub fn loss(&self) -> f64 {
        self.loss_sum / self.pixels().max(1) as f64
    }

    pub fn pixel_accuracy(&self) -> f64 {
        self.confusion.pixel_accuracy().unwrap_or(0.0)
    }

    /// Per-class dice, `None` for a class absent from both prediction and truth.
    pub fn dice(&self) -> Vec<Option<f64>> {
        self.confusion.dice()
    }

    /// Per-class IoU, `None` for a class absent from both.
    pub fn iou(&self) -> Vec<Option<f64>> {
        self.confusion.iou()
    }
}

/// Mean over the classes present (fastai's `DiceMulti` skips NaN), leaving out `except`; 0
/// when none is.
pub fn mean_present(v: &[Option<f64>], except: Option<usize>) -> f64 {
    metrics::mean_present(v, except).unwrap_or(0.0)
}

/// Runs the inference twin of `net` over batches and scores it.
pub fn evaluate<B: TrainBackend, M: Segmenter<B>>(
    net: &M,
    batches: impl Iterator<Item = Result<Batch>>,
    n_classes: usize,
    loss: Loss,
    device: &B::Device,
) -> Result<Scores> {
    let inner = net.valid();
    let mut scores = Scores::new(n_classes);
    for b in batches {
        let b = b?;
        let (x, y) = to_tensors::<B::InnerBackend>(&b, device);
        let logits = inner.logits(x);
        let value: f64 = burn::tensor::ElementConversion::elem(loss.compute(logits.clone(), y).into_scalar());
        let pred: Vec<i64> = logits
            .argmax(1)
            .into_data()
            .convert::<i64>()
            .to_vec::<i64>()
            .map_err(|e| anyhow::anyhow!("reading predictions: {e}"))?;
        scores.add(&pred, &b.masks, value);
    }
    Ok(scores)
}

/// What a fit trains on, for how long, and under which name its epochs are recorded.
#[derive(Clone, Debug)]
pub struct FitData<'a> {
    pub data: &'a SplitSet,
    pub epochs: usize,
    /// Recorded in each [`EpochRecord`] (e.g. `frozen`, `unfrozen`, `fit`).
    pub phase: &'a str,
    pub bs: usize,
    pub size: u32,
    pub seed: u64,
    /// Added to the epoch number when deriving random streams, so that the phases of a
    /// recipe (fine_tune's frozen epoch, then the unfrozen ones) see different crops.
    pub epoch_offset: u64,
    /// The first epoch to run (a resumed fit skips the epochs it has done; the schedule
    /// positions are those of the whole fit).
    pub start_epoch: usize,
    /// The training loss (also the validation loss).
    pub loss: Loss,
    /// The background class, left out of the `_fg` means.
    pub background: Option<usize>,
    /// Advanced once per training batch (hidden when not on a terminal).
    pub progress: indicatif::ProgressBar,
}

/// fastai's `fit_one_cycle`: learning rates and β1 from the schedule at every training batch,
/// evaluation after every epoch. `on_epoch` sees each record, the network and the optimiser
/// and returns whether to stop (early stopping, checkpoints and best-model keeping live there).
pub fn fit_one_cycle<B: TrainBackend, M: Segmenter<B>>(
    mut net: M,
    opt: &mut GroupAdam<B>,
    fit: &FitData,
    sched: &OneCycle,
    device: &B::Device,
    mut on_epoch: impl FnMut(&EpochRecord, &M, &GroupAdam<B>) -> Result<bool>,
) -> Result<M> {
    anyhow::ensure!(
        sched.lr_max.len() == 3,
        "the schedule needs one learning rate per group (3)"
    );
    let (data, epochs) = (fit.data, fit.epochs);
    let n_iter = data.train.len() / fit.bs;
    if n_iter == 0 {
        anyhow::bail!("{} training items make no full batch of {}", data.train.len(), fit.bs);
    }
    for e in fit.start_epoch..epochs {
        let t0 = std::time::Instant::now();
        fit.progress.reset();
        fit.progress.set_length(n_iter as u64);
        fit.progress
            .set_prefix(format!("{} epoch {}/{epochs}", fit.phase, e + 1));
        let (mut sum, mut count, mut last) = (0.0, 0usize, [0.0; 3]);
        let epoch_seed = fit.epoch_offset + e as u64;
        for (i, b) in batches(
            data.train.clone(),
            fit.bs,
            fit.size,
            data.n_classes,
            true,
            fit.seed,
            epoch_seed,
        )
        .enumerate()
        {
            let (lrs, mom) = sched.at(position(e, i, epochs, n_iter));
            last = [lrs[0], lrs[1], lrs[2]];
            let (next, loss) = train_step(net, opt, &b?, last, mom, fit.loss, device);
            net = next;
            sum += loss;
            count += 1;
            fit.progress.inc(1);
            fit.progress.set_message(format!("loss {loss:.4}"));
        }
        let trained = t0.elapsed();
        let scores = evaluate(
            &net,
            batches(data.valid.clone(), fit.bs, fit.size, data.n_classes, false, fit.seed, 0),
            data.n_classes,
            fit.loss,
            device,
        )?;
        // where an epoch's time goes (`-v`): the steps (loader included) and the validation
        log::debug!(
            "{} epoch {}: {count} training steps {:.2} s, validation of {} items {:.2} s",
            fit.phase,
            e + 1,
            trained.as_secs_f64(),
            data.valid.len(),
            (t0.elapsed() - trained).as_secs_f64()
        );
        let (dice, iou) = (scores.dice(), scores.iou());
        let fg = |v: &[Option<f64>]| mean_present(v, fit.background);
        let rec = EpochRecord {
            mean_dice_fg: fg(&dice),
            mean_iou_fg: fg(&iou),
            phase: fit.phase.to_string(),
            epoch: e,
            train_loss: sum / count.max(1) as f64,
            valid_loss: scores.loss(),
            mean_dice: mean_present(&dice, None),
            mean_iou: mean_present(&iou, None),
            dice,
            iou,
            pixel_accuracy: scores.pixel_accuracy(),
            lrs: last,
            seconds: t0.elapsed().as_secs_f64(),
            size: fit.size,
        };
        if on_epoch(&rec, &net, opt)? {
            break;
        }
    }
    Ok(net)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_on_hand_made_masks() {
        let mut s = Scores::new(4);
        // truth:  0 0 1 1 255 ; pred: 0 1 1 1 3   (class 2 absent from both, class 3 only
        // predicted on an ignored pixel, so absent too)
        s.add(&[0, 1, 1, 1, 3], &[0, 0, 1, 1, 255], 0.5);
        assert_eq!(s.pixels(), 4);
        assert!((s.pixel_accuracy() - 0.75).abs() < 1e-12);
        let dice = s.dice();
        assert_eq!(dice[0], Some(2.0 * 1.0 / (1.0 + 2.0)));
        assert_eq!(dice[1], Some(2.0 * 2.0 / (3.0 + 2.0)));
        assert_eq!((dice[2], dice[3]), (None, None));
        let iou = s.iou();
        assert_eq!(iou[0], Some(0.5));
        assert_eq!(iou[1], Some(2.0 / 3.0));
        assert!((mean_present(&dice, None) - (2.0 / 3.0 + 0.8) / 2.0).abs() < 1e-12);
        assert!((s.loss() - 0.5).abs() < 1e-12);
        // a batch of only ignored pixels changes nothing
        let before = s.clone();
        s.add(&[1, 1], &[255, 255], 9.0);
        assert_eq!(s, before);
    }
}
