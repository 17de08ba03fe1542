//! UNet over the ResNet34 encoder.
//!
//! `--arch smp`: the slim decoder of segmentation_models_pytorch's `Unet`: five blocks of
//! (nearest upsample, concatenate the skip, conv3×3-BN-ReLU twice) with 256/128/64/32/16
//! channels, then a 3×3 head to the classes. Skips are the encoder's layer3, layer2, layer1 and
//! stem; the last block has none. Upsampling goes to the skip's exact size rather than ×2, and
//! the logits to the input's size, so any input size works, not only multiples of 32.

use crate::kernels::{Kernels, batch_norm, conv2d};
use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d};
use burn::tensor::Tensor;
use burn::tensor::activation::relu;
use burn::tensor::backend::Backend;
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};

use resnet::ResNet;

pub mod resnet;
pub mod weights;

/// Output channels of the smp decoder blocks.
pub const SMP_CHANNELS: [usize; 5] = [256, 128, 64, 32, 16];

/// Receives a network's intermediate results under the names of the PyTorch twin's modules
/// that compute them (for the step-by-step comparison with PyTorch: `examples/train_steps.rs`).
pub type Tap<'a, B> = &'a mut dyn FnMut(&str, &Tensor<B, 4>);

fn tap_features<B: Backend>(f: &resnet::Features<B>, tap: Tap<'_, B>, names: [&str; 5]) {
    tap(names[0], &f.stem);
    for (name, t) in names[1..].iter().zip(&f.stages) {
        tap(name, t);
    }
}

/// Nearest-neighbour resize to `size` (PyTorch's `interpolate(mode="nearest")`).
pub fn nearest<B: Backend>(x: Tensor<B, 4>, size: [usize; 2]) -> Tensor<B, 4> {
    let [_, _, h, w] = x.dims();
    if [h, w] == size {
        return x;
    }
    interpolate(
        x,
        size,
        InterpolateOptions::new(InterpolateMode::Nearest).with_align_corners(false),
    )
}

/// conv3×3 (no bias) → BatchNorm → ReLU.
#[derive(Module, Debug)]
pub struct ConvBnRelu<B: Backend> {
    pub conv: Conv2d<B>,
    pub bn: BatchNorm<B>,
}

impl<B: Kernels> ConvBnRelu<B> {
    /// As segmentation_models_pytorch's `initialize_decoder` starts it: the conv
    /// `kaiming_uniform_(fan_in, relu)`, U(±√(6/fan_in)) (burn's and PyTorch's default bound is
    /// √6 times smaller, which under Adam's fixed-size steps trains the decoder as if at a higher
    /// learning rate), BatchNorm weight 1 and bias 0.
    pub fn new(cin: usize, cout: usize, device: &B::Device) -> Self {
        ConvBnRelu {
            conv: Conv2dConfig::new([cin, cout], [3, 3])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .with_bias(false)
                .with_initializer(burn::nn::Initializer::KaimingUniform {
                    gain: std::f64::consts::SQRT_2,
                    fan_out_only: false,
                })
                .init(device),
            bn: BatchNormConfig::new(cout).init(device),
        }
    }

    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        batch_norm(&self.bn, conv2d(&self.conv, x), true)
    }
}

/// One smp decoder block.
#[derive(Module, Debug)]
pub struct DecoderBlock<B: Backend> {
    pub conv1: ConvBnRelu<B>,
    pub conv2: ConvBnRelu<B>,
}

impl<B: Kernels> DecoderBlock<B> {
    /// Upsamples `x` to `size`, concatenates `skip` (if any) and applies both convolutions.
    pub fn forward(&self, x: Tensor<B, 4>, skip: Option<Tensor<B, 4>>, size: [usize; 2]) -> Tensor<B, 4> {
        let x = nearest(x, size);
        let x = match skip {
            Some(s) => Tensor::cat(vec![x, s], 1),
            None => x,
        };
        self.conv2.forward(self.conv1.forward(x))
    }
}

