//! Segmentation scores from a confusion matrix accumulated with global sums over a set, the
//! way fastai's `DiceMulti` and `JaccardCoeffMulti` accumulate them: per class, intersection,
//! predicted and true pixel counts are summed over every image first and divided once, so a
//! large image weighs more than a small one and a class missing from one image does not
//! count as a zero for it.
//!
//! Label 255 ([`IGNORE`]) is left out. A prediction of 255 means "not predicted" (outside
//! what the model saw): such pixels are counted in [`Confusion::unpredicted`] and left out of
//! every score, which then covers the predicted pixels only.

use serde::{Deserialize, Serialize};

use crate::palette::IGNORE;

/// Pixel counts by (true class, predicted class).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confusion {
    n: usize,
    /// Row-major `n × n`: row = truth, column = prediction.
    counts: Vec<u64>,
    /// Labelled pixels with no prediction.
    unpredicted: u64,
}

impl Confusion {
    pub fn new(n_classes: usize) -> Self {
        Confusion {
            n: n_classes,
            counts: vec![0; n_classes * n_classes],
            unpredicted: 0,
        }
    }

    pub fn n_classes(&self) -> usize {
        self.n
    }

    /// Counts one pixel. Panics on a class index out of range (callers validate masks).
    #[inline]
    pub fn add_pixel(&mut self, pred: u8, truth: u8) {
        if truth == IGNORE {
            return;
        }
        if pred == IGNORE {
            self.unpredicted += 1;
            return;
        }
        self.counts[usize::from(truth) * self.n + usize::from(pred)] += 1;
    }

    /// Counts a prediction against its labels, pixel by pixel.
    pub fn add(&mut self, pred: &[u8], truth: &[u8]) {
        assert_eq!(pred.len(), truth.len(), "prediction and truth differ in size");
        for (&p, &t) in pred.iter().zip(truth) {
            self.add_pixel(p, t);
        }
    }

    /// Adds another matrix of the same classes.
    pub fn merge(&mut self, other: &Confusion) {
        assert_eq!(self.n, other.n, "confusion matrices of different class counts");
        self.counts.iter_mut().zip(&other.counts).for_each(|(a, b)| *a += b);
        self.unpredicted += other.unpredicted;
    }

    /// A matrix from its rows (truth) of columns (prediction) and its unpredicted pixels, as
    /// [`Confusion::rows`] gives them; `None` unless the rows are square.
    pub fn from_rows(rows: &[Vec<u64>], unpredicted: u64) -> Option<Self> {
        let n = rows.len();
        rows.iter().all(|r| r.len() == n).then(|| Confusion {
            n,
            counts: rows.concat(),
            unpredicted,
        })
    }

    /// Pixels of true class `truth` predicted as `pred`.
    pub fn get(&self, truth: usize, pred: usize) -> u64 {
        self.counts[truth * self.n + pred]
    }

    /// Rows (truth) of columns (prediction).
    pub fn rows(&self) -> Vec<Vec<u64>> {
        self.counts.chunks(self.n.max(1)).map(<[u64]>::to_vec).collect()
    }

    /// Scored pixels (labelled and predicted).
    pub fn pixels(&self) -> u64 {
        self.counts.iter().sum()
    }

    pub fn unpredicted(&self) -> u64 {
        self.unpredicted
    }

    pub fn correct(&self) -> u64 {
        (0..self.n).map(|c| self.get(c, c)).sum()
    }

    pub fn truth_pixels(&self, c: usize) -> u64 {
        (0..self.n).map(|p| self.get(c, p)).sum()
    }

    pub fn pred_pixels(&self, c: usize) -> u64 {
        (0..self.n).map(|t| self.get(t, c)).sum()
    }

    /// Correct over scored pixels; `None` when there are none (an all-ignore image).
    pub fn pixel_accuracy(&self) -> Option<f64> {
        let n = self.pixels();
        (n > 0).then(|| self.correct() as f64 / n as f64)
    }

