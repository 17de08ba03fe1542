//! The UNet-ResNet34 stack, the only facepipe crate that depends on burn (=0.21.0; CPU via
//! burn's `flex` backend).
//!
//! * [`resnet`]: the encoder, with torchvision's parameter names.
//! * [`weights`]: ImageNet weights from torchvision's `.pth` or `.safetensors`, with a report.
//! * [`model`]: the UNet, fastai's DynamicUnet decoder or the slim smp one; logits at the input's size.
//! * [`loss`]: cross-entropy that ignores label 255.
//! * [`data`]: fastai's crop/resize/normalise, with mask validation.
//! * [`loader`]: seeded batches from a split manifest, prepared in parallel ahead of use.
//! * [`schedule`]: one-cycle, slice, lr_find and early stopping, in fastai's numbers.
//! * [`optim`]: fastai's Adam over three parameter groups, with freeze/unfreeze.
//! * [`train`]: training steps, `lr_find` (which leaves the model as it was), evaluation
//!   with global-sum dice/IoU and pixel accuracy, `fit_one_cycle` with per-epoch records, and
//!   `fine_tune`.
//!
//! Still to come (issue 3): the recipe runner (lr_find and fit_one_cycle after fine_tune, early
//! stopping, best and last kept), the model directory, `unet-train`, and CUDA.

pub mod data;
pub mod loader;
pub mod loss;
pub mod model;
pub mod optim;
pub mod resnet;
pub mod schedule;
pub mod train;
pub mod weights;
