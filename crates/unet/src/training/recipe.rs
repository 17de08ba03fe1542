//! Training recipes: fastai's calls (`fine_tune`, `lr_find`, `fit_one_cycle`) written as JSON
//! so another schedule needs no code change, and their expansion into *phases* (one cycle of
//! training, or one sweep), the unit that the runner checkpoints and resumes.
//!
//! The default is the reference study's workflow (docs/stages.md):
//!
//! ```json
//! {"patience": 2, "steps": [
//!   {"fine_tune": {"epochs": 1}},
//!   {"lr_find": {}},
//!   {"fit_one_cycle": {"epochs": 12, "lr_max": [1e-5, 1e-4]}}]}
//! ```
//!
//! Every omitted field takes fastai's default. `lr_max` is a number (every group the same,
//! as fastai does with a float), `[lo, hi]` (fastai's `slice(lo, hi)`: geometric over the
//! three groups) or `"auto"`: `slice(valley/10, valley)` from the latest `lr_find`'s valley
//! suggestion (the reference chose `slice(1e-5, 1e-4)` by eye from the plot: the same
//! tenfold span, anchored where the loss falls fastest).
//!
//! A valley is only taken when the sweep can show one: at least [`MIN_TRUSTED_SWEEP`](super::phase::MIN_TRUSTED_SWEEP)
//! iterations (the loss smoothing averages over about 50) whose smoothed loss falls by at
//! least [`MIN_TRUSTED_DROP`](super::phase::MIN_TRUSTED_DROP) of its starting value. Otherwise `"auto"` falls back to the
//! step's `lr_fallback` (a number or `[lo, hi]`), else to the rates of the latest fit before
//! it in the recipe (for fine_tune, its unfrozen fit's), else to fastai's default `lr_max`
//! 1e-3; the log and `model.json` say which and why. (fastai takes the valley whatever the
//! sweep; a 30-iteration sweep then suggests a rate 100× too low.)
//!
//! A `fit_one_cycle` may name its own `"size"` (fastai's progressive resizing: the same
//! network, fully convolutional, fitted first on smaller batches that cost a quarter of the
//! time at half the side, then at the model's `--size`). Its epochs are validated at that
//! size; the best epoch kept at the end is chosen among the epochs at the model's size only,
//! as losses at two sizes do not compare; lr_find sweeps at the model's size.
//!
//! `"loss"` (`"ce"`, `"dice"`, `"focal"`, `"ce+dice"`; default `"ce"`) picks the training loss,
//! see [`crate::training::loss`].

use anyhow::{Result, bail, ensure};

use super::phase::{Freeze, Phase, PhaseLr};
use crate::training::schedule::{slice, slice_hi};

pub use facepipe_formats::recipe::{
    AutoTag, FASTAI_DEFAULT_LR, FineTune, FitOneCycle, Loss, LrFindStep, LrMax, Recipe, RecipeStep,
};
use facepipe_formats::recipe::{fc_div, fc_div_final};

/// The three group rates of a number or a slice (`None` for `"auto"`).
fn groups(lr: &LrMax, what: &str) -> Result<Option<[f64; 3]>> {
    Ok(match lr {
        LrMax::One(v) => {
            positive(what, *v)?;
            Some([*v; 3])
        }
        LrMax::Slice([lo, hi]) => {
            positive(&format!("{what}[0]"), *lo)?;
            positive(&format!("{what}[1]"), *hi)?;
            ensure!(lo <= hi, "recipe: {what}: the low rate comes first, not [{lo}, {hi}]");
            let s = slice(*lo, *hi, 3);
            Some([s[0], s[1], s[2]])
        }
        LrMax::Auto(_) => None,
    })
}

fn positive(what: &str, v: f64) -> Result<()> {
    ensure!(
        v.is_finite() && v > 0.0,
        "recipe: {what} must be a positive number, not {v}"
    );
    Ok(())
}

fn pct(what: &str, v: f64) -> Result<()> {
    ensure!((0.0..=1.0).contains(&v), "recipe: {what} must be in [0, 1], not {v}");
    Ok(())
}

/// `1e-3` or `[2e-5, 2e-4, 2e-3]`, for the log.
pub fn show_groups(g: &[f64; 3]) -> String {
    if g[0] == g[2] {
        format!("{:.2e}", g[0])
    } else {
        format!("[{:.2e}, {:.2e}, {:.2e}]", g[0], g[1], g[2])
    }
}

/// Parses and checks a recipe file's text.
pub fn parse(text: &str) -> Result<Recipe> {
    let r: Recipe = serde_json::from_str(text)?;
    r.phases()?;
    Ok(r)
}

/// What a [`Recipe`] expands into (the recipe's types are the published format's, in
/// `facepipe_formats::recipe`; their arithmetic is training's).
pub trait Expand {
    /// The phases, in order, with fastai's arithmetic done (fine_tune halves base_lr for its
    /// unfrozen fit and divides it by lr_mult for the lowest group).
    fn phases(&self) -> Result<Vec<Phase>>;
}

