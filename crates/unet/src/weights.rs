//! Loading ImageNet weights into the encoder from torchvision's files, with no key remapping.
//!
//! `resnet34-b627a593.pth` (torchvision's own download) loads through burn-store's PyTorch
//! reader; an equivalent `.safetensors` file (e.g. `safetensors.torch.save_file(model.state_dict())`)
//! through its safetensors reader with the PyTorch adapter (BatchNorm `weight`/`bias` become
//! `gamma`/`beta`). Keys burn has no place for (`fc.*`, `*.num_batches_tracked`) are reported
//! as unused; a missing key or a shape mismatch is an error naming the key.

use std::path::Path;

use anyhow::{Context, Result, bail};
use burn::tensor::backend::Backend;
use burn_store::{ApplyResult, ModuleSnapshot, PyTorchToBurnAdapter, PytorchStore, SafetensorsStore};

use crate::resnet::ResNet;

/// What a load did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadReport {
    pub applied: usize,
    pub missing: Vec<String>,
    pub unused: Vec<String>,
}

impl std::fmt::Display for LoadReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} tensors applied, {} missing, {} unused",
            self.applied,
            self.missing.len(),
            self.unused.len()
        )
    }
}

/// Keys a torchvision state dict has that the encoder does not use.
fn expected_unused(key: &str) -> bool {
    key.starts_with("fc.") || key.ends_with("num_batches_tracked")
}

fn check(result: ApplyResult, file: &Path) -> Result<LoadReport> {
    if let Some(e) = result.errors.first() {
        bail!("{}: {e} ({} errors in all)", file.display(), result.errors.len());
    }
    let missing: Vec<String> = result.missing.iter().map(|(p, _)| p.clone()).collect();
    if let Some(k) = missing.first() {
        bail!(
            "{}: the encoder's {k} is not in the file ({} keys missing); is this a torchvision ResNet34 state dict?",
            file.display(),
            missing.len()
        );
    }
    // burn-store 0.21 quirk: a BatchNorm `weight`/`bias` that the PyTorch adapter applied as
    // `gamma`/`beta` is still listed as unused under its PyTorch name. Those are not unused.
    let applied: std::collections::HashSet<&str> = result.applied.iter().map(String::as_str).collect();
    let renamed = |k: &str| {
        let alias = |suffix: &str, to: &str| {
            k.strip_suffix(suffix)
                .is_some_and(|p| applied.contains(format!("{p}{to}").as_str()))
        };
        alias(".weight", ".gamma") || alias(".bias", ".beta")
    };
    let unused: Vec<String> = result.unused.iter().filter(|k| !renamed(k)).cloned().collect();
    if let Some(k) = unused.iter().find(|k| !expected_unused(k)) {
        bail!(
            "{}: key {k} matches nothing in the encoder (a different architecture or naming?)",
            file.display()
        );
    }
    Ok(LoadReport {
        applied: result.applied.len(),
        missing,
        unused,
    })
}

/// Loads torchvision ResNet34 weights (`.pth`/`.pt` or `.safetensors`) into `encoder`.
pub fn load_resnet<B: Backend>(encoder: &mut ResNet<B>, file: &Path) -> Result<LoadReport> {
    if !file.is_file() {
        bail!("weights file {} does not exist", file.display());
    }
    let ext = file
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let result = match ext.as_str() {
        "safetensors" => {
            let mut store = SafetensorsStore::from_file(file)
                .with_from_adapter(PyTorchToBurnAdapter)
                .skip_enum_variants(true)
                .allow_partial(true)
                .validate(true);
            encoder.load_from(&mut store).map_err(|e| anyhow::anyhow!("{e}"))
        }
        "pth" | "pt" | "bin" => {
            let mut store = PytorchStore::from_file(file)
                .skip_enum_variants(true)
                .allow_partial(true)
                .validate(true);
            encoder.load_from(&mut store).map_err(|e| anyhow::anyhow!("{e}"))
        }
        other => bail!(
            "weights file {}: unknown extension {other:?} (expected .pth or .safetensors)",
            file.display()
        ),
    }
    .with_context(|| format!("reading weights {}", file.display()))?;
    check(result, file)
}
