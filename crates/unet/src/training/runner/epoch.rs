//! The end of each epoch of a fit: its record, the log line, the checkpoint, and the files
//! rewritten after it (`metrics.csv`, `loss.png`).

use std::fs;

use anyhow::{Result, ensure};

use super::{Ctx, State};
use crate::kernels::TrainBackend;
use crate::model_dir::{link_or_copy, save_weights, write_json};
use crate::training::checkpoint::save_adam;
use crate::training::fit::{EpochRecord, FitData, Segmenter};
use crate::training::optim::GroupAdam;
use crate::training::schedule::OneCycle;

impl State {
    /// After each epoch of a fit: records it (refusing a diverged one), logs it, checkpoints
    /// the model and optimiser (and `best.bpk` when it improved), then rewrites `metrics.csv`
    /// and `loss.png`. Returns whether early stopping says stop.
    pub(super) fn end_epoch<B: TrainBackend, M: Segmenter<B>>(
        &mut self,
        ctx: &Ctx<'_, B>,
        sched: &OneCycle,
        fit: &FitData,
        rec: &EpochRecord,
        net: &M,
        opt: &GroupAdam<B>,
    ) -> Result<bool> {
        let (name, epochs) = (fit.phase, fit.epochs);
        let n_iter = (ctx.data.train.len() / fit.bs).max(1);
        let at = crate::training::schedule::position(rec.epoch, n_iter - 1, epochs, n_iter);
        self.progress.beta1 = Some(sched.at(at).1);
        ensure!(
            rec.train_loss.is_finite() && rec.valid_loss.is_finite(),
            "training diverged in phase {name}, epoch {}: train loss {}, valid loss {} (lower the learning rate)",
            rec.epoch,
            rec.train_loss,
            rec.valid_loss
        );
        let (improved, stop) = self.record(rec, ctx.cfg.size);
        ctx.cfg.progress.finish_and_clear();
        let at_size = if rec.size == ctx.cfg.size {
            String::new()
        } else {
            format!(" at {0}x{0}", rec.size)
        };
        log::info!(
            "{name} epoch {}/{epochs}{at_size}: train_loss {:.4} valid_loss {:.4} mean_iou {:.4} fg {:.4} pixel_acc {:.4} ({:.1} s){}{}",
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
        let phase_over = stop || rec.epoch + 1 == epochs;
        let epochs_done = if phase_over { 0 } else { rec.epoch + 1 };
        let t0 = std::time::Instant::now();
        self.checkpoint(ctx, net, opt, improved, epochs_done, phase_over)?;
        let checkpointed = t0.elapsed();
        crate::training::outputs::write_metrics(
            &ctx.cfg.out_dir.join("metrics.csv"),
            &self.progress.records,
            &ctx.data.classes,
        )?;
        crate::training::outputs::plot_losses(&ctx.cfg.out_dir.join("loss.png"), &self.progress.records)?;
        log::debug!(
            "{name} epoch {}: checkpoint {:.2} s (its optimiser state finishes in the background), metrics.csv and loss.png {:.2} s",
            rec.epoch + 1,
            checkpointed.as_secs_f64(),
            (t0.elapsed() - checkpointed).as_secs_f64()
        );
        Ok(stop)
    }

    /// Adds an epoch's record; returns whether it is the best so far (lowest valid loss among
    /// the epochs at the model's size `model_size`: a loss at another size does not compare)
    /// and whether early stopping says stop.
    pub(super) fn record(&mut self, rec: &EpochRecord, model_size: u32) -> (bool, bool) {
        let p = &mut self.progress;
        p.records.push(rec.clone());
        let full = |r: &EpochRecord| r.size == model_size || r.size == 0;
        let improved = full(rec) && p.best.is_none_or(|b| rec.valid_loss < p.records[b].valid_loss);
        if improved {
            p.best = Some(p.records.len() - 1);
        }
        let stop = p.stopper.as_mut().is_some_and(|s| s.update(rec.valid_loss).1);
        (improved, stop)
    }

    /// An epoch's checkpoint: the weights here, then in the background (joined by
    /// [`State::settle`]) the optimiser, the best model (the same file), the progress that
    /// names them, and only after that the removal of the previous epoch's files. The order
    /// is what makes a run killed at any point resumable; the background is what keeps the
    /// optimiser file's durable write (half a second for 200 MB) off the training's time.
    fn checkpoint<B: TrainBackend, M: Segmenter<B>>(
        &mut self,
        ctx: &Ctx<'_, B>,
        net: &M,
        opt: &GroupAdam<B>,
        improved: bool,
        epochs_done: usize,
        phase_over: bool,
    ) -> Result<()> {
        self.settle()?;
        self.epochs_total += 1;
        let stem = format!("epoch-{:04}", self.epochs_total);
        save_weights(net, &ctx.ckpt, &stem, None)?;
        let adam = format!("{stem}.adam.safetensors");
        let saved = opt.export()?;
        let p = &mut self.progress;
        let old = (
            p.weights.replace(format!("{stem}.bpk")),
            p.optimiser.replace(adam.clone()),
        );
        p.epochs_done = epochs_done;
        if phase_over {
            p.phase += 1;
        }
        let (progress, ckpt, state_file) = (p.clone(), ctx.ckpt.clone(), ctx.state_file.clone());
        let best = improved.then(|| (ctx.ckpt.join(format!("{stem}.bpk")), ctx.cfg.out_dir.join("best.bpk")));
        self.pending = Some(std::thread::spawn(move || {
            save_adam(&saved, &ckpt.join(&adam))?;
            if let Some((from, to)) = best {
                link_or_copy(&from, &to)?;
            }
            write_json(&state_file, &progress)?;
            for f in [old.0, old.1].into_iter().flatten() {
                let _ = fs::remove_file(ckpt.join(&f));
            }
            Ok(())
        }));
        Ok(())
    }

    /// Waits for the last checkpoint's background writes; their error, if any, is the run's.
    pub(super) fn settle(&mut self) -> Result<()> {
        match self.pending.take() {
            Some(writes) => writes
                .join()
                .map_err(|_| anyhow::anyhow!("internal: the checkpoint writer panicked"))?,
            None => Ok(()),
        }
    }

    /// A fit of no epochs: only its freeze/unfreeze happened; the optimiser state is
    /// checkpointed for it.
    pub(super) fn end_empty_phase<B: TrainBackend>(&mut self, ctx: &Ctx<'_, B>, opt: &GroupAdam<B>) -> Result<()> {
        self.settle()?;
        let k = self.progress.phase;
        let adam = format!("phase-{k:02}.adam.safetensors");
        save_adam(&opt.export()?, &ctx.ckpt.join(&adam))?;
        if let Some(old) = self.progress.optimiser.replace(adam) {
            let _ = fs::remove_file(ctx.ckpt.join(old));
        }
        self.progress.phase = k + 1;
        write_json(&ctx.state_file, &self.progress)
    }
}
