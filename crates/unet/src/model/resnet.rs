//! ResNet34 encoder whose parameter paths are torchvision's (`conv1.weight`, `bn1.running_mean`,
//! `layer2.0.downsample.0.weight`, ...), so torchvision's ImageNet weights load with no key
//! remapping: see [`crate::model::weights`].
//!
//! burn's derive cannot name a field `0`, so `downsample` is a `Vec` of a two-variant enum
//! module (index 0 the 1×1 convolution, index 1 its BatchNorm); the stores are told to skip
//! enum variant names in paths, which gives exactly `downsample.0.*` and `downsample.1.*`.

use crate::kernels::{Kernels, batch_norm, conv2d};
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d};
use burn::tensor::Tensor;
use burn::tensor::activation::relu;
use burn::tensor::backend::Backend;

/// Blocks per stage and their widths: ResNet34.
pub const RESNET34: [(usize, usize); 4] = [(3, 64), (4, 128), (6, 256), (3, 512)];

/// torchvision's ResNet initialisation of every convolution: `kaiming_normal_(mode="fan_out",
/// nonlinearity="relu")`, N(0, 2/fan_out). (burn's default, PyTorch's layer default, draws them
/// about 2.5 times narrower; it was used here until a comparison with torchvision's statistics
/// showed it. Only a run from random weights sees it: ImageNet weights replace them.)
pub(crate) const TORCHVISION_CONV_INIT: burn::nn::Initializer = burn::nn::Initializer::KaimingNormal {
    gain: std::f64::consts::SQRT_2,
    fan_out_only: true,
};

fn conv3x3<B: Backend>(cin: usize, cout: usize, stride: usize, device: &B::Device) -> Conv2d<B> {
    Conv2dConfig::new([cin, cout], [3, 3])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .with_bias(false)
        .with_initializer(TORCHVISION_CONV_INIT)
        .init(device)
}

fn bn<B: Backend>(c: usize, device: &B::Device) -> BatchNorm<B> {
    BatchNormConfig::new(c).init(device)
}

/// One layer of a downsample path (`downsample.0` is the convolution, `downsample.1` the norm).
#[derive(Module, Debug)]
pub enum DownsampleLayer<B: Backend> {
    Conv(Conv2d<B>),
    Norm(BatchNorm<B>),
}

impl<B: Kernels> DownsampleLayer<B> {
    fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        match self {
            DownsampleLayer::Conv(c) => conv2d(c, x),
            DownsampleLayer::Norm(n) => batch_norm(n, x, false),
        }
    }
}

/// torchvision's `BasicBlock`.
#[derive(Module, Debug)]
pub struct BasicBlock<B: Backend> {
    pub conv1: Conv2d<B>,
    pub bn1: BatchNorm<B>,
    pub conv2: Conv2d<B>,
    pub bn2: BatchNorm<B>,
    pub downsample: Option<Vec<DownsampleLayer<B>>>,
}

impl<B: Kernels> BasicBlock<B> {
    pub fn new(cin: usize, cout: usize, stride: usize, device: &B::Device) -> Self {
        let downsample = (stride != 1 || cin != cout).then(|| {
            vec![
                DownsampleLayer::Conv(
                    Conv2dConfig::new([cin, cout], [1, 1])
                        .with_stride([stride, stride])
                        .with_bias(false)
                        .with_initializer(TORCHVISION_CONV_INIT)
                        .init(device),
                ),
                DownsampleLayer::Norm(bn(cout, device)),
            ]
        });
        BasicBlock {
            conv1: conv3x3(cin, cout, stride, device),
            bn1: bn(cout, device),
            conv2: conv3x3(cout, cout, 1, device),
            bn2: bn(cout, device),
            downsample,
        }
    }

    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let identity = match &self.downsample {
            Some(layers) => layers.iter().fold(x.clone(), |t, l| l.forward(t)),
            None => x.clone(),
        };
        let out = batch_norm(&self.bn1, conv2d(&self.conv1, x), true);
        let out = batch_norm(&self.bn2, conv2d(&self.conv2, out), false);
        relu(out + identity)
    }
}

/// The ResNet34 trunk without the classifier (`avgpool`, `fc`).
#[derive(Module, Debug)]
pub struct ResNet<B: Backend> {
    pub conv1: Conv2d<B>,
    pub bn1: BatchNorm<B>,
    pub maxpool: MaxPool2d,
    pub layer1: Vec<BasicBlock<B>>,
    pub layer2: Vec<BasicBlock<B>>,
    pub layer3: Vec<BasicBlock<B>>,
    pub layer4: Vec<BasicBlock<B>>,
}

/// Feature maps for the decoder's skip connections.
#[derive(Debug, Clone)]
pub struct Features<B: Backend> {
    /// After conv1+bn1+relu: 64 channels at 1/2 resolution.
    pub stem: Tensor<B, 4>,
    /// After each stage: 64 @ 1/4, 128 @ 1/8, 256 @ 1/16, 512 @ 1/32.
    pub stages: [Tensor<B, 4>; 4],
}

impl<B: Kernels> ResNet<B> {
    pub fn resnet34(device: &B::Device) -> Self {
        let mut cin = 64;
        let mut layers: Vec<Vec<BasicBlock<B>>> = Vec::new();
        for (i, &(blocks, cout)) in RESNET34.iter().enumerate() {
            let stride = if i == 0 { 1 } else { 2 };
            let mut stage = vec![BasicBlock::new(cin, cout, stride, device)];
            stage.extend((1..blocks).map(|_| BasicBlock::new(cout, cout, 1, device)));
            layers.push(stage);
            cin = cout;
        }
        let mut it = layers.into_iter();
        ResNet {
            conv1: Conv2dConfig::new([3, 64], [7, 7])
                .with_stride([2, 2])
                .with_padding(PaddingConfig2d::Explicit(3, 3, 3, 3))
                .with_bias(false)
                .with_initializer(TORCHVISION_CONV_INIT)
                .init(device),
            bn1: bn(64, device),
            maxpool: MaxPool2dConfig::new([3, 3])
                .with_strides([2, 2])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(),
            layer1: it.next().expect("four stages"),
            layer2: it.next().expect("four stages"),
            layer3: it.next().expect("four stages"),
            layer4: it.next().expect("four stages"),
        }
    }

    fn run(blocks: &[BasicBlock<B>], x: Tensor<B, 4>) -> Tensor<B, 4> {
        blocks.iter().fold(x, |t, b| b.forward(t))
    }

    /// Runs the trunk and returns the stem and every stage's output.
    pub fn forward(&self, x: Tensor<B, 4>) -> Features<B> {
        let stem = batch_norm(&self.bn1, conv2d(&self.conv1, x), true);
        let s1 = Self::run(&self.layer1, self.maxpool.forward(stem.clone()));
        let s2 = Self::run(&self.layer2, s1.clone());
        let s3 = Self::run(&self.layer3, s2.clone());
        let s4 = Self::run(&self.layer4, s3.clone());
        Features {
            stem,
            stages: [s1, s2, s3, s4],
        }
    }
}
