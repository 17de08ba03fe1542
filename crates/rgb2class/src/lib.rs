//! `rgb2class`: RGB colour-coded label images → single-channel class-index masks.
//!
//! For every item with a `label_rgb`, writes an 8-bit single-channel TIFF of class indices
//! (255 = ignore) under `--out-dir`, mirroring the label's path below the dataset root, and
//! adds `mask`, `width`, `height` and `off_palette` to the item.
//!
//! Each mask carries a TIFF `ImageDescription` with the palette fingerprint, the off-palette
//! mode and the off-palette count. A rerun skips a mask that is newer than its label and was
//! made with the same palette and mode (masks are written atomically, so an existing one is
//! complete): a killed run resumes where it stopped, and `--force` redoes everything.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use facepipe_core::io::InputFile;
use facepipe_core::palette::{self, Class};
use facepipe_core::shard::Shard;
use facepipe_core::{Manifest, Step, io, paths};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

mod job;
pub mod labels;
pub mod mapper;

use job::{Done, Job};
pub use job::{MaskInfo, read_mask_from};
pub use labels::*;
pub use mapper::*;

pub const STAGE: &str = "rgb2class";

/// A label with more than this share of its pixels off the palette gets a warning: anti-aliased
/// borders stay well below it, a JPEG or a resized label does not.
pub const LOSSY_SHARE: f64 = 0.05;

/// What to do with label pixels whose colour is not exactly a palette colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum OffPalette {
    /// Snap to the nearest palette colour (Euclidean RGB distance; ties to the lower index).
    Nearest,
    /// Write 255: excluded from training and metrics.
    Ignore,
    /// Stop with an error naming the file, pixel and colour.
    Error,
}

/// TIFF compression of the masks (the one writer of every stage's masks is
/// [`facepipe_core::mask`]).
pub use facepipe_core::mask::Compression as MaskCompression;

/// What to convert, where to, and how.
#[derive(Clone, Debug)]
pub struct Config {
    pub input: PathBuf,
    pub out_dir: PathBuf,
    pub palette: Option<PathBuf>,
    pub off_palette: OffPalette,
    pub compression: MaskCompression,
    pub force: bool,
    /// Convert only this part of the items (`--shard K/N`); the others are left out of the
    /// manifest written.
    pub shard: Option<facepipe_core::shard::Shard>,
}

/// The palette the masks are made with, and where it came from (`file`, `manifest` or
/// `mut1ny`, for the provenance); a palette file joins the step's `inputs`.
fn choose_palette(cfg: &Config, m: &Manifest, inputs: &mut Vec<InputFile>) -> Result<(Vec<Class>, &'static str)> {
    Ok(match &cfg.palette {
        Some(p) => {
            let classes = palette::load(p)?;
            inputs.push(io::read_input(p)?.1);
            (classes, "file")
        }
        None if !m.classes.is_empty() => (m.classes.clone(), "manifest"),
        None => (palette::mut1ny(), "mut1ny"),
    })
}

/// Where masks go: each label's path mirrored below the dataset root (or below the labels'
/// common folder when the manifest names no root that holds them all) into the output folder.
struct MaskPlace {
    root: PathBuf,
    out_dir: PathBuf,
}

impl MaskPlace {
    /// Found from every label of the whole manifest, so that each shard puts a mask where the
    /// unsharded run would. Refuses a manifest with no label to convert (`shown` names it).
    fn new(m: &Manifest, out_dir: &Path, shown: &str) -> Result<Self> {
        let labels: Vec<PathBuf> = labels_in(m).into_iter().map(|(_, l)| l).collect();
        if labels.is_empty() {
            bail!("no item in {shown} has a `label_rgb` to convert");
        }
        let root = m
            .root
            .as_ref()
            .map(PathBuf::from)
            .filter(|r| labels.iter().all(|l| l.starts_with(r)))
            .or_else(|| paths::common_dir(labels.iter().map(PathBuf::as_path)))
            .context("labels have no common folder")?;
        let out_dir = paths::absolute(out_dir)?;
        Ok(MaskPlace { root, out_dir })
    }

    /// The mask of a label.
    fn mask_of(&self, label: &Path) -> PathBuf {
        self.out_dir
            .join(label.strip_prefix(&self.root).unwrap_or(label))
            .with_extension("tif")
    }
}

/// The items with a `label_rgb`: their index in the manifest and their label.
fn labels_in(m: &Manifest) -> Vec<(usize, PathBuf)> {
    m.items
        .iter()
        .enumerate()
        .filter_map(|(i, it)| Some((i, PathBuf::from(it.label_rgb.as_ref()?))))
        .collect()
}

/// The items that get a mask, in manifest order: index, label and mask of each.
struct Targets {
    labelled: Vec<usize>,
    labels: Vec<PathBuf>,
    masks: Vec<PathBuf>,
}

impl Targets {
    fn of(m: &Manifest, place: &MaskPlace) -> Self {
        let (labelled, labels): (Vec<usize>, Vec<PathBuf>) = labels_in(m).into_iter().unzip();
        let masks = labels.iter().map(|l| place.mask_of(l)).collect();
        Targets {
            labelled,
            labels,
            masks,
        }
    }

