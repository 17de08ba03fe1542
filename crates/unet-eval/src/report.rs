//! Scores, files and pictures of an evaluation.
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

use std::path::Path;

use anyhow::Result;
use facepipe_core::io::{InputFile, write_atomic};
use facepipe_core::metrics::{Confusion, mean_present};
use facepipe_core::palette::{Class, IGNORE};
use facepipe_plot::{COLOURS, Canvas};
use image::imageops::{self, FilterType};
use image::{GrayImage, Rgb, RgbImage};
use serde::{Deserialize, Serialize};
use unet::infer::{Model, Weights};

use crate::predict::Outside;
use crate::{EVAL_FORMAT, ItemResult, Select};

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

fn group_name(r: &ItemResult, any_split: bool) -> &'static str {
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

/// Stripes for pixels with no class (ignored or not predicted).
fn hatch(x: u32, y: u32) -> [u8; 3] {
    if ((x + y) / 3).is_multiple_of(2) {
        [90, 90, 90]
    } else {
        [170, 170, 170]
    }
}

/// A class mask in the palette's colours (255 hatched grey).
pub fn colourise(mask: &GrayImage, classes: &[Class]) -> RgbImage {
    RgbImage::from_fn(mask.width(), mask.height(), |x, y| {
        let v = mask.get_pixel(x, y).0[0];
        Rgb(classes.get(usize::from(v)).map_or_else(|| hatch(x, y), |c| c.rgb))
    })
}

/// The prediction blended over the photo (45 % colour); background pixels left as they are.
pub fn overlay(photo: &RgbImage, mask: &GrayImage, classes: &[Class]) -> RgbImage {
    let bg = background(classes);
    RgbImage::from_fn(photo.width(), photo.height(), |x, y| {
        let p = photo.get_pixel(x, y).0;
        let v = usize::from(mask.get_pixel(x, y).0[0]);
        match classes.get(v) {
            Some(c) if Some(v) != bg => Rgb(std::array::from_fn(|k| {
                (f32::from(p[k]) * 0.55 + f32::from(c.rgb[k]) * 0.45).round() as u8
            })),
            _ => Rgb(p),
        }
    })
}

/// Wrong pixels in red over a faded photo; unlabelled or unpredicted pixels hatched.
fn errors(photo: &RgbImage, pred: &GrayImage, truth: &GrayImage) -> RgbImage {
    RgbImage::from_fn(photo.width(), photo.height(), |x, y| {
        let (p, t) = (pred.get_pixel(x, y).0[0], truth.get_pixel(x, y).0[0]);
        if t == IGNORE || p == IGNORE {
            return Rgb(hatch(x, y));
        }
        if p != t {
            return Rgb([230, 20, 20]);
        }
        let g = photo.get_pixel(x, y).0;
        let l = (u32::from(g[0]) * 3 + u32::from(g[1]) * 6 + u32::from(g[2])) / 10;
        Rgb([((255 + l) / 2) as u8; 3])
    })
}

fn fmt(v: Option<f64>) -> String {
    v.map_or_else(String::new, |v| format!("{v:.6}"))
}

fn fmt_short(v: Option<f64>) -> String {
    v.map_or_else(|| "–".to_string(), |v| format!("{v:.3}"))
}

/// `per_image.csv`: one row per labelled image, full resolution.
fn per_image_csv(path: &Path, results: &[ItemResult], classes: &[Class], any_split: bool) -> Result<()> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut header: Vec<String> = [
        "id",
        "group",
        "image",
        "width",
        "height",
        "pixels",
        "unpredicted_pixels",
        "pixel_accuracy",
        "mean_dice",
        "mean_iou",
        "mean_dice_fg",
        "mean_iou_fg",
        "model_res_pixel_accuracy",
        "model_res_mean_iou",
    ]
    .map(String::from)
    .to_vec();
    header.extend(
        classes
            .iter()
            .map(|c| format!("iou_{}", facepipe_core::palette::column_name(&c.name))),
    );
    w.write_record(&header)?;
    let bg = background(classes);
    for r in results {
        let (Some(c), Some(m)) = (&r.full, &r.model) else {
            continue;
        };
        let (dice, iou) = (c.dice(), c.iou());
        let mut row = vec![
            r.id.clone(),
            group_name(r, any_split).to_string(),
            r.image.display().to_string(),
            r.width.to_string(),
            r.height.to_string(),
            c.pixels().to_string(),
            c.unpredicted().to_string(),
            fmt(c.pixel_accuracy()),
            fmt(mean_present(&dice, None)),
            fmt(mean_present(&iou, None)),
            fmt(mean_present(&dice, bg)),
            fmt(mean_present(&iou, bg)),
            fmt(m.pixel_accuracy()),
            fmt(mean_present(&m.iou(), None)),
        ];
        row.extend(iou.iter().map(|&v| fmt(v)));
        w.write_record(&row)?;
    }
    write_atomic(path, &w.into_inner()?)
}

