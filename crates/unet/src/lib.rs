//! The UNet-ResNet34 stack, the only facepipe crate that depends on burn (=0.21.0; CPU via
//! burn's `flex` backend).
//!
//! In layers, lowest first; a module imports only from layers below its own
//! (`tests/layers.rs` checks it):
//!
//! 1. [`kernels`]: convolution, BatchNorm(+ReLU), the Adam step and the fused loss as a backend
//!    extension: facepipe's own CPU kernels on `flex`, burn's operations elsewhere (CUDA,
//!    wgpu). It imports no other module of the crate.
//! 2. [`device`]: CPU, CUDA or wgpu backends picked at run time.
//! 3. [`model`]: the UNet, fastai's DynamicUnet decoder or the slim smp one (logits at the
//!    input's size); its ResNet34 encoder with torchvision's parameter names
//!    ([`model::resnet`]); ImageNet weights from torchvision's `.pth` or `.safetensors`, with a
//!    report ([`model::weights`]). Beside it, [`model_dir`]: the published model, `model.json`
//!    (whose types, like the recipe's, are `facepipe_formats`') and the weights in burn's and
//!    PyTorch's names.
//! 4. [`data`]: fastai's crop/resize/normalise with mask validation, and ([`data::loader`])
//!    seeded batches from a split manifest, prepared in parallel ahead of use.
//! 5. [`inference`]: a model directory opened for prediction, as class probabilities; it reads
//!    the model format and nothing of training. [`training`]: what a recipe expands into, the
//!    steps, fastai's grouped Adam, schedules and losses, the run checkpoint
//!    ([`training::checkpoint`]) and the runner that takes a recipe through a model directory
//!    phase by phase, resumably.
//! 6. [`device_check`]: a model trained and run on a device against the CPU.

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