    /// Per-class dice 2|P∩T|/(|P|+|T|); `None` for a class absent from both.
    pub fn dice(&self) -> Vec<Option<f64>> {
        (0..self.n)
            .map(|c| {
                let d = self.pred_pixels(c) + self.truth_pixels(c);
                (d > 0).then(|| 2.0 * self.get(c, c) as f64 / d as f64)
            })
            .collect()
    }

    /// Per-class IoU |P∩T|/|P∪T|; `None` for a class absent from both.
    pub fn iou(&self) -> Vec<Option<f64>> {
        (0..self.n)
            .map(|c| {
                let i = self.get(c, c);
                let u = self.pred_pixels(c) + self.truth_pixels(c) - i;
                (u > 0).then(|| i as f64 / u as f64)
            })
            .collect()
    }
}

/// Mean over the classes present (fastai's `DiceMulti` skips the NaN of absent classes),
/// optionally leaving one class out (the background); `None` when no class is present.
pub fn mean_present(v: &[Option<f64>], except: Option<usize>) -> Option<f64> {
    let kept: Vec<f64> = v
        .iter()
        .enumerate()
        .filter(|&(c, _)| Some(c) != except)
        .filter_map(|(_, x)| *x)
        .collect();
    (!kept.is_empty()).then(|| kept.iter().sum::<f64>() / kept.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_answers() {
        // truth: 0 0 1 1 255 2 ; pred: 0 1 1 1 3 255 (class 3 predicted only on an ignored
        // pixel, class 2's one pixel unpredicted: both absent from the scores)
        let mut c = Confusion::new(4);
        c.add(&[0, 1, 1, 1, 3, 255], &[0, 0, 1, 1, 255, 2]);
        assert_eq!(c.pixels(), 4);
        assert_eq!(c.unpredicted(), 1);
        assert_eq!(c.pixel_accuracy(), Some(0.75));
        assert_eq!(
            c.rows(),
            vec![vec![1, 1, 0, 0], vec![0, 2, 0, 0], vec![0; 4], vec![0; 4]]
        );
        let dice = c.dice();
        assert_eq!(dice, vec![Some(2.0 / 3.0), Some(0.8), None, None]);
        assert_eq!(c.iou(), vec![Some(0.5), Some(2.0 / 3.0), None, None]);
        assert_eq!(mean_present(&dice, None), Some((2.0 / 3.0 + 0.8) / 2.0));
        assert_eq!(mean_present(&dice, Some(0)), Some(0.8));
        // what eval.json holds rebuilds the matrix (shards are merged from it)
        assert_eq!(Confusion::from_rows(&c.rows(), c.unpredicted()), Some(c.clone()));
        assert_eq!(Confusion::from_rows(&[vec![1, 2], vec![3]], 0), None);
    }

    #[test]
    fn all_ignore_and_background_only() {
        let mut c = Confusion::new(3);
        c.add(&[1, 2], &[255, 255]);
        assert_eq!((c.pixels(), c.pixel_accuracy()), (0, None));
        assert_eq!(mean_present(&c.iou(), None), None);
        let mut b = Confusion::new(3);
        b.add(&[0, 0, 0], &[0, 0, 0]);
        assert_eq!(b.iou(), vec![Some(1.0), None, None]);
        assert_eq!(mean_present(&b.iou(), Some(0)), None, "no foreground class present");
    }

    #[test]
    fn global_sums_are_not_means_of_images() {
        // image A: class 1 perfect on 1 pixel; image B: class 1 missed on 3 pixels
        let (mut a, mut b) = (Confusion::new(2), Confusion::new(2));
        a.add(&[1], &[1]);
        b.add(&[0, 0, 0], &[1, 1, 1]);
        let mut all = a.clone();
        all.merge(&b);
        assert_eq!(all.iou()[1], Some(0.25));
        assert_eq!(all.truth_pixels(1), 4);
        assert_eq!(all.pred_pixels(0), 3);
    }
}
