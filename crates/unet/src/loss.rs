//! Per-pixel cross-entropy that ignores label 255.
//!
//! fastai's loss is the mean cross-entropy over all B·H·W pixels. Here pixels labelled
//! [`IGNORE`](facepipe_core::palette::IGNORE) (255: no label, e.g. `rgb2class --off-palette
//! ignore`) are excluded from both the sum and the count, so the value is the mean over
//! labelled pixels. burn's `CrossEntropyLoss` pad option gathers before masking, so the mask
//! is applied here: 255 is replaced by class 0 for the gather and its term multiplied by 0.

use burn::tensor::activation::log_softmax;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};
use facepipe_core::palette::IGNORE;

/// Mean cross-entropy over the labelled pixels; 0 when no pixel is labelled.
/// `logits`: `[batch, classes, height, width]`; `target`: `[batch, height, width]` class
/// indices or 255.
pub fn masked_cross_entropy<B: Backend>(logits: Tensor<B, 4>, target: Tensor<B, 3, Int>) -> Tensor<B, 1> {
    let labelled = target.clone().not_equal_elem(i64::from(IGNORE));
    let safe = target.mask_fill(labelled.clone().bool_not(), 0);
    let logp = log_softmax(logits, 1);
    let picked: Tensor<B, 3> = logp.gather(1, safe.unsqueeze_dim::<4>(1)).squeeze_dim(1);
    let weight = labelled.float();
    let count = weight.clone().sum().clamp_min(1.0);
    (picked * weight).sum().neg() / count
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use burn::backend::flex::FlexDevice;
    use burn::tensor::TensorData;

    type B = Flex;

    fn loss(logits: Vec<f32>, shape: [usize; 4], target: Vec<i64>) -> f64 {
        let d = FlexDevice;
        let [b, _, h, w] = shape;
        let l = Tensor::<B, 4>::from_data(TensorData::new(logits, shape), &d);
        let t = Tensor::<B, 3, Int>::from_data(TensorData::new(target, [b, h, w]), &d);
        f64::from(masked_cross_entropy(l, t).into_scalar())
    }

    #[test]
    fn matches_hand_computed_values_and_ignores_255() {
        // 1 image, 2 classes, 1×3 pixels. Logits per pixel: (0, 0), (2, 0), (0, 1).
        let logits = vec![0.0, 2.0, 0.0, /* class 1: */ 0.0, 0.0, 1.0];
        let ce = |l: [f64; 2], t: usize| -(l[t] - (l[0].exp() + l[1].exp()).ln());
        let want = (ce([0.0, 0.0], 0) + ce([2.0, 0.0], 1) + ce([0.0, 1.0], 1)) / 3.0;
        assert!((loss(logits.clone(), [1, 2, 1, 3], vec![0, 1, 1]) - want).abs() < 1e-6);
        // the middle pixel ignored: the mean over the other two
        let want = (ce([0.0, 0.0], 0) + ce([0.0, 1.0], 1)) / 2.0;
        assert!((loss(logits.clone(), [1, 2, 1, 3], vec![0, 255, 1]) - want).abs() < 1e-6);
        // nothing labelled: zero, not NaN
        assert_eq!(loss(logits, [1, 2, 1, 3], vec![255, 255, 255]), 0.0);
    }
}