/// UNet-ResNet34 with the smp decoder.
#[derive(Module, Debug)]
pub struct SmpUnet<B: Backend> {
    pub encoder: ResNet<B>,
    pub blocks: Vec<DecoderBlock<B>>,
    pub head: Conv2d<B>,
}

impl<B: Kernels> SmpUnet<B> {
    pub fn new(num_classes: usize, device: &B::Device) -> Self {
        let ins = [512, 256, 128, 64, 32];
        let skips = [256, 128, 64, 64, 0];
        let blocks = (0..5)
            .map(|i| DecoderBlock {
                conv1: ConvBnRelu::new(ins[i] + skips[i], SMP_CHANNELS[i], device),
                conv2: ConvBnRelu::new(SMP_CHANNELS[i], SMP_CHANNELS[i], device),
            })
            .collect();
        // smp's `initialize_head`: xavier_uniform_ weights, bias 0
        let mut head = Conv2dConfig::new([16, num_classes], [3, 3])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .with_initializer(burn::nn::Initializer::XavierUniform { gain: 1.0 })
            .init(device);
        head.bias = head.bias.map(|b| start_at(b, |t| t.zeros_like()));
        SmpUnet {
            encoder: ResNet::resnet34(device),
            blocks,
            head,
        }
    }

    /// Logits `[batch, classes, height, width]` at the input's height and width.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        self.forward_tapped(x, &mut |_, _| {})
    }

    /// [`Self::forward`], showing `tap` each intermediate result under the name of the
    /// segmentation_models_pytorch module that computes it (`encoder.relu`, `encoder.layer1`–`4`,
    /// `decoder.blocks.0`–`4`, `segmentation_head`).
    pub fn forward_tapped(&self, x: Tensor<B, 4>, tap: Tap<'_, B>) -> Tensor<B, 4> {
        let [_, _, h, w] = x.dims();
        let f = self.encoder.forward(x);
        tap_features(
            &f,
            tap,
            [
                "encoder.relu",
                "encoder.layer1",
                "encoder.layer2",
                "encoder.layer3",
                "encoder.layer4",
            ],
        );
        let [s1, s2, s3, s4] = f.stages;
        let hw = |t: &Tensor<B, 4>| {
            let d = t.dims();
            [d[2], d[3]]
        };
        let mut y = s4;
        for (i, (block, skip)) in self
            .blocks
            .iter()
            .zip([Some(s3), Some(s2), Some(s1), Some(f.stem), None])
            .enumerate()
        {
            let size = match &skip {
                Some(s) => hw(s),
                None => {
                    let d = hw(&y);
                    [d[0] * 2, d[1] * 2]
                }
            };
            y = block.forward(y, skip, size);
            tap(&format!("decoder.blocks.{i}"), &y);
        }
        let logits = nearest(conv2d(&self.head, y), [h, w]);
        tap("segmentation_head", &logits);
        logits
    }
}

/// Rearranges `[B, C·r², H, W]` into `[B, C, H·r, W·r]` (PyTorch's `PixelShuffle` channel order:
/// input channel `c·r² + i·r + j` lands at row offset i, column offset j).
pub fn pixel_shuffle<B: Backend>(x: Tensor<B, 4>, r: usize) -> Tensor<B, 4> {
    let [b, c, h, w] = x.dims();
    let c_out = c / (r * r);
    x.reshape([b, c_out, r, r, h, w])
        .permute([0, 1, 4, 2, 5, 3])
        .reshape([b, c_out, h * r, w * r])
}

/// Gives a parameter the starting value `f` makes of its current one, as a parameter that
/// trains. (`Param::map` keeps whatever the new tensor says about gradients, and a tensor made
/// from another tracks none: mapped without `require_grad`, every bias of the fastai decoder, its
/// BatchNorms' and its head's, stayed at its starting value through training, which the
/// step-by-step comparison with fastai, `make parity-step`, found.)
fn start_at<B: Backend, const D: usize>(
    p: Param<Tensor<B, D>>,
    f: impl FnOnce(Tensor<B, D>) -> Tensor<B, D>,
) -> Param<Tensor<B, D>> {
    p.map(|t| f(t).detach().require_grad())
}

