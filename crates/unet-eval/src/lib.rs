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

pub mod eval_file;
pub mod merge;
pub mod pictures;
pub mod predict;
pub mod report;
pub mod tables;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use facepipe_core::metrics::Confusion;
use facepipe_core::palette::{Class, IGNORE};
use facepipe_core::shard::Shard;
use facepipe_core::{Item, Manifest, Output, Split, Step, io, paths};
use image::{GrayImage, RgbImage};
use rayon::prelude::*;
use serde::Serialize;
use unet::device::DeviceSpec;
use unet::inference::{Model, Predict, Weights, with_predictor};

pub use predict::Outside;

pub const STAGE: &str = "unet-eval";
const MARKER: &str = ".unet-eval";
pub const EVAL_FORMAT: &str = "facepipe.eval";

/// Which items to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Select {
    Valid,
    Train,
    /// Every item, with or without a split.
    All,
}

impl std::fmt::Display for Select {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Select::Valid => "valid",
            Select::Train => "train",
            Select::All => "all",
        })
    }
}

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

/// One item to run, checked.
#[derive(Clone, Debug)]
struct Job {
    index: usize,
    id: String,
    split: Option<Split>,
    image: PathBuf,
    mask: Option<PathBuf>,
    width: u32,
    height: u32,
    /// Output paths relative to the output directory, without extension.
    stem: String,
    /// The crops the network sees, and which is the validation centre crop.
    tiles: Vec<unet::data::Crop>,
    centre: usize,
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

/// A relative output stem for an id: its `/`-separated parts, each made a safe file name.
fn stem_for(id: &str) -> String {
    id.split(['/', '\\'])
        .filter(|p| !p.is_empty())
        .map(|p| {
            let p: String = p
                .chars()
                .map(|c| {
                    if c.is_control() || ":*?\"<>|".contains(c) {
                        '_'
                    } else {
                        c
                    }
                })
                .collect();
            if p == "." || p == ".." { "_".to_string() } else { p }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The items to run.
struct Plan {
    jobs: Vec<Job>,
    /// Whether any item of the whole run (every shard) has a split: it names the group of
    /// the items without one (`unsplit` beside others, else `all`).
    any_split: bool,
    /// Items of the input in this part (all of them unsharded).
    part_items: usize,
}

/// Checks the selected items (of this shard) before anything is written: image present and
/// readable, mask of the same size with valid values. Output names are checked over every
/// selected item, so that shards never write what the unsharded run would refuse.
fn plan(
    m: &Manifest,
    select: Select,
    outside: Outside,
    n_classes: usize,
    shown: &str,
    shard: Option<Shard>,
) -> Result<Plan> {
    let wanted = |it: &Item| match select {
        Select::All => true,
        Select::Valid => it.split == Some(Split::Valid),
        Select::Train => it.split == Some(Split::Train),
    };
    if select != Select::All && m.items.iter().all(|it| it.split.is_none()) {
        bail!("no item in {shown} has a `split`: run split first, or use --split all");
    }
    let mine: Option<HashSet<usize>> = shard.map(|s| {
        let ids: Vec<&str> = m.items.iter().map(|it| it.id.as_str()).collect();
        s.select(&ids).into_iter().collect()
    });
    let any_split = m.items.iter().filter(|it| wanted(it)).any(|it| it.split.is_some());
    let mut jobs = Vec::new();
    let mut stems = HashSet::new();
    for (index, it) in m.items.iter().enumerate().filter(|(_, it)| wanted(it)) {
        let image = it
            .image
            .as_ref()
            .with_context(|| format!("item {:?} in {shown} has no `image`", it.id))?;
        let stem = stem_for(&it.id);
        ensure!(!stem.is_empty(), "item id {:?} makes no file name", it.id);
        if !stems.insert(stem.to_lowercase()) {
            bail!(
                "item ids in {shown} give the same output name {stem:?} (ids differing only in case or in unsafe characters)"
            );
        }
        if mine.as_ref().is_some_and(|k| !k.contains(&index)) {
            continue;
        }
        jobs.push(Job {
            index,
            id: it.id.clone(),
            split: it.split,
            image: PathBuf::from(image),
            mask: it.mask.as_ref().map(PathBuf::from),
            width: 0,
            height: 0,
            stem,
            tiles: vec![],
            centre: 0,
        });
    }
    if stems.is_empty() {
        bail!("no item of {shown} is selected by --split {select}");
    }
    // (a shard may hold none of them: it writes an empty part)
    jobs.par_iter_mut().try_for_each(|j| -> Result<()> {
        let (w, h) = image::image_dimensions(&j.image)
            .with_context(|| format!("item {:?}: cannot read image {}", j.id, j.image.display()))?;
        ensure!(w > 0 && h > 0, "item {:?}: image {} is empty", j.id, j.image.display());
        (j.width, j.height) = (w, h);
        (j.tiles, j.centre) = predict::tiles(w, h, outside);
        if let Some(mp) = &j.mask {
            let mask = facepipe_core::mask::read(mp, n_classes).with_context(|| format!("item {:?}", j.id))?;
            ensure!(
                mask.dimensions() == (w, h),
                "item {:?}: image {} is {w}×{h} but its mask {} is {}×{}",
                j.id,
                j.image.display(),
                mp.display(),
                mask.width(),
                mask.height()
            );
        }
        Ok(())
    })?;
    let part_items = mine.as_ref().map_or(m.items.len(), HashSet::len);
    Ok(Plan {
        jobs,
        any_split,
        part_items,
    })
}

/// Runs the model over the selected items, writes everything, and returns the output
/// manifest (written too) and the evaluation.
pub fn run(cfg: &Config, progress: &indicatif::ProgressBar) -> Result<Outcome> {
    ensure!(cfg.bs > 0, "--bs must be at least 1");
    let out = Output::parse(&cfg.output);
    let _locks = facepipe_core::out::lock_outputs(STAGE, [cfg.output.as_path(), cfg.out_dir.as_path()])?;
    if let Output::File(p) = &out {
        facepipe_core::manifest::guard_overwrite(p, cfg.force)?;
    }
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
    let n_classes = model.n_classes();
    let Plan {
        jobs,
        any_split,
        part_items,
    } = plan(&m, cfg.select, cfg.outside, n_classes, &shown, cfg.shard)?;
    if let Some(s) = cfg.shard {
        log::info!("shard {s}: {} of the selected items", jobs.len());
    }
    let out_dir = paths::absolute(&cfg.out_dir)?;
    if let Output::File(p) = &out
        && paths::absolute(p)?.starts_with(&out_dir)
    {
        bail!(
            "the output manifest {} must not be inside --out-dir {}",
            p.display(),
            out_dir.display()
        );
    }

    if let Output::File(p) = &out
        && jobs.len() < m.items.len()
        && paths::absolute(p)? == paths::absolute(&cfg.input)?
    {
        bail!(
            "-o {} is the input manifest, and --split {} keeps {} of its {} items: writing it would drop the others; choose another -o",
            p.display(),
            cfg.select,
            jobs.len(),
            m.items.len()
        );
    }
    // The output folder: only a previous unet-eval's files are replaced, nothing else is
    // touched (without --force, anything else makes it refuse before the model runs).
    let mut folder = facepipe_core::out::OutDir::inspect(&out_dir, MARKER, "--out-dir", STAGE, cfg.force, &|_| false)?;
    let planned = jobs
        .iter()
        .flat_map(|j| {
            [
                format!("masks/{}.tif", j.stem),
                format!("colour/{}.png", j.stem),
                format!("overlay/{}.png", j.stem),
            ]
        })
        .chain(report::FILES.iter().map(|f| f.to_string()));

    let size = model.input_size();
    let pre = &model.info.preprocessing;
    let classes = &model.info.classes;
    let mut network_seconds = 0.0;
    let mut network_tiles = 0usize;
    let mut results: Vec<ItemResult> = Vec::with_capacity(jobs.len());
    progress.set_length(jobs.len() as u64);
    // the network is built and its weights loaded before anything is written
    let seconds = with_predictor(&model, cfg.device, |net: &mut dyn Predict| {
        folder.begin(planned)?;
        let t0 = Instant::now();
        let mut start = 0;
        while start < jobs.len() {
            // as many images as fit in one pass of `bs` tiles (at least one)
            let mut end = start;
            let mut n_tiles = 0;
            while end < jobs.len() {
                let k = jobs[end].tiles.len();
                if end > start && n_tiles + k > cfg.bs {
                    break;
                }
                n_tiles += k;
                end += 1;
            }
            let chunk = &jobs[start..end];
            let prepared: Vec<(RgbImage, Vec<f32>)> = chunk
                .par_iter()
                .map(|j| {
                    let img = unet::data::read_image(&j.image).with_context(|| format!("item {:?}", j.id))?;
                    ensure!(
                        img.dimensions() == (j.width, j.height),
                        "image {} changed while being read",
                        j.image.display()
                    );
                    let mut x = Vec::with_capacity(j.tiles.len() * 3 * (size * size) as usize);
                    for &t in &j.tiles {
                        let (tile, _) = unet::data::prepare(&img, None, t, size);
                        x.extend(unet::data::normalize_with(&tile, pre.mean, pre.std));
                    }
                    Ok((img, x))
                })
                .collect::<Result<_>>()?;
            let batch: Vec<f32> = prepared.iter().flat_map(|p| p.1.iter().copied()).collect();
            let tn = Instant::now();
            let probs = net.probabilities(&batch, n_tiles)?;
            network_seconds += tn.elapsed().as_secs_f64();
            network_tiles += n_tiles;
            let plane = n_classes * (size * size) as usize;
            let mut offsets = Vec::with_capacity(chunk.len());
            let mut o = 0;
            for j in chunk {
                offsets.push(o);
                o += j.tiles.len();
            }
            let done: Vec<ItemResult> = chunk
                .par_iter()
                .zip(&prepared)
                .zip(&offsets)
                .map(|((j, (img, _)), &off)| {
                    let tp: Vec<&[f32]> = (0..j.tiles.len())
                        .map(|k| &probs[(off + k) * plane..(off + k + 1) * plane])
                        .collect();
                    finish(j, img, &tp, size, classes, &out_dir).with_context(|| format!("item {:?}", j.id))
                })
                .collect::<Result<_>>()?;
            progress.inc(done.len() as u64);
            results.extend(done);
            start = end;
        }
        Ok(t0.elapsed().as_secs_f64())
    })?;
    progress.finish_and_clear();

    // The manifest: the selected items, each with `pred_mask`.
    let mut items = Vec::with_capacity(results.len());
    for (j, r) in jobs.iter().zip(&results) {
        let mut it = m.items[j.index].clone();
        it.pred_mask = Some(paths::to_manifest_string(&out_dir.join(&r.pred_mask))?);
        it.width.get_or_insert(r.width);
        it.height.get_or_insert(r.height);
        items.push(it);
    }
    let dropped = part_items - items.len();
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

    let throughput = report::Throughput {
        images: results.len(),
        tiles: network_tiles,
        seconds,
        images_per_s: results.len() as f64 / seconds.max(1e-9),
        network_seconds,
        network_tiles_per_s: network_tiles as f64 / network_seconds.max(1e-9),
    };
    let settings = report::Settings {
        split: cfg.select,
        outside: cfg.outside,
        weights: cfg.weights,
        device: cfg.device.to_string(),
        batch_size: cfg.bs,
    };
    let eval = report::write_all(
        &out_dir,
        &model,
        &loaded.input,
        &settings,
        &results,
        throughput,
        &report::Scope {
            contact: cfg.contact,
            any_split,
            shard: cfg.shard,
        },
    )?;

    let mut step = Step::new(STAGE, facepipe_core::VERSION)
        .param("split", cfg.select)
        .param("outside", cfg.outside)
        .param("weights", cfg.weights)
        .param("batch_size", cfg.bs);
    if let Some(s) = cfg.shard {
        step = step.param("shard", s.to_string());
    }
    step.inputs = vec![loaded.input, model.model_json.clone(), model.weights_file.clone()];
    step.count("items", results.len());
    step.count("items_not_selected", dropped);
    step.count("labelled", results.iter().filter(|r| r.full.is_some()).count());
    step.count("tiles", network_tiles);
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
    m.provenance.push(step);
    m.write(&out, cfg.force)?;
    Ok(Outcome { manifest: m, eval })
}

/// Maps one item's tiles back, scores it and writes its files.
fn finish(
    j: &Job,
    img: &RgbImage,
    probs: &[&[f32]],
    size: u32,
    classes: &[Class],
    out_dir: &Path,
) -> Result<ItemResult> {
    let n = classes.len();
    let pred = predict::map_back(probs, &j.tiles, j.width, j.height, size, n);
    let (mut full, mut model, mut loss) = (None, None, 0.0);
    if let Some(mp) = &j.mask {
        let mask = facepipe_core::mask::read(mp, n)?;
        let mut c = Confusion::new(n);
        c.add(&pred, mask.as_raw());
        full = Some(c);
        // model resolution: the centre crop as validation prepares it (mask by nearest)
        let (_, small) = unet::data::prepare(img, Some(&mask), j.tiles[j.centre], size);
        let small = small.expect("mask given");
        let p = probs[j.centre];
        let px = (size * size) as usize;
        let mut c = Confusion::new(n);
        c.add(&predict::argmax_planes(p, n, size as usize), small.as_raw());
        for (i, &t) in small.as_raw().iter().enumerate() {
            if t != IGNORE {
                loss -= f64::from(p[usize::from(t) * px + i].max(f32::MIN_POSITIVE)).ln();
            }
        }
        model = Some(c);
    }
    let pred_mask = format!("masks/{}.tif", j.stem);
    let colour = format!("colour/{}.png", j.stem);
    let overlay = format!("overlay/{}.png", j.stem);
    for f in [&colour, &overlay] {
        if let Some(d) = out_dir.join(f).parent() {
            io::create_dir_all(d)?;
        }
    }
    let mask_img = GrayImage::from_raw(j.width, j.height, pred).expect("sized");
    facepipe_core::mask::write(
        &out_dir.join(&pred_mask),
        j.width,
        j.height,
        mask_img.as_raw(),
        None,
        facepipe_core::mask::Compression::Packbits,
    )?;
    facepipe_plot::save_png(&out_dir.join(&colour), &report::colourise(&mask_img, classes))?;
    facepipe_plot::save_png(&out_dir.join(&overlay), &report::overlay(img, &mask_img, classes))?;
    Ok(ItemResult {
        id: j.id.clone(),
        split: j.split,
        image: j.image.clone(),
        mask: j.mask.clone(),
        width: j.width,
        height: j.height,
        tiles: j.tiles.len(),
        pred_mask,
        colour,
        overlay,
        full,
        model,
        model_loss_sum: loss,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stems_are_safe_relative_names() {
        assert_eq!(stem_for("samples/g000/face_00000"), "samples/g000/face_00000");
        assert_eq!(stem_for("../x/./a:b"), "_/x/_/a_b");
        assert_eq!(stem_for("/abs\\win"), "abs/win");
    }

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