    /// Refuses two labels that would share a mask, and a mask that would overwrite an input.
    fn check(&self, m: &Manifest) -> Result<()> {
        let mut owner: HashMap<&Path, usize> = HashMap::new();
        for (k, mask) in self.masks.iter().enumerate() {
            if let Some(prev) = owner.insert(mask, k) {
                bail!(
                    "labels {} and {} would both be written to {}",
                    self.labels[prev].display(),
                    self.labels[k].display(),
                    mask.display()
                );
            }
            let it = &m.items[self.labelled[k]];
            if [&it.label_rgb, &it.image]
                .iter()
                .any(|p| p.as_deref().map(Path::new) == Some(mask.as_path()))
            {
                bail!(
                    "mask {} would overwrite an input; choose another --out-dir",
                    mask.display()
                );
            }
        }
        Ok(())
    }
}

/// Keeps only the shard's part of the items.
fn keep_shard(m: &mut Manifest, shard: Shard) {
    let mut items = std::mem::take(&mut m.items);
    let keep = shard.select(&items.iter().map(|it| it.id.as_str()).collect::<Vec<_>>());
    m.items = keep.iter().map(|&i| std::mem::take(&mut items[i])).collect();
    log::info!("shard {shard}: {} of {} items", m.items.len(), items.len());
}

/// Creates the output folder and sweeps what a killed run left half-written there.
fn prepare_out_dir(cfg: &Config, place: &MaskPlace, targets: &Targets) -> Result<()> {
    io::create_dir_all(&place.out_dir)?;
    match cfg.shard {
        // main holds the folder's lock: what a killed run left half-written can go
        None => facepipe_core::out::sweep_temps_under(&place.out_dir),
        // other shards write into the folder now: only this shard's masks' leftovers go
        Some(_) => targets.masks.iter().for_each(|p| facepipe_core::out::sweep_temps(p)),
    }
    Ok(())
}

/// Converts every target in parallel (or reuses its mask), in the targets' order.
fn convert_all(
    cfg: &Config,
    m: &Manifest,
    targets: &Targets,
    classes: &[Class],
    progress: &indicatif::ProgressBar,
) -> Result<Vec<Done>> {
    let mapper = Mapper::new(classes, cfg.off_palette);
    let info = MaskInfo::new(palette::fingerprint(classes), cfg.off_palette);
    let n_counts = classes.len() + 1;
    progress.set_length(targets.labelled.len() as u64);
    let results = targets
        .labelled
        .par_iter()
        .enumerate()
        .map(|(k, &i)| {
            let it = &m.items[i];
            let job = Job {
                label: targets.labels[k].clone(),
                image: it.image.as_ref().map(PathBuf::from),
                mask: targets.masks[k].clone(),
                mapper: &mapper,
                info: info.clone(),
                compression: cfg.compression,
                force: cfg.force,
            };
            let r = job.run(n_counts).with_context(|| format!("item {:?}", it.id));
            progress.inc(1);
            r
        })
        .collect::<Result<_>>()?;
    progress.finish_and_clear();
    Ok(results)
}

/// What all the masks add up to.
struct Totals {
    /// Pixels per class, then the ignored ones.
    counts: Vec<u64>,
    off_palette: u64,
    reused: usize,
    pixels: u64,
}

/// Writes each mask's path, size and off-palette count into its item and the per-class pixel
/// counts into the classes; returns the totals.
fn record(m: &mut Manifest, targets: &Targets, results: &[Done], classes: Vec<Class>) -> Result<Totals> {
    let mut t = Totals {
        counts: vec![0u64; classes.len() + 1],
        off_palette: 0,
        reused: 0,
        pixels: 0,
    };
    for ((k, &i), d) in targets.labelled.iter().enumerate().zip(results) {
        let it = &mut m.items[i];
        it.mask = Some(paths::to_manifest_string(&targets.masks[k])?);
        it.width = Some(d.width);
        it.height = Some(d.height);
        it.off_palette = Some(d.off_palette);
        t.off_palette += d.off_palette;
        t.reused += usize::from(d.reused);
        t.pixels += u64::from(d.width) * u64::from(d.height);
        t.counts.iter_mut().zip(&d.counts).for_each(|(t, c)| *t += c);
    }
    m.classes = classes
        .into_iter()
        .enumerate()
        .map(|(c, mut cl)| {
            cl.pixels = Some(t.counts[c]);
            cl
        })
        .collect();
    Ok(t)
}

/// This stage's provenance step.
fn step(cfg: &Config, source: &str, inputs: Vec<InputFile>, m: &Manifest, masks: usize, t: &Totals) -> Step {
    let mut step = Step::new(STAGE, facepipe_core::VERSION)
        .param("palette", source)
        .param("off_palette", cfg.off_palette)
        .param("compression", cfg.compression);
    if let Some(shard) = cfg.shard {
        step = step.param("shard", shard.to_string());
    }
    step.inputs = inputs;
    step.count("masks", masks);
    step.count("unlabelled_items", m.items.len() - masks);
    step.count("pixels", t.pixels);
    step.count("off_palette_pixels", t.off_palette);
    step.count("ignored_pixels", t.counts[t.counts.len() - 1]);
    step.count(facepipe_core::manifest::ITEMS_WRITTEN, m.items.len());
    step
}