/// A conv followed by ReLU as fastai's decoder starts it (`init_default` with
/// `kaiming_normal_`): weights N(0, 2/fan_in), bias 0.
fn conv_relu<B: Backend>(cin: usize, cout: usize, k: usize, device: &B::Device) -> Conv2d<B> {
    let mut conv = conv_relu_cfg(cin, cout, k).init(device);
    conv.bias = conv.bias.map(|b| start_at(b, |t| t.zeros_like()));
    conv
}

/// BatchNorm as fastai's `BatchNorm(ni)` starts it: weight 1, bias 1e-3.
fn fastai_batch_norm<B: Backend>(c: usize, device: &B::Device) -> BatchNorm<B> {
    let mut bn = BatchNormConfig::new(c).init(device);
    bn.beta = start_at(bn.beta, |b| b.ones_like().mul_scalar(1e-3));
    bn
}

fn conv_relu_cfg(cin: usize, cout: usize, k: usize) -> Conv2dConfig {
    let p = k / 2;
    Conv2dConfig::new([cin, cout], [k, k])
        .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
        .with_initializer(burn::nn::Initializer::KaimingNormal {
            gain: std::f64::consts::SQRT_2,
            fan_out_only: false,
        })
}

/// fastai's `PixelShuffle_ICNR` without blur: 1×1 conv (bias) to `cout·4`, ReLU, shuffle ×2.
/// ICNR initialisation: the four sub-pixel filters of each output channel start equal, so the
/// upsampling starts as nearest-neighbour instead of a checkerboard.
#[derive(Module, Debug)]
pub struct PixelShuffleIcnr<B: Backend> {
    pub conv: Conv2d<B>,
}

impl<B: Kernels> PixelShuffleIcnr<B> {
    pub fn new(cin: usize, cout: usize, device: &B::Device) -> Self {
        let mut conv = conv_relu_cfg(cin, cout * 4, 1).init(device);
        let base = conv_relu_cfg(cin, cout, 1).init::<B>(device).weight.val(); // [cout, cin, 1, 1]
        let icnr = base
            .unsqueeze_dim::<5>(1)
            .repeat_dim(1, 4)
            .reshape([cout * 4, cin, 1, 1]);
        // detached: a weight computed from another parameter would be a non-leaf tensor on an
        // autodiff backend, which burn refuses to track
        conv.weight = Param::from_tensor(icnr.detach());
        conv.bias = conv.bias.map(|b| start_at(b, |t| t.zeros_like()));
        PixelShuffleIcnr { conv }
    }

    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        pixel_shuffle(relu(conv2d(&self.conv, x)), 2)
    }
}

/// fastai's `UnetBlock`: shuffle-upsample, resize to the skip if needed, concatenate with the
/// BatchNorm'd skip, ReLU, two conv3×3 + ReLU (bias, no norm).
#[derive(Module, Debug)]
pub struct UnetBlock<B: Backend> {
    pub shuf: PixelShuffleIcnr<B>,
    pub bn: BatchNorm<B>,
    pub conv1: Conv2d<B>,
    pub conv2: Conv2d<B>,
}

impl<B: Kernels> UnetBlock<B> {
    /// `up_in` channels from below, `skip` channels from the encoder; the last block halves
    /// its width (`final_div = false`). Returns the block and its output channels.
    pub fn new(up_in: usize, skip: usize, final_div: bool, device: &B::Device) -> (Self, usize) {
        let ni = up_in / 2 + skip;
        let nf = if final_div { ni } else { ni / 2 };
        let block = UnetBlock {
            shuf: PixelShuffleIcnr::new(up_in, up_in / 2, device),
            bn: fastai_batch_norm(skip, device),
            conv1: conv_relu(ni, nf, 3, device),
            conv2: conv_relu(nf, nf, 3, device),
        };
        (block, nf)
    }

