//! `model.json`: what a unet-train model directory holds, what `unet-eval` needs to use it,
//! and where it came from (data, recipe, every epoch's record, the learning rates found).
//! Written last, when the run is complete; its presence marks a finished model.

use std::fmt;
use std::path::Path;

use anyhow::{Context, Result};
use facepipe_core::palette::Class;
use serde::{Deserialize, Serialize};

use crate::recipe::Recipe;
use crate::tag;

/// The decoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    /// fastai's DynamicUnet (41.2 M parameters).
    Fastai,
    /// segmentation_models_pytorch's Unet decoder (24.4 M parameters).
    Smp,
}

impl std::str::FromStr for Arch {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "fastai" => Ok(Arch::Fastai),
            "smp" => Ok(Arch::Smp),
            _ => Err(format!("unknown arch {s:?}: use fastai or smp")),
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Arch::Fastai => "fastai",
            Arch::Smp => "smp",
        })
    }
}

/// Which of a run's saved models.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Weights {
    /// The epoch with the lowest valid loss. Keeping it is facepipe's addition: the reference
    /// workflow has no SaveModelCallback, so fastai's learner ends with the last weights.
    Best,
    /// The end of training.
    Last,
}

impl std::str::FromStr for Weights {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "best" => Ok(Weights::Best),
            "last" => Ok(Weights::Last),
            _ => Err(format!("unknown weights {s:?}: use best or last")),
        }
    }
}

impl fmt::Display for Weights {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Weights::Best => "best",
            Weights::Last => "last",
        })
    }
}

/// `model.json`: everything needed to use the model and to know where it came from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ModelInfo {
    /// `facepipe/model` (`facepipe.model` before the naming rule, see [`crate::tag`]).
    #[serde(alias = "format")]
    pub schema: String,
    #[serde(alias = "format_version")]
    pub schema_version: u32,
    pub arch: Arch,
    pub classes: Vec<Class>,
    pub preprocessing: Preprocessing,
    pub best: WeightFiles,
    pub last: WeightFiles,
    pub recipe: Recipe,
    pub manifest: String,
    pub manifest_sha256: String,
    pub n_train: usize,
    pub n_valid: usize,
    pub batch_size: usize,
    pub seed: u64,
    pub device: String,
    pub pretrained: Option<Pretrained>,
    pub lr_find: Vec<LrFind>,
    /// The peak rates each fit used and where they came from (`stated` in the recipe, an
    /// lr_find `valley`, or the `fallback` when the valley was not trusted, with the reason).
    #[serde(default)]
    pub fit_lrs: Vec<FitLr>,
    pub epochs: usize,
    pub facepipe_version: String,
}

impl ModelInfo {
    /// Reads and checks a model directory's `model.json`.
    pub fn read(dir: &Path) -> Result<ModelInfo> {
        let p = dir.join("model.json");
        let bytes = std::fs::read(&p).with_context(|| {
            format!(
                "reading {}: is {} a complete unet-train model directory?",
                p.display(),
                dir.display()
            )
        })?;
        tag::MODEL.parse(&p, &bytes)
    }
}

/// Input preparation the model expects (what training's validation did).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Preprocessing {
    pub input_size: u32,
    /// How an image becomes a square input.
    pub crop: String,
    pub resize: String,
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

/// Files of one saved model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct WeightFiles {
    /// burn's format, relative to the model directory.
    pub burnpack: String,
    /// PyTorch names, relative to the model directory.
    pub safetensors: String,
    /// The epoch it is the model of.
    pub record: EpochRecord,
    /// sha256 of the burnpack and safetensors files as written: `unet-eval` refuses weights
    /// that are not these (a `best.bpk` copied in from another run). Absent in model
    /// directories written before facepipe 0.1 recorded them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burnpack_sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub safetensors_sha256: Option<String>,
}

impl WeightFiles {
    /// The files `stem`.bpk and `stem`.safetensors in `dir`, with their hashes, for `record`.
    pub fn hashed(dir: &Path, stem: &str, record: EpochRecord) -> Result<Self> {
        let hash = |name: &str| -> Result<Option<String>> {
            Ok(Some(facepipe_core::io::read_input(&dir.join(name))?.1.sha256))
        };
        let (burnpack, safetensors) = (format!("{stem}.bpk"), format!("{stem}.safetensors"));
        Ok(WeightFiles {
            burnpack_sha256: hash(&burnpack)?,
            safetensors_sha256: hash(&safetensors)?,
            burnpack,
            safetensors,
            record,
        })
    }
}