/// Logs what was reused and the off-palette pixels, warning about labels with so many that
/// they look lossy (a JPEG, or resized).
fn log_outcome(cfg: &Config, m: &Manifest, targets: &Targets, results: &[Done], t: &Totals) {
    // what was reused goes to the log, not the manifest: a resumed run's manifest is the
    // same as an uninterrupted one's
    if t.reused > 0 {
        log::info!("{} of {} masks were up to date and reused", t.reused, results.len());
    }
    let lossy: Vec<(usize, f64)> = targets
        .labelled
        .iter()
        .zip(results)
        .map(|(&i, d)| {
            (
                i,
                d.off_palette as f64 / (f64::from(d.width) * f64::from(d.height)).max(1.0),
            )
        })
        .filter(|&(_, share)| share > LOSSY_SHARE)
        .collect();
    for &(i, share) in lossy.iter().take(5) {
        log::warn!(
            "label {}: {:.0} % of its pixels are off the palette ({:?}); is it a JPEG, or resized? Lossy labels give wrong classes",
            m.items[i].label_rgb.as_deref().unwrap_or("?"),
            share * 100.0,
            cfg.off_palette
        );
    }
    if lossy.len() > 5 {
        log::warn!(
            "{} labels in all have more than {:.0} % of their pixels off the palette",
            lossy.len(),
            LOSSY_SHARE * 100.0
        );
    }
    if t.off_palette > 0 {
        log::info!(
            "{} of {} label pixels were off the palette ({:?})",
            t.off_palette,
            t.pixels,
            cfg.off_palette
        );
    }
}

/// Converts every labelled item; returns the output manifest (masks are written, the manifest
/// is not).
pub fn run(cfg: &Config, progress: &indicatif::ProgressBar) -> Result<Manifest> {
    let loaded = Manifest::read(&cfg.input)?;
    let mut m = loaded.manifest;
    let mut inputs = vec![loaded.input];
    let (classes, source) = choose_palette(cfg, &m, &mut inputs)?;
    let shown = cfg.input.display().to_string();
    if m.items.is_empty() {
        bail!("manifest {shown} has no items");
    }
    let place = MaskPlace::new(&m, &cfg.out_dir, &shown)?;
    let mut targets = Targets::of(&m, &place);
    targets.check(&m)?;
    // the checks above are over every item; a shard converts its part
    if let Some(shard) = cfg.shard {
        keep_shard(&mut m, shard);
        targets = Targets::of(&m, &place);
    }
    prepare_out_dir(cfg, &place, &targets)?;
    let results = convert_all(cfg, &m, &targets, &classes, progress)?;
    let totals = record(&mut m, &targets, &results, classes)?;
    let step = step(cfg, source, inputs, &m, results.len(), &totals);
    m.provenance.push(step);
    log_outcome(cfg, &m, &targets, &results, &totals);
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_exact_nearest_ignore_and_error() {
        let classes = palette::mut1ny();
        let px = [0u8, 0, 0, 128, 128, 128, 250, 5, 5, 128, 128, 128, 130, 126, 127];
        let mut out = [0u8; 5];
        let mut counts = vec![0u64; 13];
        let off = Mapper::new(&classes, OffPalette::Nearest)
            .map(&px, 5, 0, &mut out, &mut counts)
            .unwrap();
        assert_eq!(out, [0, 8, 1, 8, 8]);
        assert_eq!(off, 2);
        assert_eq!(counts[8], 3);

        let mut counts = vec![0u64; 13];
        let off = Mapper::new(&classes, OffPalette::Ignore)
            .map(&px, 5, 0, &mut out, &mut counts)
            .unwrap();
        assert_eq!(out, [0, 8, 255, 8, 255]);
        assert_eq!((off, counts[12]), (2, 2));

        let e = Mapper::new(&classes, OffPalette::Error)
            .map(&px, 2, 0, &mut out, &mut counts)
            .unwrap_err();
        assert_eq!(
            e,
            OffPalettePixel {
                x: 0,
                y: 1,
                rgb: [250, 5, 5]
            }
        );
    }

    #[test]
    fn map_reports_positions_relative_to_the_image() {
        let classes = palette::mut1ny();
        let mut out = [0u8; 2];
        let mut counts = vec![0u64; 13];
        let e = Mapper::new(&classes, OffPalette::Error)
            .map(&[0, 0, 0, 9, 9, 9], 4, 6, &mut out, &mut counts)
            .unwrap_err();
        assert_eq!((e.x, e.y), (3, 1));
    }

    #[test]
    fn nearest_breaks_ties_to_the_lower_index() {
        let classes = vec![Class::new(0, "a", [0, 0, 0]), Class::new(1, "b", [10, 0, 0])];
        let m = Mapper::new(&classes, OffPalette::Nearest);
        assert_eq!(m.nearest([5, 0, 0]), 0);
        assert_eq!(m.nearest([6, 0, 0]), 1);
    }
}
