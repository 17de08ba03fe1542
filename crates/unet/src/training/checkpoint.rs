//! The run checkpoint: what a training run keeps so that `--resume` continues it exactly —
//! `run.json` (the settings that make two runs the same run), `checkpoint/state.json` (where
//! the run stands: [`Progress`]) and the optimiser state beside the checkpoint's weights. Not
//! a published format: only unet-train reads it back; the model it ends in is
//! [`crate::model_dir`]'s.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result};
use facepipe_core::io::write_atomic;
use facepipe_core::palette::Class;
use serde::{Deserialize, Serialize};

use crate::model_dir::{Arch, EpochRecord, FitLr, LrFind, Pretrained};
use crate::training::optim::{SavedAdam, SavedMoments};
use crate::training::recipe::Recipe;
use crate::training::schedule::EarlyStopping;

/// The settings that make two runs the same run; `--resume` refuses a directory whose
/// settings differ.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    pub arch: Arch,
    pub input_size: u32,
    pub batch_size: usize,
    pub seed: u64,
    pub recipe: Recipe,
    pub manifest_sha256: String,
    pub pretrained_sha256: Option<String>,
    pub classes: Vec<Class>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct RunFile {
    /// `facepipe/train-run` (`facepipe.train-run` before the naming rule).
    #[serde(alias = "format")]
    pub(crate) schema: String,
    pub(crate) settings: Settings,
    pub(crate) manifest: String,
    /// What the encoder started from (so a resumed run reports it like the original).
    pub(crate) pretrained: Option<Pretrained>,
}

/// Where a run stands: saved in `checkpoint/state.json` after every epoch and phase.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// The phase in progress (or the next to start).
    pub phase: usize,
    /// Epochs of that phase done.
    pub epochs_done: usize,
    pub stopper: Option<EarlyStopping>,
    pub lr_finds: Vec<LrFind>,
    /// The rates of each fit started so far.
    #[serde(default)]
    pub fit_lrs: Vec<FitLr>,
    pub records: Vec<EpochRecord>,
    /// Index into `records` of the best epoch (lowest valid loss).
    pub best: Option<usize>,
    /// Checkpoint weight and optimiser files, relative to `checkpoint/`.
    pub weights: Option<String>,
    pub optimiser: Option<String>,
    pub finished: bool,
    /// β1 the optimiser holds: Adam's 0.9 until a fit ran, then the one-cycle momentum of the
    /// last batch trained (fastai's lr_find schedules only the learning rate and keeps it).
    #[serde(default)]
    pub beta1: Option<f64>,
}

pub(crate) fn save_adam(saved: &SavedAdam, path: &Path) -> Result<()> {
    use safetensors::tensor::{Dtype, TensorView};
    let bytes: Vec<(String, Vec<u8>, usize)> = saved
        .moments
        .iter()
        .flat_map(|s| {
            [("m", &s.m), ("v", &s.v)].map(|(k, v)| {
                (
                    format!("{}.{k}", s.path),
                    v.iter().flat_map(|x| x.to_le_bytes()).collect(),
                    v.len(),
                )
            })
        })
        .collect();
    let views: Vec<(String, TensorView<'_>)> = bytes
        .iter()
        .map(|(k, b, n)| Ok((k.clone(), TensorView::new(Dtype::F32, vec![*n], b)?)))
        .collect::<Result<_, safetensors::SafeTensorError>>()?;
    let steps: std::collections::BTreeMap<&str, i32> =
        saved.moments.iter().map(|s| (s.path.as_str(), s.step)).collect();
    let meta = std::collections::HashMap::from([
        ("frozen".to_string(), saved.frozen.to_string()),
        ("steps".to_string(), serde_json::to_string(&steps)?),
    ]);
    let data = safetensors::tensor::serialize(views, Some(meta))?;
    write_atomic(path, &data)
}

pub(crate) fn load_adam(path: &Path) -> Result<SavedAdam> {
    let shown = path.display();
    let data = fs::read(path).with_context(|| format!("reading {shown}"))?;
    let (_, meta) = safetensors::SafeTensors::read_metadata(&data).with_context(|| format!("parsing {shown}"))?;
    let st = safetensors::SafeTensors::deserialize(&data).with_context(|| format!("parsing {shown}"))?;
    let meta = meta.metadata().clone().unwrap_or_default();
    let frozen = meta.get("frozen").map(String::as_str) == Some("true");
    let steps: std::collections::BTreeMap<String, i32> =
        serde_json::from_str(meta.get("steps").map(String::as_str).unwrap_or("{}"))
            .with_context(|| format!("{shown}: bad `steps` metadata"))?;
    let read = |k: &str| -> Result<Vec<f32>> {
        let t = st.tensor(k).with_context(|| format!("{shown}: no tensor {k}"))?;
        Ok(t.data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    };
    let moments = steps
        .into_iter()
        .map(|(path, step)| {
            Ok(SavedMoments {
                m: read(&format!("{path}.m"))?,
                v: read(&format!("{path}.v"))?,
                step,
                path,
            })
        })
        .collect::<Result<_>>()?;
    Ok(SavedAdam { frozen, moments })
}

pub(crate) fn settings_diff(a: &Settings, b: &Settings) -> Vec<String> {
    let (a, b) = (
        serde_json::to_value(a).unwrap_or_default(),
        serde_json::to_value(b).unwrap_or_default(),
    );
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return vec![];
    };
    a.iter()
        .filter(|(k, v)| b.get(*k) != Some(*v))
        .map(|(k, _)| k.clone())
        .collect()
}