pub fn confusion_csv(path: &Path, s: &Scores, classes: &[Class]) -> Result<()> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut header = vec!["truth \\ predicted".to_string()];
    header.extend(classes.iter().map(|c| c.name.clone()));
    w.write_record(&header)?;
    for (c, row) in classes.iter().zip(&s.confusion) {
        let mut r = vec![c.name.clone()];
        r.extend(row.iter().map(u64::to_string));
        w.write_record(&r)?;
    }
    write_atomic(path, &w.into_inner()?)
}

/// The confusion matrix as a heat map: each row as percentages of its true class.
pub fn confusion_png(s: &Scores, classes: &[Class], title: &str) -> RgbImage {
    let n = classes.len() as u32;
    let cell = 34u32;
    let label_w = classes
        .iter()
        .map(|c| Canvas::text_width(&c.name, 1))
        .max()
        .unwrap_or(0)
        + 12;
    let (left, top) = (label_w + 14, label_w + 44);
    let (w, h) = (left + n * cell + 20, top + n * cell + 40);
    let mut cv = Canvas::new(w.max(Canvas::text_width(title, 1) + 20), h);
    let ink = Rgb([30, 30, 30]);
    cv.text(10, 8, title, 1, ink);
    cv.text(
        10,
        22,
        "rows: true class, columns: predicted; cells: % of the row",
        1,
        Rgb([90, 90, 90]),
    );
    let blue = COLOURS[0];
    // grid: cells are drawn one pixel short of their pitch over a light grey square
    cv.rect(
        i64::from(left) - 1,
        i64::from(top) - 1,
        n * cell + 1,
        n * cell + 1,
        Rgb([215, 215, 215]),
    );
    for (i, c) in classes.iter().enumerate() {
        let y = top + i as u32 * cell + cell / 2 - 4;
        cv.text(
            i64::from(left - 6 - Canvas::text_width(&c.name, 1)),
            i64::from(y),
            &c.name,
            1,
            ink,
        );
        let x = left + i as u32 * cell + cell / 2 - 4;
        cv.text_up(i64::from(x), i64::from(top - 6), &c.name, ink);
    }
    for (t, row) in s.confusion.iter().enumerate() {
        let total: u64 = row.iter().sum();
        for (p, &v) in row.iter().enumerate() {
            let f = if total > 0 { v as f64 / total as f64 } else { 0.0 };
            let col = Rgb(std::array::from_fn(|k| {
                (255.0 - (255.0 - f64::from(blue[k])) * f.sqrt()).round() as u8
            }));
            let (x, y) = (left + p as u32 * cell, top + t as u32 * cell);
            cv.rect(i64::from(x), i64::from(y), cell - 1, cell - 1, col);
            if total > 0 && v > 0 {
                // never "0" for some pixels, never "100" for not all
                let label = match f * 100.0 {
                    p if p < 1.0 => "<1".to_string(),
                    p if v < total => format!("{:.0}", p.min(99.0)),
                    _ => "100".to_string(),
                };
                let tw = Canvas::text_width(&label, 1);
                let fg = if f > 0.4 { Rgb([255, 255, 255]) } else { ink };
                cv.text(
                    i64::from(x + (cell - tw) / 2),
                    i64::from(y + cell / 2 - 4),
                    &label,
                    1,
                    fg,
                );
            }
        }
    }
    cv.img
}

/// One row of the contact sheet.
struct SheetRow {
    label: String,
    panels: [RgbImage; 4],
}