impl Expand for Recipe {
    fn phases(&self) -> Result<Vec<Phase>> {
        ensure!(!self.steps.is_empty(), "recipe: no steps");
        let mut out = Vec::new();
        for (i, step) in self.steps.iter().enumerate() {
            match step {
                RecipeStep::FineTune(f) => out.extend(fine_tune(f)?),
                RecipeStep::LrFind(l) => out.push(lr_find(l)?),
                RecipeStep::FitOneCycle(f) => {
                    let lr_find_before = self.steps[..i].iter().any(|s| matches!(s, RecipeStep::LrFind(_)));
                    out.push(fit_one_cycle(f, i + 1, lr_find_before, &out)?);
                }
            }
        }
        ensure!(
            out.iter()
                .any(|p| matches!(p, Phase::Cycle { epochs, .. } if *epochs > 0)),
            "recipe: no step trains an epoch (every fine_tune and fit_one_cycle has 0 epochs), so there would be no model to save"
        );
        Ok(out)
    }
}

/// fastai's `fine_tune`: a frozen fit (if `freeze_epochs` > 0) at `slice(base_lr)`, then
/// an unfrozen one at `slice(base_lr/2/lr_mult, base_lr/2)`.
fn fine_tune(f: &FineTune) -> Result<Vec<Phase>> {
    positive("fine_tune.base_lr", f.base_lr)?;
    positive("fine_tune.lr_mult", f.lr_mult)?;
    positive("fine_tune.div", f.div)?;
    pct("fine_tune.pct_start", f.pct_start)?;
    let mut out = Vec::new();
    if f.freeze_epochs > 0 {
        let s = slice_hi(f.base_lr, 3);
        out.push(Phase::Cycle {
            name: "frozen".into(),
            epochs: f.freeze_epochs,
            freeze: Freeze::Freeze,
            lr: PhaseLr::Groups([s[0], s[1], s[2]]),
            pct_start: 0.99,
            div: fc_div(),
            div_final: fc_div_final(),
            size: None,
        });
    }
    let base = f.base_lr / 2.0;
    let s = slice(base / f.lr_mult, base, 3);
    // fine_tune unfreezes even when epochs is 0 (then nothing trains)
    out.push(Phase::Cycle {
        name: "unfrozen".into(),
        epochs: f.epochs,
        freeze: Freeze::Unfreeze,
        lr: PhaseLr::Groups([s[0], s[1], s[2]]),
        pct_start: f.pct_start,
        div: f.div,
        div_final: fc_div_final(),
        size: None,
    });
    Ok(out)
}

/// The sweep, checked.
fn lr_find(l: &LrFindStep) -> Result<Phase> {
    positive("lr_find.start_lr", l.start_lr)?;
    positive("lr_find.end_lr", l.end_lr)?;
    ensure!(l.end_lr > l.start_lr, "recipe: lr_find.end_lr must exceed start_lr");
    ensure!(l.num_it >= 2, "recipe: lr_find.num_it must be at least 2");
    Ok(Phase::LrFind {
        start_lr: l.start_lr,
        end_lr: l.end_lr,
        num_it: l.num_it,
    })
}

/// The fit as recipe step number `n`; `lr_find_before` says whether a sweep comes before
/// it, `before` holds the phases of the steps before it (for the fallback rates).
fn fit_one_cycle(f: &FitOneCycle, n: usize, lr_find_before: bool, before: &[Phase]) -> Result<Phase> {
    positive("fit_one_cycle.div", f.div)?;
    positive("fit_one_cycle.div_final", f.div_final)?;
    pct("fit_one_cycle.pct_start", f.pct_start)?;
    if let Some(size) = f.size {
        crate::check_input_size(size).map_err(|e| anyhow::anyhow!("recipe: step {n}: size: {e}"))?;
    }
    let fallback = match &f.lr_fallback {
        Some(LrMax::Auto(_)) => bail!("recipe: step {n}: lr_fallback cannot be \"auto\""),
        Some(lr) => groups(lr, "fit_one_cycle.lr_fallback")?,
        None => None,
    };
    let lr = match groups(&f.lr_max, "fit_one_cycle.lr_max")? {
        Some(g) => {
            ensure!(
                fallback.is_none(),
                "recipe: step {n}: lr_fallback is for lr_max \"auto\" only"
            );
            PhaseLr::Groups(g)
        }
        None => {
            ensure!(
                lr_find_before,
                "recipe: step {n} uses lr_max \"auto\" with no lr_find step before it"
            );
            auto_valley(fallback, before)
        }
    };
    Ok(Phase::Cycle {
        name: "fit".into(),
        epochs: f.epochs,
        freeze: Freeze::Keep,
        lr,
        pct_start: f.pct_start,
        div: f.div,
        div_final: f.div_final,
        size: f.size,
    })
}

/// `lr_max: "auto"`: lr_find's valley, or, when the sweep gives none to trust, the recipe's own
/// rate: `lr_fallback`, else the latest stated fit's before it, else fastai's default.
fn auto_valley(fallback: Option<[f64; 3]>, before: &[Phase]) -> PhaseLr {
    let stated = before.iter().rev().find_map(|p| match p {
        Phase::Cycle {
            name,
            lr: PhaseLr::Groups(g),
            ..
        } => Some((name.clone(), *g)),
        _ => None,
    });
    let (fallback, fallback_from) = match (fallback, stated) {
        (Some(g), _) => (g, format!("lr_fallback {}", show_groups(&g))),
        (None, Some((name, g))) => (g, format!("the rates of the {name} fit before it {}", show_groups(&g))),
        (None, None) => (
            [FASTAI_DEFAULT_LR; 3],
            format!("fastai's default lr_max {FASTAI_DEFAULT_LR:e}"),
        ),
    };
    PhaseLr::AutoValley {
        fallback,
        fallback_from,
    }
}

#[cfg(test)]
mod tests;
