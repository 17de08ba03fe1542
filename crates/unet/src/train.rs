//! Training steps and fastai's `lr_find` over any of the UNets.

use anyhow::Result;
use burn::module::AutodiffModule;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Int, Tensor, TensorData};

use crate::loader::Batch;
use crate::loss::masked_cross_entropy;
use crate::model::{FastaiUnet, SmpUnet};
use crate::optim::GroupAdam;
use crate::schedule::{LossSmoother, Suggestions, lr_find_lr, suggest};

/// A segmentation network: images in, logits at the input's size out.
pub trait Segmenter<B: AutodiffBackend>: AutodiffModule<B> + Clone {
    fn logits(&self, x: Tensor<B, 4>) -> Tensor<B, 4>;
}

impl<B: AutodiffBackend> Segmenter<B> for SmpUnet<B> {
    fn logits(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        self.forward(x)
    }
}

impl<B: AutodiffBackend> Segmenter<B> for FastaiUnet<B> {
    fn logits(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        self.forward(x)
    }
}

/// A batch as tensors on `device`.
pub fn to_tensors<B: AutodiffBackend>(b: &Batch, device: &B::Device) -> (Tensor<B, 4>, Tensor<B, 3, Int>) {
    let x = Tensor::from_data(TensorData::new(b.images.clone(), [b.n, 3, b.size, b.size]), device);
    let y = Tensor::from_data(TensorData::new(b.masks.clone(), [b.n, b.size, b.size]), device);
    (x, y)
}

/// One optimiser step on a batch; returns the updated network and the batch loss.
pub fn train_step<B: AutodiffBackend, M: Segmenter<B>>(
    net: M,
    opt: &mut GroupAdam<B>,
    batch: &Batch,
    lrs: [f64; 3],
    beta1: f64,
    device: &B::Device,
) -> (M, f64) {
    let (x, y) = to_tensors::<B>(batch, device);
    let loss = masked_cross_entropy(net.logits(x), y);
    let value = loss.clone().into_scalar();
    let value: f64 = burn::tensor::ElementConversion::elem(value);
    let grads = loss.backward();
    (opt.step(net, &grads, lrs, beta1), value)
}

/// What `lr_find` saw.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LrFind {
    pub lrs: Vec<f64>,
    /// Smoothed (EMA, debiased) losses, one per learning rate tried.
    pub losses: Vec<f64>,
    pub suggestions: Option<Suggestions>,
}

/// fastai's `lr_find`: an exponential sweep from `start` to `end` over `num_it` training
/// batches (the same rate for every group, β1 0.95 as in fastai's default moms), stopping
/// when the smoothed loss exceeds four times the best. It trains copies: the network and the
/// optimiser given are left exactly as they were.
pub fn lr_find<B: AutodiffBackend, M: Segmenter<B>>(
    net: &M,
    opt: &GroupAdam<B>,
    mut batches: impl FnMut(usize) -> Result<Batch>,
    start: f64,
    end: f64,
    num_it: usize,
    device: &B::Device,
) -> Result<LrFind> {
    let mut net = net.clone();
    let mut opt = opt.clone();
    let mut smoother = LossSmoother::default();
    let (mut lrs, mut losses) = (Vec::new(), Vec::new());
    for i in 0..num_it {
        let lr = lr_find_lr(start, end, i, num_it);
        let batch = batches(i)?;
        let (next, loss) = train_step(net, &mut opt, &batch, [lr; 3], 0.95, device);
        net = next;
        let (smooth, stop) = smoother.push(loss);
        lrs.push(lr);
        losses.push(smooth);
        if stop {
            break;
        }
    }
    let suggestions = suggest(&lrs, &losses, num_it);
    Ok(LrFind {
        lrs,
        losses,
        suggestions,
    })
}