fn sheet_row(r: &ItemResult, out_dir: &Path, classes: &[Class], mask: &Path, side: u32) -> Result<SheetRow> {
    let photo = unet::data::read_image(&r.image)?;
    let pred = facepipe_core::images::decode(&out_dir.join(&r.pred_mask), "predicted mask")?.to_luma8();
    let truth = facepipe_core::mask::read(mask, classes.len())?;
    let c = r.full.as_ref().expect("labelled");
    let label = format!(
        "{}  mean IoU {}  acc {}",
        r.id,
        fmt_short(rank_score(c, classes)),
        fmt_short(c.pixel_accuracy())
    );
    Ok(SheetRow {
        label,
        panels: [
            facepipe_plot::fit_square(&photo, side, FilterType::Triangle),
            facepipe_plot::fit_square(&colourise(&truth, classes), side, FilterType::Nearest),
            facepipe_plot::fit_square(&colourise(&pred, classes), side, FilterType::Nearest),
            facepipe_plot::fit_square(&errors(&photo, &pred, &truth), side, FilterType::Nearest),
        ],
    })
}

/// The contact sheet: worst images first, then the best, each as photo | truth | prediction |
/// errors, with the palette as a legend.
fn contact_sheet(sections: &[(String, Vec<SheetRow>)], classes: &[Class], side: u32) -> RgbImage {
    let (gap, label_h, head_h) = (8u32, 14u32, 22u32);
    let rows: u32 = sections.iter().map(|(_, r)| r.len() as u32).sum();
    let legend_rows = (classes.len() as u32).div_ceil(4);
    let width = 4 * side + 5 * gap;
    let height = 30 + 14 + sections.len() as u32 * head_h + rows * (side + label_h + gap) + legend_rows * 14 + 20;
    let mut cv = Canvas::new(width, height);
    let ink = Rgb([30, 30, 30]);
    cv.text(i64::from(gap), 8, "unet-eval contact sheet", 1, ink);
    for (k, name) in ["photo", "truth", "prediction", "errors (red)"].iter().enumerate() {
        cv.text(i64::from(gap + k as u32 * (side + gap)), 26, name, 1, Rgb([90, 90, 90]));
    }
    let mut y = 44u32;
    for (title, list) in sections {
        cv.text(i64::from(gap), i64::from(y + 6), title, 1, Rgb(COLOURS[1]));
        y += head_h;
        for row in list {
            let max_chars = (width - 2 * gap) / 8;
            let label: String = row.label.chars().take(max_chars as usize).collect();
            cv.text(i64::from(gap), i64::from(y), &label, 1, ink);
            y += label_h;
            for (k, p) in row.panels.iter().enumerate() {
                imageops::overlay(&mut cv.img, p, i64::from(gap + k as u32 * (side + gap)), i64::from(y));
            }
            y += side + gap;
        }
    }
    for (i, c) in classes.iter().enumerate() {
        let (col, row) = (i as u32 % 4, i as u32 / 4);
        let (x, yy) = (gap + col * (width - gap) / 4, y + 4 + row * 14);
        cv.rect(i64::from(x), i64::from(yy), 10, 10, Rgb(c.rgb));
        let name: String = c.name.chars().take(((width / 4 - 18) / 8) as usize).collect();
        cv.text(i64::from(x + 14), i64::from(yy + 1), &name, 1, ink);
    }
    cv.img
}

