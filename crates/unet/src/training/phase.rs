//! Phases: what a recipe expands into, the unit the runner checkpoints and resumes — one
//! one-cycle fit or one lr_find sweep — and how a fit's learning rates are settled (stated in
//! the recipe, or lr_find's valley when the sweep can show one, else a fallback).

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

use super::schedule::{OneCycle, slice};

/// The fewest sweep iterations whose valley `"auto"` takes.
pub const MIN_TRUSTED_SWEEP: usize = 50;
/// The least fall of the smoothed loss over the sweep (as a share of its first value in the
/// suggestion window) for `"auto"` to take the valley.
pub const MIN_TRUSTED_DROP: f64 = 0.03;
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
    /// The valley of a finished sweep as `"auto"` sees it.
    pub fn of(sweep: &facepipe_formats::model::LrFind) -> Valley {
        match (&sweep.untrusted, &sweep.suggestions) {
            (Some(why), _) => Valley::Untrusted(why.clone()),
            (None, Some(s)) => Valley::Trusted(s.valley),
            (None, None) => Valley::Untrusted("lr_find gave no valley".into()),
        }
    }

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

pub use facepipe_formats::model::{LrSource, ResolvedLr};

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
        /// The fit's own input side (`None`: the model's `--size`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        size: Option<u32>,
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

    /// The input side a cycle trains at, given the model's (`None` for a sweep).
    pub fn size(&self, model_size: u32) -> Option<u32> {
        match self {
            Phase::Cycle { size, .. } => Some(size.unwrap_or(model_size)),
            Phase::LrFind { .. } => None,
        }
    }

    pub fn epochs(&self) -> usize {
        match self {
            Phase::Cycle { epochs, .. } => *epochs,
            Phase::LrFind { .. } => 0,
        }
    }
}
