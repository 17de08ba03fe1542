//! The training losses, per pixel, ignoring label 255.
//!
//! A recipe's `"loss"` picks one of fastai's segmentation losses (the same definitions, so a
//! recipe means the same thing here and in a fastai notebook):
//!
//! | recipe | fastai | value |
//! | --- | --- | --- |
//! | `"ce"` (default) | `CrossEntropyLossFlat(axis=1)` | mean of −log p(true class) over the pixels |
//! | `"focal"` | `FocalLossFlat(gamma=2, axis=1)` | mean of (1 − p)² · −log p over the pixels |
//! | `"dice"` | `DiceLoss(axis=1, smooth=1e-6)` | Σ over images and classes of 1 − (2·Σp·t + s) / (Σp + Σt + s) |
//! | `"ce+dice"` | `CrossEntropyLossFlat() + DiceLoss()` | their sum |
//!
//! fastai's `DiceLoss` reduces by *sum* over the batch's images and classes (its default
//! `reduction='sum'`), so in `"ce+dice"` the dice term outweighs the cross-entropy term by
//! about the number of image·class pairs; that is fastai's definition and is kept.
//!
//! Pixels labelled [`IGNORE`](facepipe_core::palette::IGNORE) (255: no label, e.g. `rgb2class
//! --off-palette ignore`) count for nothing: they are left out of the means' sums and counts
//! and of the dice sums (fastai has no ignore label; with none present the values are
//! fastai's). burn's `CrossEntropyLoss` pad option gathers before masking, so the mask is
//! applied here: 255 is replaced by class 0 for the gather and its term multiplied by 0.

use burn::tensor::activation::{log_softmax, softmax};
use burn::tensor::backend::Backend;
use burn::tensor::{IndexingUpdateOp, Int, Tensor};
use facepipe_core::palette::IGNORE;

use crate::kernels::Kernels;
pub use crate::kernels::seg_loss::DICE_SMOOTH;
use crate::kernels::seg_loss::Terms;
/// fastai's `FocalLossFlat` default `gamma` (2).
pub const FOCAL_GAMMA: i32 = 2;

pub use facepipe_formats::recipe::Loss;

/// What a recipe's [`Loss`] computes (the enum is the published recipe format's, in
/// `facepipe_formats::recipe`; the arithmetic is here).
pub trait Objective: Copy {
    /// The loss of `logits` (`[batch, classes, height, width]`) against `target`
    /// (`[batch, height, width]`, class indices or 255), through the backend's kernel
    /// ([`Kernels::seg_loss`]; on the CPU one fused pass for `ce`, `dice` and `ce+dice`), else
    /// as burn's operations ([`Objective::reference`]).
    fn compute<B: Kernels>(self, logits: Tensor<B, 4>, target: Tensor<B, 3, Int>) -> Tensor<B, 1> {
        self.terms()
            .and_then(|terms| B::seg_loss(logits.clone(), target.clone(), terms))
            .unwrap_or_else(|| self.reference(logits, target))
    }

    /// The terms a fused kernel computes, or None (focal: burn's operations only).
    fn terms(self) -> Option<Terms>;

    /// The loss as burn operations: where a backend has no fused kernel, and the reference
    /// the CPU kernel is tested against.
    fn reference<B: Backend>(self, logits: Tensor<B, 4>, target: Tensor<B, 3, Int>) -> Tensor<B, 1>;
}

impl Objective for Loss {
    fn terms(self) -> Option<Terms> {
        match self {
            Loss::CrossEntropy => Some(Terms { ce: true, dice: false }),
            Loss::Dice => Some(Terms { ce: false, dice: true }),
            Loss::CrossEntropyDice => Some(Terms { ce: true, dice: true }),
            Loss::Focal => None,
        }
    }

    fn reference<B: Backend>(self, logits: Tensor<B, 4>, target: Tensor<B, 3, Int>) -> Tensor<B, 1> {
        match self {
            Loss::CrossEntropy => masked_cross_entropy(logits, target),
            Loss::Dice => masked_dice(logits, target),
            Loss::Focal => masked_focal(logits, target),
            Loss::CrossEntropyDice => {
                masked_cross_entropy(logits.clone(), target.clone()) + masked_dice(logits, target)
            }
        }
    }
}