/// `report.md`.
pub fn report_md(e: &EvalFile, contact: bool) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let t = &e.throughput;
    let rec = &e.model.training_record;
    let _ = writeln!(s, "# unet-eval report\n");
    let _ = writeln!(
        s,
        "Model `{}` ({} UNet, {} px input, {} weights: {} epoch {}), `model.json` sha256 `{}`.  ",
        e.model.dir,
        e.model.arch,
        e.model.input_size,
        e.model.weights,
        rec["phase"].as_str().unwrap_or("?"),
        rec["epoch"].as_u64().map_or("?".into(), |v| (v + 1).to_string()),
        &e.model.model_json_sha256[..16]
    );
    let _ = writeln!(
        s,
        "Manifest `{}` (sha256 `{}`): {} images ({} labelled), split `{}`, outside the centre square: `{}`.  ",
        e.manifest.path,
        &e.manifest.sha256[..16],
        e.items,
        e.labelled,
        e.settings.split,
        match e.settings.outside {
            Outside::Tile => "tile",
            Outside::None => "none",
        }
    );
    let _ = writeln!(
        s,
        "Ran on `{}` in {:.1} s: **{:.2} images/s** overall, {:.2} tiles/s in the network ({} tiles).\n",
        e.settings.device, t.seconds, t.images_per_s, t.network_tiles_per_s, t.tiles
    );
    if e.groups.is_empty() {
        let _ = writeln!(s, "No item is labelled: predictions only, no scores.");
        return s;
    }
    let _ = writeln!(
        s,
        "## Scores\n\nGlobal sums over each group; means over the classes present (fastai's DiceMulti); `fg` leaves out the background. \
         *Full resolution* scores the prediction mapped back onto the original image; *model resolution* scores the {0}×{0} \
         validation centre crop, as training's validation does.\n",
        e.model.input_size
    );
    let _ = writeln!(
        s,
        "| group | images | resolution | pixel accuracy | mean dice | mean IoU | mean dice fg | mean IoU fg | loss |"
    );
    let _ = writeln!(s, "|---|---:|---|---:|---:|---:|---:|---:|---:|");
    for g in &e.groups {
        for (res, sc) in [("full", &g.full_resolution), ("model", &g.model_resolution)] {
            let _ = writeln!(
                s,
                "| {} | {} | {res} | {} | {} | {} | {} | {} | {} |",
                g.name,
                g.images,
                fmt_short(sc.pixel_accuracy),
                fmt_short(sc.mean_dice),
                fmt_short(sc.mean_iou),
                fmt_short(sc.mean_dice_fg),
                fmt_short(sc.mean_iou_fg),
                fmt_short(sc.loss)
            );
        }
    }
    let f = |k: &str| fmt_short(rec[k].as_f64());
    let _ = writeln!(
        s,
        "| training's record | {} | model | {} | {} | {} | {} | {} | {} |\n",
        e.model.n_valid,
        f("pixel_accuracy"),
        f("mean_dice"),
        f("mean_iou"),
        f("mean_dice_fg"),
        f("mean_iou_fg"),
        f("valid_loss")
    );
    if let Some(g) = e.groups.iter().find(|g| Some(&g.name) == e.headline.as_ref()) {
        let _ = writeln!(s, "## Per class ({}, full resolution)\n", g.name);
        let _ = writeln!(s, "| class | true pixels | predicted pixels | dice | IoU |");
        let _ = writeln!(s, "|---|---:|---:|---:|---:|");
        for c in &g.full_resolution.per_class {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} |",
                c.name,
                c.truth_pixels,
                c.pred_pixels,
                fmt_short(c.dice),
                fmt_short(c.iou)
            );
        }
        let _ = writeln!(
            s,
            "\n## Pictures\n\n![confusion matrix](confusion.png)\n\nConfusion counts: [confusion.csv](confusion.csv); per-image scores: [per_image.csv](per_image.csv)."
        );
        if contact {
            let _ = writeln!(
                s,
                "\n![worst and best images](contact_sheet.png)\n\nEach row: photo, truth, prediction, errors in red."
            );
        }
    }
    if !e.shards.is_empty() {
        let _ = writeln!(
            s,
            "\n## Shards\n\nMerged from {} shards; the scores above are of all of them (confusion matrices summed). \
             Predicted masks, pictures and each shard's worst and best images stay in the shard folders:\n",
            e.shards.len()
        );
        for sh in &e.shards {
            let sheet = sh
                .contact_sheet
                .as_ref()
                .map_or_else(String::new, |c| format!(" ([contact sheet]({c}))"));
            let _ = writeln!(s, "- {}: `{}`{sheet}", sh.shard, sh.dir);
        }
    }
    let _ = writeln!(
        s,
        "\nPredicted masks: `masks/` (class indices), `colour/` (palette colours), `overlay/` (over the photo)."
    );
    s
}

/// The files [`write_all`] may write at the top of the output folder.
pub const FILES: [&str; 6] = [
    "per_image.csv",
    "confusion.csv",
    "confusion.png",
    "contact_sheet.png",
    "report.md",
    "eval.json",
];

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

