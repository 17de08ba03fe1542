//! The UNet-ResNet34 stack, the only facepipe crate that depends on burn (=0.21.0; CPU via
//! burn's `flex` backend).
//!
//! Grouped as burn's own examples are:
//!
//! * [`data`]: fastai's crop/resize/normalise with mask validation, and ([`data::loader`])
//!   seeded batches from a split manifest, prepared in parallel ahead of use.
//! * [`model`]: the UNet, fastai's DynamicUnet decoder or the slim smp one (logits at the
//!   input's size); its ResNet34 encoder with torchvision's parameter names
//!   ([`model::resnet`]); ImageNet weights from torchvision's `.pth` or `.safetensors`, with a
//!   report ([`model::weights`]).
//! * [`training`]: the recipe (fine_tune, lr_find, fit_one_cycle as JSON), the steps, fastai's
//!   grouped Adam, schedules and losses, and the runner that takes a recipe through a model
//!   directory phase by phase, resumably.
//! * [`model_dir`]: the model directory a run writes (`model.json`, `run.json`, weights,
//!   checkpoint) and what reads and writes its files.
//! * [`inference`]: a model directory opened for inference, as class probabilities.
//! * [`kernels`]: convolution, BatchNorm(+ReLU), the Adam step and the fused loss as a backend
//!   extension: facepipe's own CPU kernels on `flex`, burn's operations elsewhere (CUDA,
//!   wgpu). The lowest layer: it imports no other module of the crate.
//! * [`device`]: CPU or CUDA backends picked at run time.

/// The smallest input side: the encoder halves its input five times (to 1/32).
pub const MIN_INPUT_SIZE: u32 = 32;
/// The largest input side: 2048² is 21× the reference 448² (which trains at batch 12 in about
/// 20 GiB of GPU memory), so one 2048² image takes about that much again; anything larger
/// cannot be trained or run on one machine, and is refused before any memory is taken.
pub const MAX_INPUT_SIZE: u32 = 2048;

/// Checks an input side against [`MIN_INPUT_SIZE`]..=[`MAX_INPUT_SIZE`].
pub fn check_input_size(size: u32) -> Result<(), String> {
    if (MIN_INPUT_SIZE..=MAX_INPUT_SIZE).contains(&size) {
        Ok(())
    } else {
        Err(format!(
            "input size {size} is outside {MIN_INPUT_SIZE}..={MAX_INPUT_SIZE} (the encoder needs at least {MIN_INPUT_SIZE} pixels; {MAX_INPUT_SIZE} is the most one machine's memory holds)"
        ))
    }
}

pub mod data;
pub mod device;
pub mod device_check;
pub mod inference;
pub mod kernels;
pub mod model;
pub mod model_dir;
pub mod training;
