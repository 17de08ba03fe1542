//! UNet over the ResNet34 encoder.
//!
//! `--arch smp`: the slim decoder of segmentation_models_pytorch's `Unet`: five blocks of
//! (nearest upsample, concatenate the skip, conv3×3-BN-ReLU twice) with 256/128/64/32/16
//! channels, then a 3×3 head to the classes. Skips are the encoder's layer3, layer2, layer1 and
//! stem; the last block has none. Upsampling goes to the skip's exact size rather than ×2, and
//! the logits to the input's size, so any input size works, not only multiples of 32.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d};
use burn::tensor::Tensor;
use burn::tensor::activation::relu;
use burn::tensor::backend::Backend;
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};

use crate::resnet::ResNet;

/// Output channels of the smp decoder blocks.
pub const SMP_CHANNELS: [usize; 5] = [256, 128, 64, 32, 16];

fn nearest<B: Backend>(x: Tensor<B, 4>, size: [usize; 2]) -> Tensor<B, 4> {
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

impl<B: Backend> ConvBnRelu<B> {
    pub fn new(cin: usize, cout: usize, device: &B::Device) -> Self {
        ConvBnRelu {
            conv: Conv2dConfig::new([cin, cout], [3, 3])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .with_bias(false)
                .init(device),
            bn: BatchNormConfig::new(cout).init(device),
        }
    }

    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        relu(self.bn.forward(self.conv.forward(x)))
    }
}

/// One smp decoder block.
#[derive(Module, Debug)]
pub struct DecoderBlock<B: Backend> {
    pub conv1: ConvBnRelu<B>,
    pub conv2: ConvBnRelu<B>,
}

impl<B: Backend> DecoderBlock<B> {
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

impl<B: Backend> SmpUnet<B> {
    pub fn new(num_classes: usize, device: &B::Device) -> Self {
        let ins = [512, 256, 128, 64, 32];
        let skips = [256, 128, 64, 64, 0];
        let blocks = (0..5)
            .map(|i| DecoderBlock {
                conv1: ConvBnRelu::new(ins[i] + skips[i], SMP_CHANNELS[i], device),
                conv2: ConvBnRelu::new(SMP_CHANNELS[i], SMP_CHANNELS[i], device),
            })
            .collect();
        SmpUnet {
            encoder: ResNet::resnet34(device),
            blocks,
            head: Conv2dConfig::new([16, num_classes], [3, 3])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(device),
        }
    }

    /// Logits `[batch, classes, height, width]` at the input's height and width.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let [_, _, h, w] = x.dims();
        let f = self.encoder.forward(x);
        let [s1, s2, s3, s4] = f.stages;
        let hw = |t: &Tensor<B, 4>| {
            let d = t.dims();
            [d[2], d[3]]
        };
        let mut y = s4;
        for (block, skip) in self
            .blocks
            .iter()
            .zip([Some(s3), Some(s2), Some(s1), Some(f.stem), None])
        {
            let size = match &skip {
                Some(s) => hw(s),
                None => {
                    let d = hw(&y);
                    [d[0] * 2, d[1] * 2]
                }
            };
            y = block.forward(y, skip, size);
        }
        nearest(self.head.forward(y), [h, w])
    }
}