/// Writes `eval.json`, the CSVs, the pictures and the report; returns what `eval.json` holds.
pub fn write_all(
    out_dir: &Path,
    model: &Model,
    manifest: &InputFile,
    settings: &Settings,
    results: &[ItemResult],
    throughput: Throughput,
    scope: &Scope,
) -> Result<EvalFile> {
    let Scope {
        contact,
        any_split,
        shard,
    } = *scope;
    let classes = &model.info.classes;
    let groups = groups(results, classes, any_split);
    let headline = groups.first().map(|g| g.name.clone());
    let mut files = vec!["masks/".to_string(), "colour/".into(), "overlay/".into()];
    let labelled = results.iter().filter(|r| r.full.is_some()).count();
    let mut sheet = false;
    if let Some(h) = groups.first() {
        per_image_csv(&out_dir.join("per_image.csv"), results, classes, any_split)?;
        confusion_csv(&out_dir.join("confusion.csv"), &h.full_resolution, classes)?;
        let title = format!("confusion matrix: {} ({} images), full resolution", h.name, h.images);
        facepipe_plot::save_png(
            &out_dir.join("confusion.png"),
            &confusion_png(&h.full_resolution, classes, &title),
        )?;
        files.extend(["per_image.csv", "confusion.csv", "confusion.png"].map(String::from));
        // contact sheet: the headline group's worst and best images
        let mut ranked: Vec<(f64, &ItemResult)> = results
            .iter()
            .filter(|r| group_name(r, any_split) == h.name)
            .filter_map(|r| r.full.as_ref().and_then(|c| rank_score(c, classes)).map(|s| (s, r)))
            .collect();
        ranked.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.id.cmp(&b.1.id)));
        if contact > 0 && !ranked.is_empty() {
            let worst: Vec<&ItemResult> = ranked.iter().take(contact).map(|x| x.1).collect();
            let n_best = contact.min(ranked.len() - worst.len());
            let best: Vec<&ItemResult> = ranked.iter().rev().take(n_best).map(|x| x.1).collect();
            let side = 150;
            let rows = |list: &[&ItemResult]| -> Result<Vec<SheetRow>> {
                list.iter()
                    .map(|r| sheet_row(r, out_dir, classes, r.mask.as_deref().expect("labelled"), side))
                    .collect()
            };
            let mut sections = vec![(
                format!("worst {} of {} ({})", worst.len(), ranked.len(), h.name),
                rows(&worst)?,
            )];
            if !best.is_empty() {
                sections.push((format!("best {}", best.len()), rows(&best)?));
            }
            facepipe_plot::save_png(
                &out_dir.join("contact_sheet.png"),
                &contact_sheet(&sections, classes, side),
            )?;
            files.push("contact_sheet.png".into());
            sheet = true;
        }
    }
    files.extend(["report.md", "eval.json"].map(String::from));
    let record = match settings.weights {
        Weights::Best => &model.info.best.record,
        Weights::Last => &model.info.last.record,
    };
    let eval = EvalFile {
        format: EVAL_FORMAT.into(),
        format_version: 1,
        model: ModelRef {
            dir: model.dir.display().to_string(),
            model_json_sha256: model.model_json.sha256.clone(),
            weights: model.which,
            weights_file: model.weights.display().to_string(),
            weights_sha256: model.weights_file.sha256.clone(),
            arch: model.info.arch.to_string(),
            input_size: model.input_size(),
            n_valid: model.info.n_valid,
            training_record: serde_json::to_value(record)?,
        },
        manifest: manifest.clone(),
        settings: settings.clone(),
        classes: classes.clone(),
        items: results.len(),
        labelled,
        unlabelled: results.len() - labelled,
        headline,
        groups,
        throughput,
        files,
        shard: shard.map(|s| s.to_string()),
        shards: vec![],
        facepipe_version: facepipe_core::VERSION.into(),
    };
    write_atomic(&out_dir.join("report.md"), report_md(&eval, sheet).as_bytes())?;
    facepipe_core::io::write_json(&out_dir.join("eval.json"), &eval)?;
    Ok(eval)
}