    pub fn forward(&self, up_in: Tensor<B, 4>, skip: Tensor<B, 4>) -> Tensor<B, 4> {
        let [_, _, h, w] = skip.dims();
        let up = nearest(self.shuf.forward(up_in), [h, w]);
        // relu(cat(up, bn(skip))) = cat(relu(up), relu(bn(skip))): ReLU fused into the norm
        let x = Tensor::cat(vec![relu(up), batch_norm(&self.bn, skip, true)], 1);
        relu(conv2d(&self.conv2, relu(conv2d(&self.conv1, x))))
    }
}

/// fastai's `DynamicUnet` over ResNet34 (`--arch fastai`), as fastai 2.8 builds it: BatchNorm+ReLU
/// after the encoder, two middle convs (512→1024→512), four `UnetBlock`s (512, 384, 256, 96
/// channels at 1/16 … 1/2), a final shuffle to full size, the input concatenated ("last
/// cross", 99 channels), a `ResBlock` and a 1×1 conv to the classes. The `ResBlock` follows
/// fastai's code: `relu(conv2(relu(conv1(x))) + x)`.
#[derive(Module, Debug)]
pub struct FastaiUnet<B: Backend> {
    pub encoder: ResNet<B>,
    pub bn: BatchNorm<B>,
    pub middle1: Conv2d<B>,
    pub middle2: Conv2d<B>,
    pub blocks: Vec<UnetBlock<B>>,
    pub shuf: PixelShuffleIcnr<B>,
    pub res1: Conv2d<B>,
    pub res2: Conv2d<B>,
    pub head: Conv2d<B>,
}

impl<B: Kernels> FastaiUnet<B> {
    pub fn new(num_classes: usize, device: &B::Device) -> Self {
        let mut blocks = Vec::new();
        let mut up = 512;
        for (i, skip) in [256, 128, 64, 64].into_iter().enumerate() {
            let (b, nf) = UnetBlock::new(up, skip, i != 3, device);
            blocks.push(b);
            up = nf;
        }
        let cross = up + 3;
        // the head: PyTorch's default weights (burn's default is the same U(±1/√fan_in)),
        // and fastai's `ConvLayer(..., act_cls=None)` bias, N(0, 0.01)
        let mut head = Conv2dConfig::new([cross, num_classes], [1, 1]).init(device);
        head.bias = head.bias.map(|b| {
            start_at(b, |t| {
                Tensor::random(t.shape(), burn::tensor::Distribution::Normal(0.0, 0.01), &t.device())
            })
        });
        FastaiUnet {
            encoder: ResNet::resnet34(device),
            bn: fastai_batch_norm(512, device),
            middle1: conv_relu(512, 1024, 3, device),
            middle2: conv_relu(1024, 512, 3, device),
            blocks,
            shuf: PixelShuffleIcnr::new(up, up, device),
            res1: conv_relu(cross, cross, 3, device),
            res2: conv_relu(cross, cross, 3, device),
            head,
        }
    }

