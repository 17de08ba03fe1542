//! Training recipes as `model.json` (and a `--recipe` file) hold them: fastai's calls
//! (`fine_tune`, `lr_find`, `fit_one_cycle`) written as JSON, so another schedule needs no code
//! change. What they expand into (phases, rates) is `unet::training::recipe`'s business.
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
//! three groups) or `"auto"` (from the latest `lr_find`'s valley). `"loss"` picks the training
//! [`Loss`].

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// fastai's default `lr_max` for `fit_one_cycle` (`defaults.lr`).
pub const FASTAI_DEFAULT_LR: f64 = 1e-3;

/// A recipe: steps run in order, early stopping applied to every fit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
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
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum RecipeStep {
    FineTune(FineTune),
    LrFind(LrFindStep),
    FitOneCycle(FitOneCycle),
}

/// `fine_tune(epochs, base_lr=2e-3, freeze_epochs=1, lr_mult=100, pct_start=0.3, div=5)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
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
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
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
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
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
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
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
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
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
/// `fit_one_cycle`'s default `div`.
pub fn fc_div() -> f64 {
    25.0
}
/// `fit_one_cycle`'s default `div_final`.
pub fn fc_div_final() -> f64 {
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

/// A training loss, as a recipe names it (fastai's definitions; `unet::training::loss`
/// computes them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum Loss {
    /// `CrossEntropyLossFlat(axis=1)`.
    #[default]
    #[serde(rename = "ce")]
    CrossEntropy,
    /// `DiceLoss(axis=1, smooth=1e-6)`.
    #[serde(rename = "dice")]
    Dice,
    /// `FocalLossFlat(gamma=2, axis=1)`.
    #[serde(rename = "focal")]
    Focal,
    /// `CrossEntropyLossFlat() + DiceLoss()`.
    #[serde(rename = "ce+dice")]
    CrossEntropyDice,
}

impl Loss {
    /// Every loss, in the order the docs list them.
    pub const ALL: [Loss; 4] = [Loss::CrossEntropy, Loss::Dice, Loss::Focal, Loss::CrossEntropyDice];

    /// The recipe's name for it.
    pub fn name(self) -> &'static str {
        match self {
            Loss::CrossEntropy => "ce",
            Loss::Dice => "dice",
            Loss::Focal => "focal",
            Loss::CrossEntropyDice => "ce+dice",
        }
    }
}

impl fmt::Display for Loss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Loss {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Loss::ALL.into_iter().find(|l| l.name() == s).ok_or_else(|| {
            let names: Vec<_> = Loss::ALL.iter().map(|l| l.name()).collect();
            format!("unknown loss {s:?}: one of {}", names.join(", "))
        })
    }
}
