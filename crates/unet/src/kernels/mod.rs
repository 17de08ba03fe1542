//! The network's hot operations as a backend extension: [`Kernels`] is a burn backend trait
//! with convolution, BatchNorm(+ReLU), fastai's Adam step and the fused segmentation loss as
//! methods, as burn's custom-kernel examples extend a backend.
//!
//! * On the CPU (`Flex`, and `Autodiff<Flex>` for training) they run facepipe's own kernels
//!   ([`conv`]: convolution, input and weight gradients as blocked GEMM over [`gemm`]; [`bn`]:
//!   BatchNorm with ReLU fused, forward and backward; [`adam`]: one pass per parameter;
//!   [`seg_loss`]: cross-entropy and dice with their gradient in one pass per image), with
//!   custom backward nodes in burn's autodiff graph ([`flex`]); [`alloc`] tunes glibc's
//!   allocator for a step's large buffers.
//! * Every other backend (CUDA, wgpu) keeps the default methods, which are burn's own operations
//!   exactly as the model used them before ([`reference`]; for the loss, `training::loss`'s),
//!   so its numerics and kernels are unchanged.
//!
//! This layer is the lowest of the crate: it imports none of the others (`tests/layers.rs`).
//!
//! Layout: NCHW throughout, as burn's tensors are. Channels-last would need a transposition at
//! every hand-over to burn's other operations (flex's own convolution spent a third of its
//! time on such copies), and in NCHW the patch rows of a stride-1 convolution are shifted
//! copies of whole planes, the cheapest im2col there is.
//!
//! The model calls [`conv2d`] and [`batch_norm`] on its burn modules (`Conv2d`, `BatchNorm`):
//! parameters, names and stored weights do not change. Tests check each CPU kernel against
//! the reference on random shapes, forward and gradients.

pub mod adam;
pub mod alloc;
pub mod bn;
pub mod conv;
mod flex;
pub mod gemm;
pub mod seg_loss;

use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, PaddingConfig2d};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Int, Tensor};

use crate::kernels::seg_loss::Terms;
use burn::tensor::ops::ConvOptions;

pub use adam::AdamStep;

/// A backend with facepipe's hot operations; the defaults are burn's own.
pub trait Kernels: Backend {
    /// `conv2d` with symmetric padding, one group or more.
    fn conv2d(
        x: Tensor<Self, 4>,
        weight: Tensor<Self, 4>,
        bias: Option<Tensor<Self, 1>>,
        options: ConvOptions<2>,
    ) -> Tensor<Self, 4> {
        reference::conv2d(x, weight, bias, options)
    }

    /// BatchNorm with the batch's statistics (then ReLU if `relu`): the output, and the
    /// per-channel mean and biased variance (detached) for the running statistics.
    fn batch_norm_train(
        x: Tensor<Self, 4>,
        gamma: Tensor<Self, 1>,
        beta: Tensor<Self, 1>,
        epsilon: f64,
        relu: bool,
    ) -> (Tensor<Self, 4>, Tensor<Self, 1>, Tensor<Self, 1>) {
        reference::batch_norm_train(x, gamma, beta, epsilon, relu)
    }

    /// BatchNorm with running statistics (then ReLU if `relu`).
    #[allow(clippy::too_many_arguments)]
    fn batch_norm_eval(
        x: Tensor<Self, 4>,
        gamma: Tensor<Self, 1>,
        beta: Tensor<Self, 1>,
        mean: Tensor<Self, 1>,
        var: Tensor<Self, 1>,
        epsilon: f64,
        relu: bool,
    ) -> Tensor<Self, 4> {
        reference::batch_norm_eval(x, gamma, beta, mean, var, epsilon, relu)
    }

    /// One Adam step (fastai's order, see `training::optim`) on a flattened parameter `p` with
    /// gradient `g` and moments `m`, `v`: the new parameter, `m` and `v`.
    fn adam_step(
        p: Tensor<Self, 1>,
        g: Tensor<Self, 1>,
        m: Tensor<Self, 1>,
        v: Tensor<Self, 1>,
        h: &AdamStep,
    ) -> [Tensor<Self, 1>; 3] {
        reference::adam_step(p, g, m, v, h)
    }