    /// Logits `[batch, classes, height, width]` at the input's size.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        self.forward_tapped(x, &mut |_, _| {})
    }

    /// [`Self::forward`], showing `tap` each intermediate result under the name of the
    /// `DynamicUnet` layer that computes it (`layers.0.2` the stem's ReLU, `layers.0.4`–`7` the
    /// encoder's stages, `layers.2` the ReLU after its BatchNorm, `layers.3` the middle convs,
    /// `layers.4`–`7` the UnetBlocks, `layers.8` the last shuffle, `layers.9` the resize,
    /// `layers.10` the input concatenated, `layers.11` the ResBlock, `layers.12` the head).
    pub fn forward_tapped(&self, x: Tensor<B, 4>, tap: Tap<'_, B>) -> Tensor<B, 4> {
        let [_, _, h, w] = x.dims();
        let f = self.encoder.forward(x.clone());
        tap_features(
            &f,
            tap,
            ["layers.0.2", "layers.0.4", "layers.0.5", "layers.0.6", "layers.0.7"],
        );
        let [s1, s2, s3, s4] = f.stages;
        let mut y = batch_norm(&self.bn, s4, true);
        tap("layers.2", &y);
        y = relu(conv2d(&self.middle2, relu(conv2d(&self.middle1, y))));
        tap("layers.3", &y);
        for (i, (block, skip)) in self.blocks.iter().zip([s3, s2, s1, f.stem]).enumerate() {
            y = block.forward(y, skip);
            tap(&format!("layers.{}", 4 + i), &y);
        }
        let y = self.shuf.forward(y);
        tap("layers.8", &y);
        let y = nearest(y, [h, w]);
        tap("layers.9", &y);
        let y = Tensor::cat(vec![y, x], 1);
        tap("layers.10", &y);
        let r = conv2d(&self.res2, relu(conv2d(&self.res1, y.clone())));
        let y = relu(r + y);
        tap("layers.11", &y);
        let logits = conv2d(&self.head, y);
        tap("layers.12", &logits);
        logits
    }
}

/// A segmentation network on any backend: images in, logits at the input's size out.
pub trait Infer<B: Backend> {
    fn logits(&self, x: Tensor<B, 4>) -> Tensor<B, 4>;
}

impl<B: Kernels> Infer<B> for SmpUnet<B> {
    fn logits(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        self.forward(x)
    }
}

impl<B: Kernels> Infer<B> for FastaiUnet<B> {
    fn logits(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        self.forward(x)
    }
}

pub use facepipe_formats::model::Arch;

/// Gives `net` (on any device) the initial weights [`Architecture::build`] draws on the CPU
/// after `seed`. burn's GPU backends draw their random numbers with their own generators, so
/// without this one seed would start a different model on each device; with it, a run on a
/// GPU starts where the same run on the CPU does.
pub fn start_as_on_cpu<B: Backend, M: Module<B>>(
    net: &mut M,
    arch: Arch,
    n_classes: usize,
    seed: u64,
) -> anyhow::Result<()> {
    use burn::backend::Flex;
    use burn::backend::flex::FlexDevice;
    use burn_store::ModuleSnapshot;
    Flex::seed(&FlexDevice, seed);
    let snapshots = match arch {
        Arch::Smp => SmpUnet::<Flex>::new(n_classes, &FlexDevice).collect(None, None, false),
        Arch::Fastai => FastaiUnet::<Flex>::new(n_classes, &FlexDevice).collect(None, None, false),
    };
    let r = net.apply(snapshots, None, None, false);
    anyhow::ensure!(
        r.errors.is_empty() && r.missing.is_empty(),
        "the CPU's initial {arch} weights do not fit the model ({} errors, {} missing)",
        r.errors.len(),
        r.missing.len()
    );
    Ok(())
}

/// A UNet that can be built for a number of classes and has the ResNet34 encoder.
pub trait Architecture<B: Backend>: Module<B> {
    fn build(n_classes: usize, device: &B::Device) -> Self;
    fn encoder_mut(&mut self) -> &mut ResNet<B>;
}

impl<B: Kernels> Architecture<B> for SmpUnet<B> {
    fn build(n: usize, device: &B::Device) -> Self {
        SmpUnet::new(n, device)
    }
    fn encoder_mut(&mut self) -> &mut ResNet<B> {
        &mut self.encoder
    }
}

impl<B: Kernels> Architecture<B> for FastaiUnet<B> {
    fn build(n: usize, device: &B::Device) -> Self {
        FastaiUnet::new(n, device)
    }
    fn encoder_mut(&mut self) -> &mut ResNet<B> {
        &mut self.encoder
    }
}
