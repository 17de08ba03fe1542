//! fastai's schedules and learning-rate tools, in numbers (as fastai 2.8's source has them):
//! `fit_one_cycle`'s cosine learning-rate and momentum schedule, `slice` over parameter groups,
//! `lr_find`'s sweep, smoothing and suggestions, and early stopping.

use std::f64::consts::PI;

/// fastai's `SchedCos`: from `start` at t = 0 to `end` at t = 1 along half a cosine.
pub fn cosine(start: f64, end: f64, t: f64) -> f64 {
    start + (1.0 + (PI * (1.0 - t)).cos()) * (end - start) / 2.0
}

/// `fit_one_cycle`'s parameters.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OneCycle {
    /// Peak learning rate per parameter group.
    pub lr_max: Vec<f64>,
    /// Start at `lr_max / div`.
    pub div: f64,
    /// End at `lr_max / div_final`.
    pub div_final: f64,
    /// Share of the steps spent warming up.
    pub pct_start: f64,
    /// Momentum (Adam's β1): start, middle, end.
    pub moms: (f64, f64, f64),
}

impl OneCycle {
    /// fastai's defaults: div 25, div_final 1e5, pct_start 0.25, moms (0.95, 0.85, 0.95).
    pub fn new(lr_max: Vec<f64>) -> Self {
        OneCycle {
            lr_max,
            div: 25.0,
            div_final: 1e5,
            pct_start: 0.25,
            moms: (0.95, 0.85, 0.95),
        }
    }

    /// Learning rates (per group) and momentum at position `p` in [0, 1] of the whole fit,
    /// where `p = (epoch · n_iter + i) / (n_epochs · n_iter)` for training batch i.
    pub fn at(&self, p: f64) -> (Vec<f64>, f64) {
        let (m0, m1, m2) = self.moms;
        if p < self.pct_start {
            let t = p / self.pct_start;
            (
                self.lr_max.iter().map(|&lr| cosine(lr / self.div, lr, t)).collect(),
                cosine(m0, m1, t),
            )
        } else {
            let t = if self.pct_start >= 1.0 {
                1.0
            } else {
                (p - self.pct_start) / (1.0 - self.pct_start)
            };
            (
                self.lr_max
                    .iter()
                    .map(|&lr| cosine(lr, lr / self.div_final, t))
                    .collect(),
                cosine(m1, m2, t),
            )
        }
    }
}

/// Position of training batch `i` of epoch `epoch` in a fit of `epochs` × `n_iter` batches.
pub fn position(epoch: usize, i: usize, epochs: usize, n_iter: usize) -> f64 {
    (epoch * n_iter + i) as f64 / (epochs * n_iter) as f64
}

/// `slice(lo, hi)` over `n` groups: geometric, `lo · (hi/lo)^(i/(n−1))`.
pub fn slice(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    if n == 1 {
        return vec![hi];
    }
    (0..n).map(|i| lo * (hi / lo).powf(i as f64 / (n - 1) as f64)).collect()
}

/// `slice(hi)` over `n` groups: `hi/10` for all but the last, `hi` for the last.
pub fn slice_hi(hi: f64, n: usize) -> Vec<f64> {
    (0..n).map(|i| if i + 1 == n { hi } else { hi / 10.0 }).collect()
}

/// `lr_find`'s exponential sweep: the learning rate at iteration `i` of `num_it`.
pub fn lr_find_lr(start: f64, end: f64, i: usize, num_it: usize) -> f64 {
    start * (end / start).powf(i as f64 / num_it as f64)
}

/// `lr_find`'s loss smoothing (EMA β = 0.98, debiased) and stopping rule (smoothed loss above
/// four times the best so far, or not finite).
#[derive(Clone, Debug)]
pub struct LossSmoother {
    beta: f64,
    avg: f64,
    n: i32,
    pub best: f64,
}