    /// The loss of `logits` against `target` (class indices, 255 ignored) summing `terms`
    /// (cross-entropy, dice: [`seg_loss`]) as one fused kernel, or None where the backend has
    /// none: the caller then computes it with burn's operations (`training::loss`).
    fn seg_loss(_logits: Tensor<Self, 4>, _target: Tensor<Self, 3, Int>, _terms: Terms) -> Option<Tensor<Self, 1>> {
        None
    }
}

/// Whether the CPU backend uses facepipe's kernels (the default) or burn's own operations
/// (`FACEPIPE_CPU_KERNELS=burn`, read once per process): for timing one against the other in
/// the same run, and for bisecting a numerical difference.
pub fn cpu_kernels_enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var("FACEPIPE_CPU_KERNELS").map_or(true, |v| v != "burn"))
}

/// A training backend whose inference backend has the kernels too.
pub trait TrainBackend: AutodiffBackend<InnerBackend: Kernels> + Kernels {}
impl<B: AutodiffBackend<InnerBackend: Kernels> + Kernels> TrainBackend for B {}

impl Kernels for burn::backend::Flex {
    fn conv2d(
        x: Tensor<Self, 4>,
        weight: Tensor<Self, 4>,
        bias: Option<Tensor<Self, 1>>,
        options: ConvOptions<2>,
    ) -> Tensor<Self, 4> {
        flex::conv2d(x, weight, bias, options)
    }

    fn batch_norm_train(
        x: Tensor<Self, 4>,
        gamma: Tensor<Self, 1>,
        beta: Tensor<Self, 1>,
        epsilon: f64,
        relu: bool,
    ) -> (Tensor<Self, 4>, Tensor<Self, 1>, Tensor<Self, 1>) {
        flex::batch_norm_train(x, gamma, beta, epsilon, relu)
    }

    fn batch_norm_eval(
        x: Tensor<Self, 4>,
        gamma: Tensor<Self, 1>,
        beta: Tensor<Self, 1>,
        mean: Tensor<Self, 1>,
        var: Tensor<Self, 1>,
        epsilon: f64,
        relu: bool,
    ) -> Tensor<Self, 4> {
        flex::batch_norm_eval(x, gamma, beta, mean, var, epsilon, relu)
    }

    fn adam_step(
        p: Tensor<Self, 1>,
        g: Tensor<Self, 1>,
        m: Tensor<Self, 1>,
        v: Tensor<Self, 1>,
        h: &AdamStep,
    ) -> [Tensor<Self, 1>; 3] {
        flex::adam_step(p, g, m, v, h)
    }

    fn seg_loss(logits: Tensor<Self, 4>, target: Tensor<Self, 3, Int>, terms: Terms) -> Option<Tensor<Self, 1>> {
        flex::seg_loss(logits, target, terms)
    }
}

impl Kernels for burn::backend::Autodiff<burn::backend::Flex> {
    fn conv2d(
        x: Tensor<Self, 4>,
        weight: Tensor<Self, 4>,
        bias: Option<Tensor<Self, 1>>,
        options: ConvOptions<2>,
    ) -> Tensor<Self, 4> {
        flex::conv2d_autodiff(x, weight, bias, options)
    }

    fn batch_norm_train(
        x: Tensor<Self, 4>,
        gamma: Tensor<Self, 1>,
        beta: Tensor<Self, 1>,
        epsilon: f64,
        relu: bool,
    ) -> (Tensor<Self, 4>, Tensor<Self, 1>, Tensor<Self, 1>) {
        flex::batch_norm_train_autodiff(x, gamma, beta, epsilon, relu)
    }

    fn seg_loss(logits: Tensor<Self, 4>, target: Tensor<Self, 3, Int>, terms: Terms) -> Option<Tensor<Self, 1>> {
        flex::seg_loss_autodiff(logits, target, terms)
    }
}

