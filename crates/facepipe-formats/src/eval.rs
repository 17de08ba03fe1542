//! `eval.json`: what `unet-eval` scored, with which model and settings, and the files it
//! wrote.
//!
//! Every score is accumulated with global sums over a group of images (see
//! `facepipe_core::metrics`), for each split present among the labelled items (`valid`,
//! `train`, or `all` when the manifest has no split), at two resolutions:
//!
//! * `full_resolution` (the default everywhere): the prediction mapped back onto the original
//!   image against the original mask — what the next stage measures colour on.
//! * `model_resolution`: the validation centre crop at the model's input size, the mask
//!   resized by nearest neighbour, as fastai's (and `unet-train`'s) validation metrics are
//!   computed; with the validation loss. On the valid split it reproduces the training run's
//!   record of the same weights.
//!
//! Means are over the classes present in the group (absent from both prediction and truth:
//! skipped, as fastai's `DiceMulti` does), with and without the background class (`_fg`).

use std::fmt;
use std::path::Path;

use anyhow::Result;
use facepipe_core::io::InputFile;
use facepipe_core::metrics::{Confusion, mean_present};
use facepipe_core::palette::Class;
use serde::{Deserialize, Serialize};

use crate::model::Weights;
use crate::tag;

/// Which items to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Select {
    Valid,
    Train,
    /// Every item, with or without a split.
    All,
}

impl fmt::Display for Select {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Select::Valid => "valid",
            Select::Train => "train",
            Select::All => "all",
        })
    }
}

/// What happens to the pixels outside the centre square of a non-square image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Outside {
    /// Predicted from overlapping square tiles at the training scale.
    Tile,
    /// Not predicted (255 in the mask; left out of the scores).
    None,
}

/// One class's scores.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ClassScore {
    pub id: u8,
    pub name: String,
    pub truth_pixels: u64,
    pub pred_pixels: u64,
    pub dice: Option<f64>,
    pub iou: Option<f64>,
}

/// Scores of a group of images at one resolution.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Scores {
    /// Labelled pixels scored.
    pub pixels: u64,
    /// Labelled pixels with no prediction (`--outside none`), left out of the scores.
    pub unpredicted_pixels: u64,
    pub pixel_accuracy: Option<f64>,
    pub mean_dice: Option<f64>,
    pub mean_iou: Option<f64>,
    pub mean_dice_fg: Option<f64>,
    pub mean_iou_fg: Option<f64>,
    /// Mean cross-entropy per labelled pixel (model resolution only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss: Option<f64>,
    /// The cross-entropy summed over those pixels: what shards add up (`--merge`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss_sum: Option<f64>,
    pub per_class: Vec<ClassScore>,
    /// Rows: true class; columns: predicted class (pixel counts).
    pub confusion: Vec<Vec<u64>>,
}

impl Scores {
    /// Scores of a confusion matrix; `loss_sum` (model resolution) is averaged over its pixels.
    pub fn from_confusion(c: &Confusion, classes: &[Class], loss_sum: Option<f64>) -> Scores {
        let (dice, iou) = (c.dice(), c.iou());
        let loss = loss_sum.filter(|_| c.pixels() > 0).map(|l| l / c.pixels() as f64);
        let bg = background(classes);
        Scores {
            pixels: c.pixels(),
            unpredicted_pixels: c.unpredicted(),
            pixel_accuracy: c.pixel_accuracy(),
            mean_dice: mean_present(&dice, None),
            mean_iou: mean_present(&iou, None),
            mean_dice_fg: mean_present(&dice, bg),
            mean_iou_fg: mean_present(&iou, bg),
            loss,
            loss_sum,
            per_class: classes
                .iter()
                .enumerate()
                .map(|(k, cl)| ClassScore {
                    id: cl.id,
                    name: cl.name.clone(),
                    truth_pixels: c.truth_pixels(k),
                    pred_pixels: c.pred_pixels(k),
                    dice: dice[k],
                    iou: iou[k],
                })
                .collect(),
            confusion: c.rows(),
        }
    }
}

/// The class named "background" (left out of the `_fg` means), as unet-train picks it.
pub fn background(classes: &[Class]) -> Option<usize> {
    classes.iter().position(|c| c.name.eq_ignore_ascii_case("background"))
}

/// The scores of the labelled images of one split.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Group {
    /// `valid`, `train`, `unsplit` (items without a split among others), or `all`.
    pub name: String,
    pub images: usize,
    pub full_resolution: Scores,
    pub model_resolution: Scores,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Throughput {
    pub images: usize,
    pub tiles: usize,
    /// Wall time of reading, predicting, mapping back, scoring and writing every item.
    pub seconds: f64,
    pub images_per_s: f64,
    /// Time inside the network's forward passes.
    pub network_seconds: f64,
    pub network_tiles_per_s: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Settings {
    pub split: Select,
    pub outside: Outside,
    pub weights: Weights,
    pub device: String,
    pub batch_size: usize,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ModelRef {
    pub dir: String,
    pub model_json_sha256: String,
    pub weights: Weights,
    pub weights_file: String,
    pub weights_sha256: String,
    pub arch: String,
    pub input_size: u32,
    /// Valid images of the training run.
    #[serde(default)]
    pub n_valid: usize,
    /// unet-train's validation record of these weights (model resolution, valid split).
    pub training_record: serde_json::Value,
}

/// `eval.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct EvalFile {
    /// `facepipe/eval` (`facepipe.eval` before the naming rule, see [`crate::tag`]).
    #[serde(alias = "format")]
    pub schema: String,
    #[serde(alias = "format_version")]
    pub schema_version: u32,
    pub model: ModelRef,
    pub manifest: InputFile,
    pub settings: Settings,
    pub classes: Vec<Class>,
    pub items: usize,
    pub labelled: usize,
    pub unlabelled: usize,
    /// The group the pictures, `confusion.csv` and the report show (`valid` when present).
    pub headline: Option<String>,
    pub groups: Vec<Group>,
    pub throughput: Throughput,
    /// Files written, relative to the output directory.
    pub files: Vec<String>,
    /// The part of the input this run scored (`--shard K/N`): its scores are that part's only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
    /// The shard directories a `--merge` joined, each with its `eval.json`'s sha256.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shards: Vec<ShardRef>,
    pub facepipe_version: String,
}

/// One shard of a merged evaluation.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ShardRef {
    pub shard: String,
    pub dir: String,
    pub eval_json_sha256: String,
    /// Its contact sheet (the merged directory has none: the images stay in the shards').
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_sheet: Option<String>,
}

impl EvalFile {
    /// Reads and checks a unet-eval directory's `eval.json`.
    pub fn read(path: &Path) -> Result<EvalFile> {
        tag::EVAL.read(path)
    }
}
