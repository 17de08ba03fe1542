//! `unet-eval`: runs a trained UNet over a manifest's items (labelled or not), writes the
//! predicted masks at each image's full resolution, adds `pred_mask` to the items, and scores
//! the labelled ones.
//!
//! ```text
//! OUT_DIR/
//!   .unet-eval               marks the directory as this stage's (a rerun replaces it)
//!   masks/ID.tif             predicted class indices, 8-bit (255 = not predicted)
//!   colour/ID.png            the prediction in the palette's colours (an RGB label image)
//!   overlay/ID.png           the prediction over the photo (background left clear)
//!   eval.json                every number below, the model's and manifest's hashes, throughput
//!   per_image.csv            one row per labelled image, to find the worst
//!   confusion.csv/.png       confusion matrix of the headline group at full resolution
//!   contact_sheet.png        worst and best images: photo | truth | prediction | errors
//!   report.md                a short report linking the pictures
//! ```
//!
//! How a prediction is made and mapped back: see [`predict`]. Scores: see [`report`]. In
//! parts (`--shard K/N`, each with its own output folder) and joined again: see [`merge`].
//!
//! Nothing is written until every selected item's image (and mask, with its values) has been
//! checked; the output manifest is written last, so its presence means the stage finished.

mod batches;
pub mod eval_file;
pub mod merge;
pub mod pictures;
mod plan;
pub mod predict;
pub mod report;
pub mod tables;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Result, bail, ensure};
use facepipe_core::io::InputFile;
use facepipe_core::metrics::Confusion;
use facepipe_core::out::Outputs;
use facepipe_core::palette::Class;
use facepipe_core::shard::Shard;
use facepipe_core::{Manifest, Output, Split, Step, paths};
use unet::device::DeviceSpec;
use unet::inference::{Model, Weights};

use crate::plan::Plan;

pub use predict::Outside;

pub const STAGE: &str = "unet-eval";
const MARKER: &str = ".unet-eval";

pub use facepipe_formats::eval::Select;

#[derive(Clone, Debug)]
pub struct Config {
    pub model_dir: PathBuf,
    pub weights: Weights,
    pub input: PathBuf,
    /// Output manifest (`-` for stdout).
    pub output: PathBuf,
    pub out_dir: PathBuf,
    pub select: Select,
    pub outside: Outside,
    pub device: DeviceSpec,
    /// Tiles per forward pass.
    pub bs: usize,
    /// Images of each kind (worst, best) on the contact sheet.
    pub contact: usize,
    /// Replace an output manifest this stage did not write.
    pub force: bool,
    /// Run only this part of the input's items (`--shard K/N`); [`merge`] joins the parts.
    pub shard: Option<Shard>,
}

/// What one item gave.
#[derive(Clone, Debug)]
pub struct ItemResult {
    pub id: String,
    pub split: Option<Split>,
    pub image: PathBuf,
    pub mask: Option<PathBuf>,
    pub width: u32,
    pub height: u32,
    pub tiles: usize,
    /// Relative to the output directory.
    pub pred_mask: String,
    pub colour: String,
    pub overlay: String,
    /// Scores of a labelled item.
    pub full: Option<Confusion>,
    pub model: Option<Confusion>,
    /// Cross-entropy summed over the model-resolution labelled pixels.
    pub model_loss_sum: f64,
}

/// What the stage produced.
pub struct Outcome {
    pub manifest: Manifest,
    pub eval: report::EvalFile,
}

fn classes_match(a: &[Class], b: &[Class]) -> Option<String> {
    if a.len() != b.len() {
        return Some(format!("{} classes against the model's {}", a.len(), b.len()));
    }
    a.iter().zip(b).find_map(|(x, y)| {
        (x.id != y.id || x.name != y.name || x.rgb != y.rgb).then(|| {
            format!(
                "class {} is {:?} {:?} but the model's is {:?} {:?}",
                x.id, x.name, x.rgb, y.name, y.rgb
            )
        })
    })
}

/// Runs the model over the selected items, writes everything, and returns the output
/// manifest (written too) and the evaluation: the checks (nothing written), the network pass
/// (masks and pictures), the output manifest's items, the reports, the manifest last.
pub fn run(cfg: &Config, progress: &indicatif::ProgressBar) -> Result<Outcome> {
    ensure!(cfg.bs > 0, "--bs must be at least 1");
    let out = Output::parse(&cfg.output);
    // held to the end: a second run on the same outputs refuses
    let mut outputs = Outputs::new(STAGE, cfg.force);
    outputs.manifest(&cfg.output)?;
    outputs.lock(&cfg.out_dir)?;
    let model = Model::open(&cfg.model_dir, cfg.weights)?;
    let loaded = Manifest::read(&cfg.input)?;
    let shown = cfg.input.display().to_string();
    let mut m = loaded.manifest;
    if !m.classes.is_empty()
        && let Some(why) = classes_match(&m.classes, &model.info.classes)
    {
        bail!(
            "the classes of {shown} do not match the model's ({}): {why}",
            model.dir.join("model.json").display()
        );
    }
    let plan = plan::plan(&m, cfg, model.n_classes(), &shown)?;
    if let Some(s) = cfg.shard {
        log::info!("shard {s}: {} of the selected items", plan.jobs.len());
    }
    let out_dir = paths::absolute(&cfg.out_dir)?;
    check_output(cfg, &out, &out_dir, plan.jobs.len(), m.items.len())?;
    // The output folder: only a previous unet-eval's files are replaced, nothing else is
    // touched (without --force, anything else makes it refuse before the model runs).
    let folder = outputs.folder(&out_dir, MARKER, "--out-dir", &|_| false)?;
    let pass = batches::Pass {
        model: &model,
        device: cfg.device,
        bs: cfg.bs,
        out_dir: &out_dir,
    };
    let (results, throughput) = batches::predict_all(&pass, &plan.jobs, folder, progress)?;
    progress.finish_and_clear();

    let dropped = predicted_items(&mut m, &plan, &results, &out_dir, &model.info.classes)?;
    let eval = report::write_all(
        &out_dir,
        &model,
        &loaded.input,
        &settings(cfg),
        &results,
        throughput,
        &report::Scope {
            contact: cfg.contact,
            any_split: plan.any_split,
            shard: cfg.shard,
        },
    )?;
    let inputs = vec![loaded.input, model.model_json.clone(), model.weights_file.clone()];
    m.provenance.push(step(cfg, inputs, dropped, m.items.len(), &eval));
    m.write(&out, cfg.force)?;
    Ok(Outcome { manifest: m, eval })
}