/// The labelled pixels' weights (1, or 0 for 255), the target with 255 replaced by class 0,
/// and the number of labelled pixels (at least 1).
fn labelled<B: Backend>(target: Tensor<B, 3, Int>) -> (Tensor<B, 3>, Tensor<B, 3, Int>, Tensor<B, 1>) {
    let labelled = target.clone().not_equal_elem(i64::from(IGNORE));
    let safe = target.mask_fill(labelled.clone().bool_not(), 0);
    let weight = labelled.float();
    let count = weight.clone().sum().clamp_min(1.0);
    (weight, safe, count)
}

/// log p(true class) per pixel.
fn log_p_true<B: Backend>(logits: Tensor<B, 4>, safe: Tensor<B, 3, Int>) -> Tensor<B, 3> {
    log_softmax(logits, 1)
        .gather(1, safe.unsqueeze_dim::<4>(1))
        .squeeze_dim(1)
}

/// Mean cross-entropy over the labelled pixels; 0 when no pixel is labelled.
pub fn masked_cross_entropy<B: Backend>(logits: Tensor<B, 4>, target: Tensor<B, 3, Int>) -> Tensor<B, 1> {
    let (weight, safe, count) = labelled(target);
    (log_p_true(logits, safe) * weight).sum().neg() / count
}

/// Mean focal loss (γ = 2) over the labelled pixels; 0 when no pixel is labelled.
pub fn masked_focal<B: Backend>(logits: Tensor<B, 4>, target: Tensor<B, 3, Int>) -> Tensor<B, 1> {
    let (weight, safe, count) = labelled(target);
    let logp = log_p_true(logits, safe);
    let miss = logp.clone().exp().neg().add_scalar(1.0); // 1 − p
    let mut focus = miss.clone();
    for _ in 1..FOCAL_GAMMA {
        focus = focus * miss.clone();
    }
    (focus * logp * weight).sum().neg() / count
}

