//! BatchNorm's forward pass, written so that burn 0.21's `flex` backend takes its SIMD paths.
//!
//! burn's own `BatchNorm::forward` broadcasts `[1, C, 1, 1]` statistics over `[B, C, H, W]`
//! four times (sub, div, mul, add); flex only vectorises a broadcast whose outer dims walk the
//! smaller tensor contiguously, which `[1, C, 1, 1]` against a batch does not, so each op falls
//! back to a scalar strided loop (BURN.md, "flex speed traps"; the profile of a training step
//! showed a quarter of its time in that loop). Here the statistics become one per-channel
//! scale and shift, repeated to `[B, C, 1, 1]` (a few hundred numbers), and the image is
//! touched by two fused-friendly ops (`x·scale + shift`) after centring. The parameters and
//! running statistics are burn's `BatchNorm` fields, so weights, names and stores are
//! unchanged. Tests check it against burn's layer: outputs, gradients and running statistics.
//!
//! One deliberate difference from burn: the running variance is updated with the *unbiased*
//! batch variance (n/(n−1)), as PyTorch does, so that statistics match torchvision/fastai.

use burn::nn::BatchNorm;
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

/// Per-channel mean over batch and space: `[B, C, H, W]` → `[1, C, 1, 1]`.
fn channel_mean<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 4> {
    x.mean_dim(3).mean_dim(2).mean_dim(0)
}

/// BatchNorm over `[B, C, H, W]`: batch statistics (and a running-statistics update) when the
/// backend records gradients, running statistics otherwise, as burn's and PyTorch's layers do.
pub fn batch_norm<B: Backend>(bn: &BatchNorm<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
    let [b, c, h, w] = x.dims();
    let device = x.device();
    let training = B::ad_enabled(&device);
    let (x, var) = if training {
        let mean = channel_mean(x.clone());
        let xc = x.sub(mean.clone().repeat_dim(0, b));
        let var = channel_mean(xc.clone().square());
        let n = (b * h * w) as f64;
        let unbiased = if n > 1.0 { n / (n - 1.0) } else { 1.0 };
        let m = bn.momentum;
        let rm = bn.running_mean.value_sync().to_device(&device);
        let rv = bn.running_var.value_sync().to_device(&device);
        bn.running_mean.update(
            rm.mul_scalar(1.0 - m)
                .add(mean.detach().reshape([c]).mul_scalar(m))
                .detach(),
        );
        bn.running_var.update(
            rv.mul_scalar(1.0 - m)
                .add(var.clone().detach().reshape([c]).mul_scalar(m * unbiased))
                .detach(),
        );
        (xc, var.reshape([c]))
    } else {
        let mean = bn.running_mean.value().to_device(&device).reshape([1, c, 1, 1]);
        (x.sub(mean.repeat_dim(0, b)), bn.running_var.value().to_device(&device))
    };
    let scale = bn.gamma.val().div(var.add_scalar(bn.epsilon).sqrt());
    let scale = scale.reshape([1, c, 1, 1]).repeat_dim(0, b);
    let shift = bn.beta.val().reshape([1, c, 1, 1]).repeat_dim(0, b);
    x.mul(scale).add(shift)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::flex::FlexDevice;
    use burn::backend::{Autodiff, Flex};
    use burn::module::Param;
    use burn::nn::BatchNormConfig;
    use burn::tensor::{Distribution, TensorData};

    type AB = Autodiff<Flex>;

    fn close(a: TensorData, b: TensorData, tol: f32, what: &str) {
        let (a, b) = (a.to_vec::<f32>().unwrap(), b.to_vec::<f32>().unwrap());
        assert_eq!(a.len(), b.len(), "{what}");
        let worst = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
        assert!(worst < tol, "{what}: max diff {worst}");
    }

    fn layer(d: &FlexDevice) -> BatchNorm<AB> {
        let mut bn = BatchNormConfig::new(5).init::<AB>(d);
        bn.gamma = Param::from_tensor(Tensor::random([5], Distribution::Uniform(0.5, 1.5), d).require_grad());
        bn.beta = Param::from_tensor(Tensor::random([5], Distribution::Uniform(-1.0, 1.0), d).require_grad());
        bn
    }

    #[test]
    fn training_matches_burns_layer_in_outputs_and_gradients() {
        let d = FlexDevice;
        let ours = layer(&d);
        // a separate layer with the same affine parameters (a clone would share the running
        // statistics' storage)
        let mut stock = BatchNormConfig::new(5).init::<AB>(&d);
        stock.gamma = Param::from_tensor(Tensor::from_data(ours.gamma.val().to_data(), &d).require_grad());
        stock.beta = Param::from_tensor(Tensor::from_data(ours.beta.val().to_data(), &d).require_grad());
        let x = Tensor::<AB, 4>::random([3, 5, 6, 7], Distribution::Normal(0.5, 2.0), &d);
        let target = Tensor::<AB, 4>::random([3, 5, 6, 7], Distribution::Default, &d);
        let (xa, xb) = (x.clone().require_grad(), x.require_grad());
        let ya = batch_norm(&ours, xa.clone());
        let yb = stock.forward(xb.clone());
        close(ya.to_data(), yb.to_data(), 1e-4, "outputs");
        let ga = ya.mul(target.clone()).sum().backward();
        let gb = yb.mul(target).sum().backward();
        close(
            xa.grad(&ga).unwrap().to_data(),
            xb.grad(&gb).unwrap().to_data(),
            1e-4,
            "d/dx",
        );
        for (name, pa, pb) in [("gamma", &ours.gamma, &stock.gamma), ("beta", &ours.beta, &stock.beta)] {
            close(
                pa.val().grad(&ga).unwrap().to_data(),
                pb.val().grad(&gb).unwrap().to_data(),
                1e-3,
                name,
            );
        }
        close(
            ours.running_mean.value_sync().to_data(),
            stock.running_mean.value_sync().to_data(),
            1e-5,
            "running mean",
        );
        // running variance: ours is PyTorch's unbiased update, burn's the biased one
        let n = (3 * 6 * 7) as f32;
        let rv_ours: Vec<f32> = ours.running_var.value_sync().to_data().to_vec().unwrap();
        let rv_stock: Vec<f32> = stock.running_var.value_sync().to_data().to_vec().unwrap();
        for (o, s) in rv_ours.iter().zip(&rv_stock) {
            // both are 0.9·1 + 0.1·v(·n/(n−1))
            let v = (s - 0.9) / 0.1;
            assert!((o - (0.9 + 0.1 * v * n / (n - 1.0))).abs() < 1e-4, "{o} {s}");
        }
    }

    #[test]
    fn inference_uses_running_statistics_like_burns_layer() {
        let d = FlexDevice;
        let bn = layer(&d);
        // give it non-trivial running statistics with one training pass
        let _ = batch_norm(
            &bn,
            Tensor::<AB, 4>::random([2, 5, 4, 4], Distribution::Normal(1.0, 3.0), &d),
        );
        let inner = burn::module::AutodiffModule::valid(&bn);
        let x = Tensor::<Flex, 4>::random([2, 5, 4, 3], Distribution::Default, &d);
        close(
            batch_norm(&inner, x.clone()).to_data(),
            inner.forward(x).to_data(),
            1e-5,
            "inference",
        );
    }
}