#[cfg(feature = "cuda")]
impl Kernels for burn_cuda::Cuda {}
#[cfg(feature = "cuda")]
impl Kernels for burn::backend::Autodiff<burn_cuda::Cuda> {}
#[cfg(feature = "wgpu")]
impl Kernels for burn_wgpu::Wgpu {}
#[cfg(feature = "wgpu")]
impl Kernels for burn::backend::Autodiff<burn_wgpu::Wgpu> {}

/// burn's own operations, as the model used them before the kernels: the defaults of
/// [`Kernels`] and the reference the CPU kernels are tested against.
pub mod reference {
    use burn::tensor::Tensor;
    use burn::tensor::activation::relu as relu_op;
    use burn::tensor::backend::Backend;
    use burn::tensor::ops::ConvOptions;

    pub fn conv2d<B: Backend>(
        x: Tensor<B, 4>,
        weight: Tensor<B, 4>,
        bias: Option<Tensor<B, 1>>,
        options: ConvOptions<2>,
    ) -> Tensor<B, 4> {
        burn::tensor::module::conv2d(x, weight, bias, options)
    }

    fn channel_mean<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 4> {
        x.mean_dim(3).mean_dim(2).mean_dim(0)
    }

    /// `x·scale + shift` with `[1, C, 1, 1]` statistics repeated to `[B, C, 1, 1]`: flex only
    /// vectorises broadcasts whose outer dims walk the smaller tensor, which `[1, C, 1, 1]`
    /// against a batch does not (the layout of the pre-kernel model, kept as the default).
    fn scale_shift<B: Backend>(x: Tensor<B, 4>, scale: Tensor<B, 1>, shift: Tensor<B, 1>, relu: bool) -> Tensor<B, 4> {
        let [b, c, _, _] = x.dims();
        let scale = scale.reshape([1, c, 1, 1]).repeat_dim(0, b);
        let shift = shift.reshape([1, c, 1, 1]).repeat_dim(0, b);
        let y = x.mul(scale).add(shift);
        if relu { relu_op(y) } else { y }
    }

    pub fn batch_norm_train<B: Backend>(
        x: Tensor<B, 4>,
        gamma: Tensor<B, 1>,
        beta: Tensor<B, 1>,
        epsilon: f64,
        relu: bool,
    ) -> (Tensor<B, 4>, Tensor<B, 1>, Tensor<B, 1>) {
        let [b, c, _, _] = x.dims();
        let mean = channel_mean(x.clone());
        let xc = x.sub(mean.clone().repeat_dim(0, b));
        let var = channel_mean(xc.clone().square()).reshape([c]);
        let scale = gamma.div(var.clone().add_scalar(epsilon).sqrt());
        let y = scale_shift(xc, scale, beta, relu);
        (y, mean.reshape([c]).detach(), var.detach())
    }

    #[allow(clippy::too_many_arguments)]
    pub fn batch_norm_eval<B: Backend>(
        x: Tensor<B, 4>,
        gamma: Tensor<B, 1>,
        beta: Tensor<B, 1>,
        mean: Tensor<B, 1>,
        var: Tensor<B, 1>,
        epsilon: f64,
        relu: bool,
    ) -> Tensor<B, 4> {
        let [b, c, _, _] = x.dims();
        let xc = x.sub(mean.reshape([1, c, 1, 1]).repeat_dim(0, b));
        let scale = gamma.div(var.add_scalar(epsilon).sqrt());
        scale_shift(xc, scale, beta, relu)
    }

    /// fastai's Adam step as burn operations (what the optimiser did before the fused kernel).
    pub fn adam_step<B: Backend>(
        p: Tensor<B, 1>,
        g: Tensor<B, 1>,
        m: Tensor<B, 1>,
        v: Tensor<B, 1>,
        h: &super::AdamStep,
    ) -> [Tensor<B, 1>; 3] {
        let x = match h.decay {
            Some(d) => p.mul_scalar(d),
            None => p,
        };
        let (b1, b2) = (h.beta1, h.beta2);
        let m = m.mul_scalar(b1).add(g.clone().mul_scalar(1.0 - b1));
        let v = v.mul_scalar(b2).add(g.clone().mul(g).mul_scalar(1.0 - b2));
        let m_hat = m.clone().div_scalar(1.0 - b1.powi(h.step));
        let v_hat = v.clone().div_scalar(1.0 - b2.powi(h.step));
        let update = m_hat.div(v_hat.sqrt().add_scalar(h.eps)).mul_scalar(h.lr);
        [x.sub(update), m, v]
    }
}