impl Default for LossSmoother {
    fn default() -> Self {
        LossSmoother {
            beta: 0.98,
            avg: 0.0,
            n: 0,
            best: f64::INFINITY,
        }
    }
}

impl LossSmoother {
    /// Adds a raw loss; returns the smoothed loss and whether the sweep should stop.
    pub fn push(&mut self, loss: f64) -> (f64, bool) {
        self.n += 1;
        self.avg = self.beta * self.avg + (1.0 - self.beta) * loss;
        let smooth = self.avg / (1.0 - self.beta.powi(self.n));
        // NaN compares false, as in fastai (the caller handles it); +inf stops
        let stop = smooth > 4.0 * self.best;
        if smooth < self.best {
            self.best = smooth;
        }
        (smooth, stop)
    }
}

pub use facepipe_formats::model::Suggestions;

/// Suggestions from a sweep, or `None` when too few points survive the trimming.
pub fn suggest(lrs: &[f64], losses: &[f64], num_it: usize) -> Option<Suggestions> {
    let lo = num_it / 10;
    if lrs.len() != losses.len() || losses.len() < lo + 5 + 2 {
        return None;
    }
    let hi = losses.len() - 5;
    let (lrs, losses) = (&lrs[lo..hi], &losses[lo..hi]);
    // fastai cuts the window at the first NaN
    let cut = losses.iter().position(|v| v.is_nan()).unwrap_or(losses.len());
    let (lrs, losses) = (&lrs[..cut], &losses[..cut]);
    if losses.len() < 2 {
        return None;
    }
    let n = losses.len();

    // Longest strictly decreasing subsequence (O(n²)), fastai's `valley`.
    // fastai's arithmetic is on Python ints: `max_start` is -1 when the run starts at the
    // first point, and an index of -1 would be the last point
    let mut lds = vec![1isize; n];
    let (mut max_start, mut max_end) = (0isize, 0usize);
    for i in 1..n {
        for j in 0..i {
            if losses[i] < losses[j] && lds[i] < lds[j] + 1 {
                lds[i] = lds[j] + 1;
            }
            if lds[max_end] < lds[i] {
                max_end = i;
                max_start = max_end as isize - lds[max_end];
            }
        }
    }
    let sections = (max_end as isize - max_start) as f64 / 3.0;
    let idx = max_start + sections as isize + (sections / 2.0) as isize;
    let valley = lrs[idx.rem_euclid(n as isize) as usize];

    let argmin = (0..n)
        .min_by(|&a, &b| losses[a].total_cmp(&losses[b]))
        .expect("non-empty");
    let grads: Vec<f64> = (0..n - 1)
        .map(|i| (losses[i + 1] - losses[i]) / (lrs[i + 1].ln() - lrs[i].ln()))
        .collect();
    let steepest = (0..n - 1)
        .min_by(|&a, &b| grads[a].total_cmp(&grads[b]))
        .expect("non-empty");
    Some(Suggestions {
        valley,
        minimum: lrs[argmin] / 10.0,
        steep: lrs[steepest],
    })
}

/// fastai's `EarlyStoppingCallback(monitor='valid_loss', patience)`: stop after `patience`
/// consecutive epochs whose value is not strictly lower than the best.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EarlyStopping {
    pub patience: usize,
    /// The lowest value seen; +∞ before the first (JSON has no ∞: written as `null`).
    #[serde(deserialize_with = "infinite_if_null")]
    pub best: f64,
    pub wait: usize,
}

/// Reads `null` (serde_json's rendering of a non-finite number) as +∞, so a checkpoint
/// written before a fit's first epoch reads back.
fn infinite_if_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(<Option<f64> as serde::Deserialize>::deserialize(d)?.unwrap_or(f64::INFINITY))
}

impl EarlyStopping {
    pub fn new(patience: usize) -> Self {
        EarlyStopping {
            patience,
            best: f64::INFINITY,
            wait: 0,
        }
    }

