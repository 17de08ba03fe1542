//! The UNet-ResNet34 stack, the only facepipe crate that depends on burn (=0.21.0; CPU via
//! burn's `flex` backend).
//!
//! * [`resnet`]: the encoder, with torchvision's parameter names.
//! * [`weights`]: ImageNet weights from torchvision's `.pth` or `.safetensors`, with a report.
//! * [`model`]: the UNet, fastai's DynamicUnet decoder or the slim smp one; logits at the input's size.
//! * [`kernels`]: convolution and BatchNorm(+ReLU) as a backend extension: facepipe's own
//!   GEMM-based CPU kernels on `flex`, burn's operations elsewhere (CUDA).
//! * [`loss`]: the training losses (fastai's cross-entropy, dice, focal), ignoring label 255.
//! * [`data`]: fastai's crop/resize/normalise, with mask validation.
//! * [`loader`]: seeded batches from a split manifest, prepared in parallel ahead of use.
//! * [`schedule`]: one-cycle, slice, lr_find and early stopping, in fastai's numbers.
//! * [`optim`]: fastai's Adam over three parameter groups, with freeze/unfreeze.
//! * [`train`]: training steps, `lr_find` (which leaves the model as it was), evaluation
//!   with global-sum dice/IoU and pixel accuracy, and `fit_one_cycle` with per-epoch records.
//! * [`recipe`]: a training recipe (fine_tune, lr_find, fit_one_cycle) as JSON, expanded into
//!   resumable phases.
//! * [`run`]: the recipe runner and the model directory it writes (weights, metrics, plots,
//!   checkpoints, resume).
//! * [`infer`]: a model directory opened for inference, as class probabilities.
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
pub mod infer;
pub mod kernels;
pub mod loader;
pub mod loss;
pub mod model;
pub mod model_dir;
pub mod optim;
pub mod recipe;
pub mod resnet;
pub mod run;
pub mod schedule;
pub mod train;
pub mod weights;
