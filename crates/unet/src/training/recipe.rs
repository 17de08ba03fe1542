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
use serde::{Deserialize, Serialize};

use super::phase::{Freeze, Phase, PhaseLr};
use crate::training::loss::Loss;
use crate::training::schedule::{slice, slice_hi};

/// fastai's default `lr_max` for `fit_one_cycle` (`defaults.lr`).
pub const FASTAI_DEFAULT_LR: f64 = 1e-3;

/// A recipe: steps run in order, early stopping applied to every fit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    /// fastai's `EarlyStoppingCallback(monitor='valid_loss', patience)`, reset at each fit
    /// (each phase); `null` turns it off.
    #[serde(default = "default_patience")]
    pub patience: Option<usize>,
    /// The training loss (and the validation loss that early stopping and the best epoch
    /// watch).
    #[serde(default)]
    pub loss: Loss,
    pub steps: Vec<RecipeStep>,
}

fn default_patience() -> Option<usize> {
    Some(2)
}

/// One of fastai's calls.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecipeStep {
    FineTune(FineTune),
    LrFind(LrFindStep),
    FitOneCycle(FitOneCycle),
}

/// `fine_tune(epochs, base_lr=2e-3, freeze_epochs=1, lr_mult=100, pct_start=0.3, div=5)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FineTune {
    pub epochs: usize,
    #[serde(default = "ft_base_lr")]
    pub base_lr: f64,
    #[serde(default = "one")]
    pub freeze_epochs: usize,
    #[serde(default = "ft_lr_mult")]
    pub lr_mult: f64,
    #[serde(default = "ft_pct_start")]
    pub pct_start: f64,
    #[serde(default = "ft_div")]
    pub div: f64,
}

/// `lr_find(start_lr=1e-7, end_lr=10, num_it=100)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LrFindStep {
    #[serde(default = "lf_start")]
    pub start_lr: f64,
    #[serde(default = "lf_end")]
    pub end_lr: f64,
    #[serde(default = "lf_num_it")]
    pub num_it: usize,
}

/// `fit_one_cycle(epochs, lr_max, div=25, div_final=1e5, pct_start=0.25)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FitOneCycle {
    pub epochs: usize,
    pub lr_max: LrMax,
    /// What `"auto"` uses when the sweep is too short or too flat for its valley (a number or
    /// `[lo, hi]`); by default the rates of the latest fit before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lr_fallback: Option<LrMax>,
    #[serde(default = "fc_pct_start")]
    pub pct_start: f64,
    #[serde(default = "fc_div")]
    pub div: f64,
    #[serde(default = "fc_div_final")]
    pub div_final: f64,
    /// The input side of this fit's batches, train and valid (fastai's progressive resizing:
    /// fit at a smaller size, then go on at the full one); by default the model's `--size`.
    /// The last fit that trains must be at the model's size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u32>,
}

/// A learning rate as fastai takes it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum LrMax {
    /// The same for every group.
    One(f64),
    /// `slice(lo, hi)`.
    Slice([f64; 2]),
    /// `"auto"`: from the latest lr_find.
    Auto(AutoTag),
}

/// The literal `"auto"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AutoTag {
    Auto,
}

fn one() -> usize {
    1
}
fn ft_base_lr() -> f64 {
    2e-3
}
fn ft_lr_mult() -> f64 {
    100.0
}
fn ft_pct_start() -> f64 {
    0.3
}
fn ft_div() -> f64 {
    5.0
}
fn lf_start() -> f64 {
    1e-7
}
fn lf_end() -> f64 {
    10.0
}
fn lf_num_it() -> usize {
    100
}
fn fc_pct_start() -> f64 {
    0.25
}
fn fc_div() -> f64 {
    25.0
}
fn fc_div_final() -> f64 {
    1e5
}

impl Default for Recipe {
    /// The reference workflow.
    fn default() -> Self {
        Recipe {
            patience: Some(2),
            loss: Loss::CrossEntropy,
            steps: vec![
                RecipeStep::FineTune(FineTune {
                    epochs: 1,
                    base_lr: ft_base_lr(),
                    freeze_epochs: 1,
                    lr_mult: ft_lr_mult(),
                    pct_start: ft_pct_start(),
                    div: ft_div(),
                }),
                RecipeStep::LrFind(LrFindStep {
                    start_lr: lf_start(),
                    end_lr: lf_end(),
                    num_it: lf_num_it(),
                }),
                RecipeStep::FitOneCycle(FitOneCycle {
                    epochs: 12,
                    lr_max: LrMax::Slice([1e-5, 1e-4]),
                    lr_fallback: None,
                    pct_start: fc_pct_start(),
                    div: fc_div(),
                    div_final: fc_div_final(),
                    size: None,
                }),
            ],
        }
    }
}

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

