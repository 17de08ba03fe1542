//! The UNet-ResNet34 stack: model, weights, and (to come) data and fastai-style training.
//! The only facepipe crate that depends on burn.

pub mod loss;
pub mod model;
pub mod resnet;
pub mod schedule;
pub mod weights;
