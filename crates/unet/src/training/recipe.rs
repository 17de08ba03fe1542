//! Training recipes: fastai's calls (`fine_tune`, `lr_find`, `fit_one_cycle`) written as JSON
//! so another schedule needs no code change, and their expansion into *phases* (one cycle of
//! training, or one sweep), the unit that the runner checkpoints and resumes.
//!
//! The default is the reference workflow of FASTAI.md:
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
//! A valley is only taken when the sweep can show one: at least [`MIN_TRUSTED_SWEEP`]
//! iterations (the loss smoothing averages over about 50) whose smoothed loss falls by at
//! least [`MIN_TRUSTED_DROP`] of its starting value. Otherwise `"auto"` falls back to the
//! step's `lr_fallback` (a number or `[lo, hi]`), else to the rates of the latest fit before
//! it in the recipe (for fine_tune, its unfrozen fit's), else to fastai's default `lr_max`
//! 1e-3; the log and `model.json` say which and why. (fastai takes the valley whatever the
//! sweep; a 30-iteration sweep then suggests a rate 100× too low.)
//!
//! `"loss"` (`"ce"`, `"dice"`, `"focal"`, `"ce+dice"`; default `"ce"`) picks the training loss,
//! see [`crate::training::loss`].

use anyhow::{Result, bail, ensure};
use serde::{Deserialize, Serialize};

use crate::training::loss::Loss;
use crate::training::schedule::{OneCycle, slice, slice_hi};

/// The fewest sweep iterations whose valley `"auto"` takes.
pub const MIN_TRUSTED_SWEEP: usize = 50;
/// The least fall of the smoothed loss over the sweep (as a share of its first value in the
/// suggestion window) for `"auto"` to take the valley.
pub const MIN_TRUSTED_DROP: f64 = 0.03;
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
                }),
            ],
        }
    }
}

/// What a phase does to freezing before it starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Freeze {
    Freeze,
    Unfreeze,
    Keep,
}

/// Per-group peak learning rates, or "from the latest lr_find".
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PhaseLr {
    Groups([f64; 3]),
    AutoValley {
        /// The rates when the sweep gave no trustworthy valley.
        fallback: [f64; 3],
        /// Where the fallback comes from, for the log (`lr_fallback`, `the unfrozen fit's
        /// rates`, `fastai's default 1e-3`).
        fallback_from: String,
    },
}

/// A valley suggestion, or why there is none to take.
#[derive(Clone, Debug, PartialEq)]
pub enum Valley {
    Trusted(f64),
    Untrusted(String),
}

impl Valley {
    /// Whether a sweep's valley can be taken: `losses` are the sweep's finite smoothed losses,
    /// `num_it` its planned length, `valley` fastai's suggestion.
    pub fn judge(losses: &[f64], num_it: usize, valley: Option<f64>) -> Valley {
        let n = losses.len();
        let Some(v) = valley else {
            return Valley::Untrusted(format!(
                "lr_find gave no valley ({n} iterations before the loss diverged)"
            ));
        };
        if n < MIN_TRUSTED_SWEEP {
            return Valley::Untrusted(format!(
                "lr_find's valley {v:.2e} is not trusted: the sweep ran {n} iterations, fewer than the \
                 {MIN_TRUSTED_SWEEP} its smoothed loss (an average over about 50 batches) needs to show a valley"
            ));
        }
        // the suggestion window (fastai drops the first num_it/10 and the last 5 points)
        let window = &losses[(num_it / 10).min(n)..n.saturating_sub(5)];
        let first = window.first().copied().unwrap_or(f64::NAN);
        let lowest = window.iter().copied().fold(f64::INFINITY, f64::min);
        let drop = (first - lowest) / first;
        if drop.is_nan() || drop < MIN_TRUSTED_DROP {
            return Valley::Untrusted(format!(
                "lr_find's valley {v:.2e} is not trusted: the smoothed loss fell only {:.1} % over the sweep \
                 (from {first:.4} to {lowest:.4}; at least {:.0} % shows a valley)",
                100.0 * drop.max(0.0),
                100.0 * MIN_TRUSTED_DROP
            ));
        }
        Valley::Trusted(v)
    }
}