/// fastai's `DiceLoss` (softmax over the classes, per image and class, summed) over the
/// labelled pixels.
pub fn masked_dice<B: Backend>(logits: Tensor<B, 4>, target: Tensor<B, 3, Int>) -> Tensor<B, 1> {
    let [b, c, h, w] = logits.dims();
    let (weight, safe, _) = labelled(target);
    let weight = weight.unsqueeze_dim::<4>(1);
    // one-hot targets, all zero at an ignored pixel
    let truth = Tensor::<B, 4>::zeros([b, c, h, w], &logits.device()).scatter(
        1,
        safe.unsqueeze_dim::<4>(1),
        weight.clone(),
        IndexingUpdateOp::Add,
    );
    let p = softmax(logits, 1) * weight;
    let per = |t: Tensor<B, 4>| t.sum_dim(3).sum_dim(2);
    let inter = per(p.clone() * truth.clone());
    let union = per(p + truth);
    let dice = (inter * 2.0 + DICE_SMOOTH) / (union + DICE_SMOOTH);
    dice.neg().add_scalar(1.0).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::flex::FlexDevice;
    use burn::backend::{Autodiff, Flex};
    use burn::tensor::TensorData;

    type B = Flex;

    fn tensors<B: Backend>(
        logits: Vec<f32>,
        shape: [usize; 4],
        target: Vec<i64>,
        d: &B::Device,
    ) -> (Tensor<B, 4>, Tensor<B, 3, Int>) {
        let [b, _, h, w] = shape;
        (
            Tensor::from_data(TensorData::new(logits, shape), d),
            Tensor::from_data(TensorData::new(target, [b, h, w]), d),
        )
    }

    fn value(loss: Loss, logits: Vec<f32>, shape: [usize; 4], target: Vec<i64>) -> f64 {
        let (l, t) = tensors::<B>(logits, shape, target, &FlexDevice);
        f64::from(loss.compute(l, t).into_scalar())
    }

    // 1 image, 2 classes, 1×3 pixels. Logits per pixel: (0, 0), (2, 0), (0, 1).
    const LOGITS: [f32; 6] = [0.0, 2.0, 0.0, /* class 1: */ 0.0, 0.0, 1.0];
    const PIXELS: [[f64; 2]; 3] = [[0.0, 0.0], [2.0, 0.0], [0.0, 1.0]];

    fn probs(l: [f64; 2]) -> [f64; 2] {
        let z = l[0].exp() + l[1].exp();
        [l[0].exp() / z, l[1].exp() / z]
    }

    #[test]
    fn cross_entropy_matches_hand_computed_values_and_ignores_255() {
        let ce = |l: [f64; 2], t: usize| -probs(l)[t].ln();
        let want = (ce(PIXELS[0], 0) + ce(PIXELS[1], 1) + ce(PIXELS[2], 1)) / 3.0;
        let ce_of = |t: Vec<i64>| value(Loss::CrossEntropy, LOGITS.to_vec(), [1, 2, 1, 3], t);
        assert!((ce_of(vec![0, 1, 1]) - want).abs() < 1e-6);
        // the middle pixel ignored: the mean over the other two
        let want = (ce(PIXELS[0], 0) + ce(PIXELS[2], 1)) / 2.0;
        assert!((ce_of(vec![0, 255, 1]) - want).abs() < 1e-6);
        // nothing labelled: zero, not NaN
        assert_eq!(ce_of(vec![255, 255, 255]), 0.0);
    }

    #[test]
    fn focal_matches_fastai_formula() {
        // FocalLossFlat: ce = −log p_t; (1 − exp(−ce))^γ · ce, mean
        let f = |l: [f64; 2], t: usize| {
            let p = probs(l)[t];
            (1.0 - p).powi(2) * -p.ln()
        };
        let want = (f(PIXELS[0], 0) + f(PIXELS[1], 1) + f(PIXELS[2], 1)) / 3.0;
        let got = value(Loss::Focal, LOGITS.to_vec(), [1, 2, 1, 3], vec![0, 1, 1]);
        assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        let want = (f(PIXELS[0], 0) + f(PIXELS[2], 1)) / 2.0;
        let got = value(Loss::Focal, LOGITS.to_vec(), [1, 2, 1, 3], vec![0, 255, 1]);
        assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        assert_eq!(value(Loss::Focal, LOGITS.to_vec(), [1, 2, 1, 3], vec![255; 3]), 0.0);
    }

    /// fastai's DiceLoss on one image: per class (2Σp·t + s)/(Σp + Σt + s), 1 − that, summed.
    fn dice_by_hand(pixels: &[[f64; 2]], target: &[i64]) -> f64 {
        let mut loss = 0.0;
        for c in 0..2 {
            let (mut inter, mut union) = (0.0, 0.0);
            for (l, &t) in pixels.iter().zip(target) {
                if t == 255 {
                    continue;
                }
                let p = probs(*l)[c];
                let t = f64::from(u8::from(t as usize == c));
                inter += p * t;
                union += p + t;
            }
            loss += 1.0 - (2.0 * inter + DICE_SMOOTH) / (union + DICE_SMOOTH);
        }
        loss
    }

    #[test]
    fn dice_matches_fastai_formula_summed_over_images_and_classes() {
        let got = value(Loss::Dice, LOGITS.to_vec(), [1, 2, 1, 3], vec![0, 1, 1]);
        let want = dice_by_hand(&PIXELS, &[0, 1, 1]);
        assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        let got = value(Loss::Dice, LOGITS.to_vec(), [1, 2, 1, 3], vec![0, 255, 1]);
        let want = dice_by_hand(&PIXELS, &[0, 255, 1]);
        assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        // two images: the sum of each image's loss (reduction "sum")
        let second = [[1.0, -1.0], [0.5, 0.0], [0.0, 3.0]];
        let mut logits = LOGITS.to_vec();
        logits.extend([1.0, 0.5, 0.0, -1.0, 0.0, 3.0]);
        let got = value(Loss::Dice, logits, [2, 2, 1, 3], vec![0, 1, 1, 1, 0, 1]);
        let want = dice_by_hand(&PIXELS, &[0, 1, 1]) + dice_by_hand(&second, &[1, 0, 1]);
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
        // ce+dice is the sum
        let both = value(Loss::CrossEntropyDice, LOGITS.to_vec(), [1, 2, 1, 3], vec![0, 1, 1]);
        let ce = value(Loss::CrossEntropy, LOGITS.to_vec(), [1, 2, 1, 3], vec![0, 1, 1]);
        let want = ce + dice_by_hand(&PIXELS, &[0, 1, 1]);
        assert!((both - want).abs() < 1e-6);
    }

    #[test]
    fn every_loss_has_gradients_that_lower_it() {
        type A = Autodiff<Flex>;
        let d = FlexDevice;
        let target = vec![0, 1, 1, 255, 0, 1];
        for loss in Loss::ALL {
            let (l, t) = tensors::<A>(
                vec![0.3, -0.2, 0.1, 0.0, 0.5, 0.2, -0.1, 0.4, 0.0, 0.2, 0.1, -0.3],
                [1, 2, 2, 3],
                target.clone(),
                &d,
            );
            let l = l.require_grad();
            let v = loss.compute(l.clone(), t.clone());
            let before = f64::from(v.clone().into_scalar());
            let g = l.grad(&v.backward()).unwrap();
            // one small step against the gradient lowers the loss
            let stepped = l.inner() - g.clone() * 0.05;
            let after = f64::from(loss.compute(Tensor::<A, 4>::from_inner(stepped), t).into_scalar());
            assert!(after < before, "{loss}: {before} → {after}");
            // the ignored pixel (index 3, both channels) gets no gradient
            let g = g.into_data().to_vec::<f32>().unwrap();
            assert_eq!((g[3], g[9]), (0.0, 0.0), "{loss}: {g:?}");
        }
    }

    #[test]
    fn names_round_trip_in_json_and_text() {
        for loss in Loss::ALL {
            let json = serde_json::to_string(&loss).unwrap();
            assert_eq!(json, format!("\"{}\"", loss.name()));
            assert_eq!(serde_json::from_str::<Loss>(&json).unwrap(), loss);
            assert_eq!(loss.name().parse::<Loss>().unwrap(), loss);
        }
        let e = "bce".parse::<Loss>().unwrap_err();
        assert!(e.contains("ce, dice, focal, ce+dice"), "{e}");
    }

    #[test]
    fn fused_losses_match_burn_ops_in_value_and_gradient() {
        use crate::kernels::Kernels;
        use crate::kernels::tests::{Ad, close, rand, twin};
        let (b, c, h, w) = (3, 5, 7, 9);
        // classes 0..5 with about one pixel in six ignored (255); class 4 absent from image 1
        let target: Vec<i64> = (0..b * h * w)
            .map(|i| match (i * 7919 + 13) % 31 {
                r if r % 6 == 0 => 255,
                r => {
                    let k = (r % 5) as i64;
                    if i / (h * w) == 1 && k == 4 { 0 } else { k }
                }
            })
            .collect();
        let t = || Tensor::<Ad, 3, Int>::from_data(TensorData::new(target.clone(), [b, h, w]), &FlexDevice);
        for loss in [Loss::CrossEntropy, Loss::Dice, Loss::CrossEntropyDice] {
            let z = rand([b, c, h, w]).mul_scalar(2.0).require_grad();
            let z2 = twin(&z);
            let terms = loss.terms().expect("a fused loss");
            let ours = <Ad as Kernels>::seg_loss(z.clone(), t(), terms).expect("the CPU's fused kernel");
            let want = loss.reference(z2.clone(), t());
            close(ours.to_data(), want.to_data(), 1e-5, &format!("{loss}: value"));
            // an upstream factor other than 1 reaches the gradient
            let g1 = (ours * 2.5).backward();
            let g2 = (want * 2.5).backward();
            close(
                z.grad(&g1).unwrap().to_data(),
                z2.grad(&g2).unwrap().to_data(),
                1e-4,
                &format!("{loss}: d/dlogits"),
            );
            // the inference backend: the value alone
            let inner = <Flex as Kernels>::seg_loss(z.inner(), t().inner(), terms).expect("the CPU's fused kernel");
            close(
                inner.to_data(),
                loss.reference(z2.inner(), t().inner()).to_data(),
                1e-5,
                &format!("{loss}: inner value"),
            );
        }
    }
}
