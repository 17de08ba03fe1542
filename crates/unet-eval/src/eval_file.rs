//! What `eval.json` holds, and how its scores are made.
//!
//! Every score is accumulated with global sums over a group of images (see
//! [`facepipe_core::metrics`]), for each split present among the labelled items (`valid`,
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

use facepipe_core::io::InputFile;
use facepipe_core::metrics::{Confusion, mean_present};
use facepipe_core::palette::Class;
use serde::{Deserialize, Serialize};
use unet::inference::Weights;

use crate::predict::Outside;
use crate::{ItemResult, Select};

/// One class's scores.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
pub struct Group {
    /// `valid`, `train`, `unsplit` (items without a split among others), or `all`.
    pub name: String,
    pub images: usize,
    pub full_resolution: Scores,
    pub model_resolution: Scores,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
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
pub struct Settings {
    pub split: Select,
    pub outside: Outside,
    pub weights: Weights,
    pub device: String,
    pub batch_size: usize,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
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
pub struct EvalFile {
    pub format: String,
    pub format_version: u32,
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
pub struct ShardRef {
    pub shard: String,
    pub dir: String,
    pub eval_json_sha256: String,
    /// Its contact sheet (the merged directory has none: the images stay in the shards').
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_sheet: Option<String>,
}

pub(crate) fn group_name(r: &ItemResult, any_split: bool) -> &'static str {
    match (r.split, any_split) {
        (Some(facepipe_core::Split::Valid), _) => "valid",
        (Some(facepipe_core::Split::Train), _) => "train",
        (None, true) => "unsplit",
        (None, false) => "all",
    }
}

/// Groups the labelled results by split (valid first) and scores each; `any_split`: whether
/// any item of the run (every shard's) has a split, which names the items without one.
pub fn groups(results: &[ItemResult], classes: &[Class], any_split: bool) -> Vec<Group> {
    let mut out = Vec::new();
    for name in ["valid", "train", "unsplit", "all"] {
        let members: Vec<&ItemResult> = results
            .iter()
            .filter(|r| r.full.is_some() && group_name(r, any_split) == name)
            .collect();
        if members.is_empty() {
            continue;
        }
        let mut full = Confusion::new(classes.len());
        let mut model = Confusion::new(classes.len());
        let mut loss = 0.0;
        for r in &members {
            full.merge(r.full.as_ref().expect("labelled"));
            model.merge(r.model.as_ref().expect("labelled"));
            loss += r.model_loss_sum;
        }
        out.push(Group {
            name: name.into(),
            images: members.len(),
            full_resolution: Scores::from_confusion(&full, classes, None),
            model_resolution: Scores::from_confusion(&model, classes, Some(loss)),
        });
    }
    out
}

/// The number a contact sheet ranks by: mean foreground IoU, else mean IoU.
pub fn rank_score(c: &Confusion, classes: &[Class]) -> Option<f64> {
    let iou = c.iou();
    mean_present(&iou, background(classes)).or_else(|| mean_present(&iou, None))
}

/// What part of a run the results are, and how many images the contact sheet shows.
#[derive(Clone, Copy, Debug)]
pub struct Scope {
    /// Worst and best images on the contact sheet (each).
    pub contact: usize,
    /// Whether any item of the whole run (every shard) has a split; see [`groups`].
    pub any_split: bool,
    /// The part (`--shard K/N`), if not the whole input.
    pub shard: Option<facepipe_core::shard::Shard>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use facepipe_core::Split;
    use facepipe_core::metrics::Confusion;

    fn item(id: &str, split: Option<Split>, pred: &[u8], truth: &[u8], model_loss: f64) -> ItemResult {
        let mut c = Confusion::new(3);
        c.add(pred, truth);
        ItemResult {
            id: id.into(),
            split,
            image: id.into(),
            mask: Some(id.into()),
            width: pred.len() as u32,
            height: 1,
            tiles: 1,
            pred_mask: String::new(),
            colour: String::new(),
            overlay: String::new(),
            model: Some(c.clone()),
            full: Some(c),
            model_loss_sum: model_loss,
        }
    }

    use crate::test_classes as classes;

    #[test]
    fn groups_sum_images_and_skip_absent_classes() {
        let results = vec![
            // class 2 (eyes) is absent from every valid image and prediction
            item("a", Some(Split::Valid), &[0, 1, 1, 0], &[0, 1, 1, 1], 2.0),
            // background only, predicted right
            item("b", Some(Split::Valid), &[0, 0], &[0, 0], 0.5),
            // all ignored: counts nothing
            item("c", Some(Split::Valid), &[1, 2], &[255, 255], 0.0),
            item("d", Some(Split::Train), &[2], &[2], 0.1),
        ];
        let g = groups(&results, &classes(), true);
        assert_eq!(
            g.iter().map(|g| g.name.as_str()).collect::<Vec<_>>(),
            ["valid", "train"]
        );
        let v = &g[0].full_resolution;
        assert_eq!((g[0].images, v.pixels), (3, 6));
        assert_eq!(v.pixel_accuracy, Some(5.0 / 6.0));
        // background: inter 3, pred 4, truth 3 → IoU 3/4; skin: inter 2, pred 2, truth 3 → 2/3
        assert_eq!(v.per_class[0].iou, Some(0.75));
        assert_eq!(v.per_class[1].iou, Some(2.0 / 3.0));
        assert_eq!(v.per_class[2].iou, None);
        assert_eq!(v.mean_iou, Some((0.75 + 2.0 / 3.0) / 2.0));
        assert_eq!(v.mean_iou_fg, Some(2.0 / 3.0));
        assert_eq!(v.per_class[1].dice, Some(0.8));
        assert_eq!(v.confusion, vec![vec![3, 0, 0], vec![1, 2, 0], vec![0, 0, 0]]);
        assert_eq!(g[0].model_resolution.loss, Some(2.5 / 6.0));
        assert_eq!(v.loss, None);
        assert_eq!(g[1].full_resolution.mean_iou, Some(1.0));
        // the all-ignore image has no score of its own; background-only has no foreground one
        let c = results[2].full.as_ref().unwrap();
        assert_eq!((c.pixel_accuracy(), rank_score(c, &classes())), (None, None));
        assert_eq!(rank_score(results[1].full.as_ref().unwrap(), &classes()), Some(1.0));
    }

    #[test]
    fn items_without_a_split_form_their_own_group() {
        let only = vec![item("a", None, &[0], &[0], 0.0)];
        assert_eq!(groups(&only, &classes(), false)[0].name, "all");
        let mixed = vec![
            item("a", None, &[0], &[0], 0.0),
            item("b", Some(Split::Valid), &[1], &[1], 0.0),
        ];
        let names: Vec<String> = groups(&mixed, &classes(), true).into_iter().map(|g| g.name).collect();
        assert_eq!(names, ["valid", "unsplit"]);
    }
}