/// Where a fit's rates came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LrSource {
    /// A number or slice in the recipe.
    Stated,
    /// `"auto"`: the latest lr_find's valley.
    Valley,
    /// `"auto"` with no trustworthy valley: the fallback.
    Fallback,
}

impl std::fmt::Display for LrSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LrSource::Stated => "stated",
            LrSource::Valley => "valley",
            LrSource::Fallback => "fallback",
        })
    }
}

/// The rates a cycle uses, and where they came from (for the log and `model.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResolvedLr {
    pub lr_max: [f64; 3],
    pub source: LrSource,
    /// Why the valley was not taken (a fallback only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A unit of work: one one-cycle fit, or one lr_find sweep.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Cycle {
        /// Recorded in `metrics.csv`: `frozen`, `unfrozen` (fine_tune's two fits) or `fit`.
        name: String,
        epochs: usize,
        freeze: Freeze,
        lr: PhaseLr,
        pct_start: f64,
        div: f64,
        div_final: f64,
    },
    LrFind {
        start_lr: f64,
        end_lr: f64,
        num_it: usize,
    },
}

impl PhaseLr {
    /// The learning rates, given the latest lr_find's valley (`None`: no lr_find ran before).
    pub fn resolve(&self, valley: Option<&Valley>) -> Result<ResolvedLr> {
        match self {
            PhaseLr::Groups(g) => Ok(ResolvedLr {
                lr_max: *g,
                source: LrSource::Stated,
                reason: None,
            }),
            PhaseLr::AutoValley {
                fallback,
                fallback_from,
            } => match valley {
                Some(Valley::Trusted(v)) => {
                    let s = slice(v / 10.0, *v, 3);
                    Ok(ResolvedLr {
                        lr_max: [s[0], s[1], s[2]],
                        source: LrSource::Valley,
                        reason: None,
                    })
                }
                Some(Valley::Untrusted(why)) => Ok(ResolvedLr {
                    lr_max: *fallback,
                    source: LrSource::Fallback,
                    reason: Some(format!("{why}; using {fallback_from}")),
                }),
                None => bail!("lr_max \"auto\" needs an lr_find step before it"),
            },
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

impl Phase {
    /// The one-cycle schedule of a cycle phase, with where its rates came from.
    pub fn schedule(&self, valley: Option<&Valley>) -> Result<Option<(OneCycle, ResolvedLr)>> {
        match self {
            Phase::Cycle {
                lr,
                pct_start,
                div,
                div_final,
                ..
            } => {
                let resolved = lr.resolve(valley)?;
                Ok(Some((
                    OneCycle {
                        pct_start: *pct_start,
                        div: *div,
                        div_final: *div_final,
                        ..OneCycle::new(resolved.lr_max.to_vec())
                    },
                    resolved,
                )))
            }
            Phase::LrFind { .. } => Ok(None),
        }
    }

    pub fn epochs(&self) -> usize {
        match self {
            Phase::Cycle { epochs, .. } => *epochs,
            Phase::LrFind { .. } => 0,
        }
    }
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
mod tests {
    use super::*;

    #[test]
    fn the_default_is_the_reference_workflow_in_numbers() {
        let text = r#"{"patience": 2, "steps": [
            {"fine_tune": {"epochs": 1}}, {"lr_find": {}},
            {"fit_one_cycle": {"epochs": 12, "lr_max": [1e-5, 1e-4]}}]}"#;
        let r = Recipe::from_json(text).unwrap();
        assert_eq!(r, Recipe::default());
        let p = r.phases().unwrap();
        assert_eq!(p.len(), 4);
        let Phase::Cycle {
            name,
            lr: PhaseLr::Groups(g),
            pct_start,
            freeze,
            ..
        } = &p[0]
        else {
            panic!("{p:?}")
        };
        assert_eq!((name.as_str(), *freeze, *pct_start), ("frozen", Freeze::Freeze, 0.99));
        assert_eq!(*g, [2e-4, 2e-4, 2e-3], "slice(base_lr)");
        let Phase::Cycle {
            lr: PhaseLr::Groups(g),
            pct_start,
            div,
            freeze,
            epochs,
            ..
        } = &p[1]
        else {
            panic!()
        };
        assert_eq!((*freeze, *pct_start, *div, *epochs), (Freeze::Unfreeze, 0.3, 5.0, 1));
        // base_lr halved, then slice(1e-3/100, 1e-3)
        assert!((g[0] - 1e-5).abs() < 1e-18 && (g[1] - 1e-4).abs() < 1e-17 && (g[2] - 1e-3).abs() < 1e-16);
        assert!(matches!(p[2], Phase::LrFind { num_it: 100, .. }));
        let (s, from) = p[3].schedule(None).unwrap().unwrap();
        assert_eq!(from.source, LrSource::Stated);
        assert_eq!((s.div, s.div_final, s.pct_start), (25.0, 1e5, 0.25));
        assert!((s.lr_max[1] - 10f64.powf(-4.5)).abs() < 1e-15, "geometric middle");
    }

    #[test]
    fn auto_takes_the_valley_and_needs_an_lr_find_before_it() {
        let r = Recipe::from_json(
            r#"{"steps": [{"lr_find": {"num_it": 50}}, {"fit_one_cycle": {"epochs": 2, "lr_max": "auto"}}]}"#,
        )
        .unwrap();
        assert_eq!(r.patience, Some(2));
        let p = r.phases().unwrap();
        let (s, from) = p[1].schedule(Some(&Valley::Trusted(1e-3))).unwrap().unwrap();
        assert!((s.lr_max[0] - 1e-4).abs() < 1e-16 && (s.lr_max[2] - 1e-3).abs() < 1e-16);
        assert_eq!((from.source, from.reason), (LrSource::Valley, None));
        let e = p[1].schedule(None).unwrap_err().to_string();
        assert!(e.contains("lr_find"), "{e}");
        // nothing trained before and no lr_fallback: fastai's default rate
        let (s, from) = p[1]
            .schedule(Some(&Valley::Untrusted("too short".into())))
            .unwrap()
            .unwrap();
        assert_eq!(s.lr_max, vec![1e-3; 3]);
        assert_eq!(from.source, LrSource::Fallback);
        assert!(from.reason.unwrap().contains("too short; using fastai's default"));
        let e = Recipe::from_json(r#"{"steps": [{"fit_one_cycle": {"epochs": 2, "lr_max": "auto"}}]}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no lr_find step before it"), "{e}");
    }

    #[test]
    fn bad_recipes_say_what_is_wrong() {
        for (text, want) in [
            (r#"{"steps": []}"#, "no steps"),
            (
                r#"{"steps": [{"fit_one_cycle": {"epochs": 1, "lr_max": -1}}]}"#,
                "positive",
            ),
            (
                r#"{"steps": [{"fit_one_cycle": {"epochs": 1, "lr_max": "fast"}}]}"#,
                "did not match",
            ),
            (
                r#"{"steps": [{"fine_tune": {"epochs": 1, "base_lr": 1e-3, "speed": 2}}]}"#,
                "unknown field",
            ),
            (
                r#"{"steps": [{"fit_one_cycle": {"epochs": 1, "lr_max": 1e-3, "pct_start": 1.5}}]}"#,
                "[0, 1]",
            ),
            (r#"{"stepz": []}"#, "unknown field"),
        ] {
            let e = format!("{:#}", Recipe::from_json(text).unwrap_err());
            assert!(e.contains(want), "{text}: {e}");
        }
        let r = Recipe::from_json(r#"{"patience": null, "steps": [{"fit_one_cycle": {"epochs": 3, "lr_max": 1e-3}}]}"#)
            .unwrap();
        assert_eq!(r.patience, None);
        assert_eq!(
            r.phases().unwrap()[0].schedule(None).unwrap().unwrap().0.lr_max,
            vec![1e-3; 3]
        );
        for (text, want) in [
            (
                r#"{"steps": [{"lr_find": {}}, {"fit_one_cycle": {"epochs": 1, "lr_max": "auto", "lr_fallback": "auto"}}]}"#,
                "lr_fallback cannot be \"auto\"",
            ),
            (
                r#"{"steps": [{"fit_one_cycle": {"epochs": 1, "lr_max": 1e-3, "lr_fallback": 1e-3}}]}"#,
                "for lr_max \"auto\" only",
            ),
            (
                r#"{"steps": [{"fit_one_cycle": {"epochs": 1, "lr_max": [1e-3, 1e-4]}}]}"#,
                "low rate comes first",
            ),
            (r#"{"loss": "bce", "steps": []}"#, "unknown variant"),
        ] {
            let e = format!("{:#}", Recipe::from_json(text).unwrap_err());
            assert!(e.contains(want), "{text}: {e}");
        }
    }

    #[test]
    fn auto_falls_back_to_the_recipes_own_rate() {
        // fine_tune before: its unfrozen fit's rates
        let r = Recipe::from_json(
            r#"{"steps": [{"fine_tune": {"epochs": 2, "base_lr": 0.004}}, {"lr_find": {"num_it": 30}},
                {"fit_one_cycle": {"epochs": 2, "lr_max": "auto"}}]}"#,
        )
        .unwrap();
        let p = r.phases().unwrap();
        let why = Valley::Untrusted("the sweep ran 30 iterations".into());
        let (s, from) = p[3].schedule(Some(&why)).unwrap().unwrap();
        assert!(
            (s.lr_max[2] - 2e-3).abs() < 1e-15 && (s.lr_max[0] - 2e-5).abs() < 1e-18,
            "{s:?}"
        );
        let reason = from.reason.unwrap();
        assert!(
            reason.starts_with("the sweep ran 30 iterations; using the rates of the unfrozen fit"),
            "{reason}"
        );
        // lr_fallback given: that
        let r = Recipe::from_json(
            r#"{"loss": "ce+dice", "steps": [{"fine_tune": {"epochs": 2}}, {"lr_find": {}},
                {"fit_one_cycle": {"epochs": 2, "lr_max": "auto", "lr_fallback": [1e-4, 1e-2]}}]}"#,
        )
        .unwrap();
        assert_eq!(r.loss, Loss::CrossEntropyDice);
        let (s, from) = r.phases().unwrap()[3].schedule(Some(&why)).unwrap().unwrap();
        assert!((s.lr_max[0] - 1e-4).abs() < 1e-18 && (s.lr_max[1] - 1e-3).abs() < 1e-16);
        assert!(from.reason.unwrap().contains("using lr_fallback"));
    }

    /// A sweep like fastai's: flat, falling through a valley near 1e-3, then diverging.
    fn sweep(num_it: usize) -> (Vec<f64>, Vec<f64>) {
        let lrs: Vec<f64> = (0..num_it)
            .map(|i| crate::training::schedule::lr_find_lr(1e-7, 10.0, i, num_it))
            .collect();
        let losses = lrs
            .iter()
            .map(|lr| {
                let x = lr.log10();
                2.0 - 1.5 / (1.0 + (-(x + 4.0) * 2.0).exp()) + 0.5 * (x + 1.0).max(0.0).powi(2)
            })
            .collect();
        (lrs, losses)
    }

    #[test]
    fn a_short_or_flat_sweep_is_not_trusted() {
        let (lrs, losses) = sweep(100);
        let v = crate::training::schedule::suggest(&lrs, &losses, 100).unwrap().valley;
        assert_eq!(Valley::judge(&losses, 100, Some(v)), Valley::Trusted(v));
        // the same curve in 30 iterations: too short
        let (lrs, losses) = sweep(30);
        let v = crate::training::schedule::suggest(&lrs, &losses, 30).unwrap().valley;
        let Valley::Untrusted(why) = Valley::judge(&losses, 30, Some(v)) else {
            panic!()
        };
        assert!(why.contains("the sweep ran 30 iterations, fewer than the 50"), "{why}");
        // long but flat (a 1 % dip)
        let flat: Vec<f64> = (0..100).map(|i| 1.0 - 0.01 * (i as f64 / 60.0).min(1.0)).collect();
        let Valley::Untrusted(why) = Valley::judge(&flat, 100, Some(1e-4)) else {
            panic!()
        };
        assert!(
            why.contains("fell only 0.8 % over the sweep (from 0.9983 to 0.9900"),
            "{why}"
        );
        // no suggestion at all
        assert!(matches!(Valley::judge(&flat[..8], 100, None), Valley::Untrusted(w) if w.contains("no valley")));
    }
}