/// Errors (before anything is written) if the output manifest would be inside the output
/// folder, or would replace the input manifest while dropping items of it (`kept` of `of`).
fn check_output(cfg: &Config, out: &Output, out_dir: &Path, kept: usize, of: usize) -> Result<()> {
    let Output::File(p) = out else {
        return Ok(());
    };
    if paths::absolute(p)?.starts_with(out_dir) {
        bail!(
            "the output manifest {} must not be inside --out-dir {}",
            p.display(),
            out_dir.display()
        );
    }
    if kept < of && paths::absolute(p)? == paths::absolute(&cfg.input)? {
        bail!(
            "-o {} is the input manifest, and --split {} keeps {kept} of its {of} items: writing it would drop the others; choose another -o",
            p.display(),
            cfg.select,
        );
    }
    Ok(())
}

/// Makes `m` the output manifest: the selected items of this part, each with `pred_mask`
/// (and its size, if it had none), and the model's palette if `m` had none. Returns how
/// many items of the part were not selected.
fn predicted_items(
    m: &mut Manifest,
    plan: &Plan,
    results: &[ItemResult],
    out_dir: &Path,
    classes: &[Class],
) -> Result<usize> {
    let mut items = Vec::with_capacity(results.len());
    for (j, r) in plan.jobs.iter().zip(results) {
        let mut it = m.items[j.index].clone();
        it.pred_mask = Some(paths::to_manifest_string(&out_dir.join(&r.pred_mask))?);
        it.width.get_or_insert(r.width);
        it.height.get_or_insert(r.height);
        items.push(it);
    }
    let dropped = plan.part_items - items.len();
    m.items = items;
    if m.classes.is_empty() {
        m.classes = classes
            .iter()
            .map(|c| Class {
                pixels: None,
                ..c.clone()
            })
            .collect();
    }
    Ok(dropped)
}

/// The settings `eval.json` records.
fn settings(cfg: &Config) -> report::Settings {
    report::Settings {
        split: cfg.select,
        outside: cfg.outside,
        weights: cfg.weights,
        device: cfg.device.to_string(),
        batch_size: cfg.bs,
    }
}

/// This run's provenance step: its settings, `inputs` (manifest, model.json, weights), the
/// counts and, unsharded, each group's headline scores.
fn step(cfg: &Config, inputs: Vec<InputFile>, dropped: usize, written: usize, eval: &report::EvalFile) -> Step {
    let mut step = Step::new(STAGE, facepipe_core::VERSION)
        .param("split", cfg.select)
        .param("outside", cfg.outside)
        .param("weights", cfg.weights)
        .param("batch_size", cfg.bs);
    if let Some(s) = cfg.shard {
        step = step.param("shard", s.to_string());
    }
    step.inputs = inputs;
    step.count("items", eval.items);
    step.count("items_not_selected", dropped);
    step.count("labelled", eval.labelled);
    step.count("tiles", eval.throughput.tiles);
    step.count(facepipe_core::manifest::ITEMS_WRITTEN, written);
    // a shard's scores are its part's only: they are left out of its step (manifest-merge adds
    // counts up; the merged scores are in the merged eval.json)
    let mut summary = BTreeMap::new();
    for g in eval.groups.iter().filter(|_| cfg.shard.is_none()) {
        summary.insert(format!("{}_mean_iou", g.name), g.full_resolution.mean_iou);
        summary.insert(format!("{}_pixel_accuracy", g.name), g.full_resolution.pixel_accuracy);
    }
    for (k, v) in summary {
        step.count(&k, v);
    }
    step
}

/// Three classes for unit tests (background, skin, eyes), coloured by their ids.
#[cfg(test)]
pub(crate) fn test_classes() -> Vec<Class> {
    vec![
        Class::new(0, "background", [0, 0, 0]),
        Class::new(1, "skin", [1, 1, 1]),
        Class::new(2, "eyes", [2, 2, 2]),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn palettes_are_compared_by_id_name_and_colour() {
        let a = facepipe_core::palette::mut1ny();
        assert_eq!(classes_match(&a, &a), None);
        let mut b = a.clone();
        b[3].rgb = [1, 2, 3];
        assert!(classes_match(&b, &a).unwrap().contains("class 3"));
        assert!(classes_match(&a[..5], &a).unwrap().contains("5 classes"));
        let mut c = a.clone();
        c[0].pixels = Some(9); // counts are not the palette
        assert_eq!(classes_match(&c, &a), None);
    }
}