impl Recipe {
    /// Parses and checks a recipe file's text.
    pub fn from_json(text: &str) -> Result<Recipe> {
        let r: Recipe = serde_json::from_str(text)?;
        r.phases()?;
        Ok(r)
    }

    /// The phases, in order, with fastai's arithmetic done (fine_tune halves base_lr for its
    /// unfrozen fit and divides it by lr_mult for the lowest group).
    pub fn phases(&self) -> Result<Vec<Phase>> {
        ensure!(!self.steps.is_empty(), "recipe: no steps");
        let mut out = Vec::new();
        for (i, step) in self.steps.iter().enumerate() {
            match step {
                RecipeStep::FineTune(f) => out.extend(f.phases()?),
                RecipeStep::LrFind(l) => out.push(l.phase()?),
                RecipeStep::FitOneCycle(f) => {
                    let lr_find_before = self.steps[..i].iter().any(|s| matches!(s, RecipeStep::LrFind(_)));
                    out.push(f.phase(i + 1, lr_find_before, &out)?);
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

impl FineTune {
    /// fastai's `fine_tune`: a frozen fit (if `freeze_epochs` > 0) at `slice(base_lr)`, then
    /// an unfrozen one at `slice(base_lr/2/lr_mult, base_lr/2)`.
    fn phases(&self) -> Result<Vec<Phase>> {
        positive("fine_tune.base_lr", self.base_lr)?;
        positive("fine_tune.lr_mult", self.lr_mult)?;
        positive("fine_tune.div", self.div)?;
        pct("fine_tune.pct_start", self.pct_start)?;
        let mut out = Vec::new();
        if self.freeze_epochs > 0 {
            let s = slice_hi(self.base_lr, 3);
            out.push(Phase::Cycle {
                name: "frozen".into(),
                epochs: self.freeze_epochs,
                freeze: Freeze::Freeze,
                lr: PhaseLr::Groups([s[0], s[1], s[2]]),
                pct_start: 0.99,
                div: fc_div(),
                div_final: fc_div_final(),
                size: None,
            });
        }
        let base = self.base_lr / 2.0;
        let s = slice(base / self.lr_mult, base, 3);
        // fine_tune unfreezes even when epochs is 0 (then nothing trains)
        out.push(Phase::Cycle {
            name: "unfrozen".into(),
            epochs: self.epochs,
            freeze: Freeze::Unfreeze,
            lr: PhaseLr::Groups([s[0], s[1], s[2]]),
            pct_start: self.pct_start,
            div: self.div,
            div_final: fc_div_final(),
            size: None,
        });
        Ok(out)
    }
}

impl LrFindStep {
    /// The sweep, checked.
    fn phase(&self) -> Result<Phase> {
        positive("lr_find.start_lr", self.start_lr)?;
        positive("lr_find.end_lr", self.end_lr)?;
        ensure!(
            self.end_lr > self.start_lr,
            "recipe: lr_find.end_lr must exceed start_lr"
        );
        ensure!(self.num_it >= 2, "recipe: lr_find.num_it must be at least 2");
        Ok(Phase::LrFind {
            start_lr: self.start_lr,
            end_lr: self.end_lr,
            num_it: self.num_it,
        })
    }
}

impl FitOneCycle {
    /// The fit as recipe step number `n`; `lr_find_before` says whether a sweep comes before
    /// it, `before` holds the phases of the steps before it (for the fallback rates).
    fn phase(&self, n: usize, lr_find_before: bool, before: &[Phase]) -> Result<Phase> {
        positive("fit_one_cycle.div", self.div)?;
        positive("fit_one_cycle.div_final", self.div_final)?;
        pct("fit_one_cycle.pct_start", self.pct_start)?;
        if let Some(size) = self.size {
            crate::check_input_size(size).map_err(|e| anyhow::anyhow!("recipe: step {n}: size: {e}"))?;
        }
        let fallback = match &self.lr_fallback {
            Some(LrMax::Auto(_)) => bail!("recipe: step {n}: lr_fallback cannot be \"auto\""),
            Some(lr) => groups(lr, "fit_one_cycle.lr_fallback")?,
            None => None,
        };
        let lr = match groups(&self.lr_max, "fit_one_cycle.lr_max")? {
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
            epochs: self.epochs,
            freeze: Freeze::Keep,
            lr,
            pct_start: self.pct_start,
            div: self.div,
            div_final: self.div_final,
            size: self.size,
        })
    }
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