    /// Records an epoch's value; returns (improved, stop).
    pub fn update(&mut self, value: f64) -> (bool, bool) {
        if value < self.best {
            self.best = value;
            self.wait = 0;
            (true, false)
        } else {
            self.wait += 1;
            (false, self.wait >= self.patience)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_early_stopper_reads_back_from_json() {
        let fresh = EarlyStopping::new(3);
        let text = serde_json::to_string(&fresh).unwrap();
        let back: EarlyStopping = serde_json::from_str(&text).unwrap();
        assert_eq!(back, fresh);
        let mut later = fresh;
        later.update(0.5);
        assert_eq!(
            serde_json::from_str::<EarlyStopping>(&serde_json::to_string(&later).unwrap()).unwrap(),
            later
        );
    }

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() <= 1e-12 * b.abs().max(1.0), "{a} vs {b}");
    }

    #[test]
    fn one_cycle_hits_fastai_values() {
        let s = OneCycle::new(vec![1e-5, 1e-4]);
        let (lr, mom) = s.at(0.0);
        close(lr[1], 1e-4 / 25.0);
        close(lr[0], 1e-5 / 25.0);
        close(mom, 0.95);
        let (lr, mom) = s.at(0.25);
        close(lr[1], 1e-4);
        close(mom, 0.85);
        let (lr, mom) = s.at(1.0);
        close(lr[1], 1e-4 / 1e5);
        close(mom, 0.95);
        // half-way through the warm-up: the cosine's midpoint
        let (lr, mom) = s.at(0.125);
        close(lr[1], (1e-4 / 25.0 + 1e-4) / 2.0);
        close(mom, 0.9);
        // and monotone on both sides
        let lrs: Vec<f64> = (0..=100).map(|i| s.at(i as f64 / 100.0).0[1]).collect();
        assert!(lrs[..25].windows(2).all(|w| w[0] < w[1]));
        assert!(lrs[25..].windows(2).all(|w| w[0] > w[1]));
    }

    #[test]
    fn positions_per_batch() {
        close(position(0, 0, 12, 10), 0.0);
        close(position(3, 0, 12, 10), 0.25);
        close(position(11, 9, 12, 10), 119.0 / 120.0);
    }

    #[test]
    fn slices_are_geometric() {
        let s = slice(1e-5, 1e-4, 3);
        close(s[0], 1e-5);
        close(s[1], 1e-5 * 10f64.sqrt());
        close(s[2], 1e-4);
        assert_eq!(slice_hi(2e-3, 3), vec![2e-4, 2e-4, 2e-3]);
    }

    #[test]
    fn lr_find_sweep_and_smoothing() {
        close(lr_find_lr(1e-7, 10.0, 0, 100), 1e-7);
        close(lr_find_lr(1e-7, 10.0, 100, 100), 10.0);
        close(lr_find_lr(1e-7, 10.0, 50, 100), 1e-7 * 1e4);
        let mut s = LossSmoother::default();
        let (first, stop) = s.push(2.0);
        close(first, 2.0); // debiased: the first smoothed value is the loss itself
        assert!(!stop);
        for _ in 0..50 {
            s.push(2.0);
        }
        let (smooth, stop) = s.push(20.0);
        assert!(
            !stop && smooth < 3.0,
            "the EMA damps one spike once it has history: {smooth}"
        );
        let mut s = LossSmoother::default();
        s.push(1.0);
        let (_, stop) = s.push(1000.0);
        assert!(stop);
        // NaN does not stop the sweep by itself (fastai's comparison is false); +inf does
        assert!(!LossSmoother::default().push(f64::NAN).1);
        let mut s = LossSmoother::default();
        s.push(1.0);
        assert!(s.push(f64::INFINITY).1);
    }