/// The run in a few log lines (info): throughput and each group's headline scores.
pub fn log_summary(e: &EvalFile) {
    let t = &e.throughput;
    log::info!(
        "{} images ({} labelled) in {:.1} s: {:.2} images/s; network {:.2} tiles/s ({} tiles)",
        e.items,
        e.labelled,
        t.seconds,
        t.images_per_s,
        t.network_tiles_per_s,
        t.tiles
    );
    for g in &e.groups {
        for (res, s) in [
            ("full resolution", &g.full_resolution),
            ("model resolution", &g.model_resolution),
        ] {
            log::info!(
                "{} ({} images), {res}: pixel accuracy {}, mean IoU {} (foreground {}), mean dice {} (foreground {})",
                g.name,
                g.images,
                fmt_short(s.pixel_accuracy),
                fmt_short(s.mean_iou),
                fmt_short(s.mean_iou_fg),
                fmt_short(s.mean_dice),
                fmt_short(s.mean_dice_fg)
            );
        }
    }
}

/// A short human summary of a finished evaluation directory (what `make all` prints).
pub fn summary(dir: &Path) -> Result<String> {
    use anyhow::Context as _;
    let p = dir.join("eval.json");
    let text = std::fs::read_to_string(&p).with_context(|| {
        format!(
            "reading {}: is {} a finished unet-eval directory?",
            p.display(),
            dir.display()
        )
    })?;
    let e: serde_json::Value = serde_json::from_str(&text).with_context(|| format!("parsing {}", p.display()))?;
    anyhow::ensure!(e["format"] == EVAL_FORMAT, "{} is not a unet-eval result", p.display());
    let f = |v: &serde_json::Value| fmt_short(v.as_f64());
    let t = &e["throughput"];
    let mut out = format!(
        "evaluation {}: {} images ({} labelled) with the {} weights, {:.2} images/s on {}",
        dir.display(),
        e["items"],
        e["labelled"],
        e["model"]["weights"].as_str().unwrap_or("?"),
        t["images_per_s"].as_f64().unwrap_or(0.0),
        e["settings"]["device"].as_str().unwrap_or("?")
    );
    for g in e["groups"].as_array().into_iter().flatten() {
        for (res, k) in [
            ("full resolution", "full_resolution"),
            ("model resolution", "model_resolution"),
        ] {
            let s = &g[k];
            out.push_str(&format!(
                "\n  {} ({} images), {res}: pixel accuracy {}, mean IoU {} (foreground {}), mean dice {} (foreground {})",
                g["name"].as_str().unwrap_or("?"),
                g["images"],
                f(&s["pixel_accuracy"]),
                f(&s["mean_iou"]),
                f(&s["mean_iou_fg"]),
                f(&s["mean_dice"]),
                f(&s["mean_dice_fg"])
            ));
            if k == "full_resolution" {
                let per: Vec<String> = s["per_class"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|c| c["iou"].is_number())
                    .map(|c| format!("{} {}", c["name"].as_str().unwrap_or("?"), f(&c["iou"])))
                    .collect();
                if !per.is_empty() {
                    out.push_str(&format!("\n    IoU per class: {}", per.join(", ")));
                }
            }
        }
    }
    if dir.join("contact_sheet.png").is_file() {
        out.push_str(&format!(
            "\n  worst and best images: {}; report: {}",
            dir.join("contact_sheet.png").display(),
            dir.join("report.md").display()
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use facepipe_core::Split;

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

    fn classes() -> Vec<Class> {
        vec![
            Class::new(0, "background", [0, 0, 0]),
            Class::new(1, "skin", [1, 1, 1]),
            Class::new(2, "eyes", [2, 2, 2]),
        ]
    }

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

    #[test]
    fn pictures_use_the_palette() {
        let mask = GrayImage::from_raw(3, 1, vec![0, 2, 255]).unwrap();
        let c = colourise(&mask, &classes());
        assert_eq!((c.get_pixel(0, 0).0, c.get_pixel(1, 0).0), ([0, 0, 0], [2, 2, 2]));
        assert!(c.get_pixel(2, 0).0[0] >= 90, "no class: hatched grey");
        let photo = RgbImage::from_pixel(3, 1, Rgb([200, 100, 0]));
        let o = overlay(&photo, &mask, &classes());
        assert_eq!(o.get_pixel(0, 0).0, [200, 100, 0], "background left clear");
        assert_eq!(o.get_pixel(1, 0).0, [111, 56, 1]);
        let heat = confusion_png(
            &Scores::from_confusion(&Confusion::new(3), &classes(), None),
            &classes(),
            "t",
        );
        assert!(heat.width() > 100 && heat.height() > 100);
    }
}