/// Where the encoder's starting weights came from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Pretrained {
    pub file: String,
    pub sha256: String,
    pub applied: usize,
    pub missing: Vec<String>,
    pub unused: Vec<String>,
}

/// One fit's peak learning rates (per group) and their source.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct FitLr {
    pub phase: String,
    #[serde(flatten)]
    pub lr: ResolvedLr,
}

/// Where a fit's rates came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum LrSource {
    /// A number or slice in the recipe.
    Stated,
    /// `"auto"`: the latest lr_find's valley.
    Valley,
    /// `"auto"` with no trustworthy valley: the fallback.
    Fallback,
}

impl fmt::Display for LrSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LrSource::Stated => "stated",
            LrSource::Valley => "valley",
            LrSource::Fallback => "fallback",
        })
    }
}

/// The rates a cycle uses, and where they came from (for the log and `model.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ResolvedLr {
    pub lr_max: [f64; 3],
    pub source: LrSource,
    /// Why the valley was not taken (a fallback only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What `lr_find` saw.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct LrFind {
    pub lrs: Vec<f64>,
    /// Smoothed (EMA, debiased) losses, one per learning rate tried (`null` once the loss
    /// went NaN).
    #[serde(deserialize_with = "nan::vec")]
    #[cfg_attr(feature = "schema", schemars(with = "Vec<Option<f64>>"))]
    pub losses: Vec<f64>,
    pub suggestions: Option<Suggestions>,
    /// Why `"auto"` does not take this sweep's valley (too short, too flat), if it does not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub untrusted: Option<String>,
}

/// `lr_find`'s suggestions, computed like fastai on the smoothed losses with the first
/// `num_it / 10` and the last 5 points dropped.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Suggestions {
    /// Middle of the longest valley (fastai's default suggestion).
    pub valley: f64,
    /// The learning rate of the lowest loss, divided by 10.
    pub minimum: f64,
    /// The learning rate of the steepest descent of loss against log lr.
    pub steep: f64,
}

/// One epoch's record: a row of `metrics.csv` (see [`crate::metrics`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct EpochRecord {
    pub phase: String,
    pub epoch: usize,
    /// Mean of the epoch's batch losses (fastai shows an EMA instead); `null` when NaN.
    #[serde(deserialize_with = "nan::one")]
    #[cfg_attr(feature = "schema", schemars(with = "Option<f64>"))]
    pub train_loss: f64,
    /// The recipe's loss on the validation set (for cross-entropy: the mean over the labelled
    /// validation pixels; for a summed loss such as dice: per batch, averaged over batches
    /// weighted by their labelled pixels).
    #[serde(deserialize_with = "nan::one")]
    #[cfg_attr(feature = "schema", schemars(with = "Option<f64>"))]
    pub valid_loss: f64,
    /// Per class, in the model's class order (`null`: absent from prediction and truth).
    pub dice: Vec<Option<f64>>,
    pub iou: Vec<Option<f64>>,
    /// Means over the classes present (fastai's `DiceMulti`), background included.
    pub mean_dice: f64,
    pub mean_iou: f64,
    /// The same means without the background class.
    pub mean_dice_fg: f64,
    pub mean_iou_fg: f64,
    pub pixel_accuracy: f64,
    /// Learning rates of the three groups at the epoch's last batch.
    pub lrs: [f64; 3],
    pub seconds: f64,
    /// The input side the epoch trained and was validated at (0 in a checkpoint written
    /// before fits had sizes of their own: the model's).
    #[serde(default)]
    pub size: u32,
}

/// serde_json writes a non-finite number as `null`; these read it back as NaN, so a model
/// whose sweep or training diverged can still be read.
pub(crate) mod nan {
    use serde::{Deserialize, Deserializer};

    pub fn one<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
    }

    pub fn vec<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
        Ok(Vec::<Option<f64>>::deserialize(d)?
            .into_iter()
            .map(|v| v.unwrap_or(f64::NAN))
            .collect())
    }
}