    #[test]
    fn a_sweep_falling_from_its_first_point_takes_fastais_valley() {
        // window = points 1..7 (num_it/10 = 1 cut at the start, 5 at the end), all falling:
        // fastai's Python ints give max_start = -1, sections = 2, index -1 + 2 + 1 = 2
        let lrs: Vec<f64> = (0..12).map(|i| 1e-5 * 2f64.powi(i)).collect();
        let losses: Vec<f64> = (0..12).map(|i| 10.0 - f64::from(i)).collect();
        let s = suggest(&lrs, &losses, 10).unwrap();
        assert_eq!(s.valley, lrs[1 + 2]);
    }

    #[test]
    fn suggestions_on_a_synthetic_valley() {
        // Loss flat, then falling between lr 1e-4 and 1e-2, then exploding.
        let num_it = 100;
        let lrs: Vec<f64> = (0..num_it).map(|i| lr_find_lr(1e-7, 10.0, i, num_it)).collect();
        let losses: Vec<f64> = lrs
            .iter()
            .map(|&lr| {
                let x = lr.log10();
                if x < -4.0 {
                    2.0 + 0.001 * (x + 7.0)
                } else if x < -2.0 {
                    2.0 - 0.75 * (x + 4.0)
                } else {
                    0.5 + 3.0 * (x + 2.0).powi(2)
                }
            })
            .collect();
        let s = suggest(&lrs, &losses, num_it).unwrap();
        assert!((1e-4..1e-2).contains(&s.valley), "{s:?}");
        // the lowest loss is at lr 1e-2
        assert!((s.minimum / 1e-3 - 1.0).abs() < 0.2, "{s:?}");
        assert!((1e-4..=1e-2).contains(&s.steep), "{s:?}");
        assert!(suggest(&lrs[..10], &losses[..10], num_it).is_none());
    }

    #[test]
    fn valley_matches_fastai_on_a_hand_worked_case() {
        // num_it 10 → drop 1 point at the start and 5 at the end.
        let lrs: Vec<f64> = (0..16).map(|i| 10f64.powi(i - 10)).collect();
        let losses = [
            9.0, 5.0, 4.0, 6.0, 3.0, 2.5, 2.0, 1.5, 1.0, 7.0, 8.0, 1.0, 1.0, 1.0, 1.0, 1.0,
        ];
        // trimmed: [5, 4, 6, 3, 2.5, 2, 1.5, 1, 7, 8]; longest decreasing run of the DP ends at
        // index 7 (length 7: 5,4,3,2.5,2,1.5,1), max_start = 0, sections = 7/3 → idx 0+2+1 = 3
        let s = suggest(&lrs, &losses, 10).unwrap();
        assert_eq!(s.valley, lrs[1 + 3]);
        assert_eq!(s.minimum, lrs[1 + 7] / 10.0);

        // a NaN in the window: fastai cuts it there (after trimming), as if the sweep ended
        let mut with_nan = losses;
        with_nan[9] = f64::NAN; // trimmed index 8: the window is [5, 4, 6, 3, 2.5, 2, 1.5, 1]
        let s = suggest(&lrs, &with_nan, 10).unwrap();
        assert_eq!(s.minimum, lrs[1 + 7] / 10.0);
        assert_eq!(s.valley, lrs[1 + 3]);
        with_nan[2] = f64::NAN; // trimmed index 1: one point left, no suggestion
        assert!(suggest(&lrs, &with_nan, 10).is_none());
    }

    #[test]
    fn early_stopping_needs_strict_improvement() {
        let mut e = EarlyStopping::new(2);
        assert_eq!(e.update(1.0), (true, false));
        assert_eq!(e.update(0.9), (true, false));
        assert_eq!(e.update(0.9), (false, false)); // equal is not better
        assert_eq!(e.update(0.95), (false, true));
        let mut e = EarlyStopping::new(2);
        e.update(1.0);
        e.update(1.1);
        assert_eq!(e.update(0.5), (true, false));
        assert_eq!(e.wait, 0);
    }
}