/// A burn `Conv2d` layer's forward pass through [`Kernels::conv2d`] (`Same` or asymmetric
/// padding, which the model never uses, goes through burn's layer).
pub fn conv2d<B: Kernels>(layer: &Conv2d<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
    let pad = match layer.padding {
        PaddingConfig2d::Valid => [0, 0],
        PaddingConfig2d::Explicit(top, left, bottom, right) if top == bottom && left == right => [top, left],
        _ => return layer.forward(x),
    };
    let options = ConvOptions::new(layer.stride, pad, layer.dilation, layer.groups);
    <B as Kernels>::conv2d(x, layer.weight.val(), layer.bias.as_ref().map(|b| b.val()), options)
}

/// A burn `BatchNorm` layer's forward pass through [`Kernels`], then ReLU if `relu`: batch
/// statistics and a running-statistics update when the backend records gradients, running
/// statistics otherwise, as burn's and PyTorch's layers do.
///
/// One deliberate difference from burn: the running variance is updated with the *unbiased*
/// batch variance (n/(n−1)), as PyTorch does, so that statistics match torchvision/fastai.
pub fn batch_norm<B: Kernels>(layer: &BatchNorm<B>, x: Tensor<B, 4>, relu: bool) -> Tensor<B, 4> {
    let [b, _, h, w] = x.dims();
    let device = x.device();
    if !B::ad_enabled(&device) {
        let mean = layer.running_mean.value().to_device(&device);
        let var = layer.running_var.value().to_device(&device);
        return B::batch_norm_eval(x, layer.gamma.val(), layer.beta.val(), mean, var, layer.epsilon, relu);
    }
    let (y, mean, var) = B::batch_norm_train(x, layer.gamma.val(), layer.beta.val(), layer.epsilon, relu);
    let n = (b * h * w) as f64;
    let unbiased = if n > 1.0 { n / (n - 1.0) } else { 1.0 };
    let m = layer.momentum;
    let rm = layer.running_mean.value_sync().to_device(&device);
    let rv = layer.running_var.value_sync().to_device(&device);
    layer
        .running_mean
        .update(rm.mul_scalar(1.0 - m).add(mean.mul_scalar(m)).detach());
    layer
        .running_var
        .update(rv.mul_scalar(1.0 - m).add(var.mul_scalar(m * unbiased)).detach());
    y
}

/// `n` zeros, written by rayon's threads when there are many: an output buffer is allocated
/// on the thread that drives the network, and a serial `memset` of every layer's output there
/// left the other core idle (a twentieth of a training step at 128²).
pub(crate) fn zeroed(n: usize) -> Vec<f32> {
    use rayon::prelude::*;
    if n < 1 << 16 {
        return vec![0f32; n];
    }
    let mut v = Vec::with_capacity(n);
    v.par_extend(rayon::iter::repeat_n(0f32, n));
    v
}

/// Sum of a slice in `f32`, 16 lanes wide (so it vectorises).
pub(crate) fn sum(xs: &[f32]) -> f32 {
    sum_by(xs, |v| v)
}

/// Sum of `f(x)` over a slice, 16 lanes wide like [`sum`].
pub(crate) fn sum_by(xs: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [0f32; 16];
    let mut chunks = xs.chunks_exact(16);
    for ch in &mut chunks {
        for (a, v) in acc.iter_mut().zip(ch) {
            *a += f(*v);
        }
    }
    acc.iter().sum::<f32>() + chunks.remainder().iter().map(|v| f(*v)).sum::<f32>()
}

#[cfg(test)]
pub(crate) mod tests;
