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
use std::fs;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, Result, bail};
use facepipe_core::palette::{self, IGNORE};
use facepipe_core::{Manifest, Step, io, paths};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

pub mod labels;
pub mod mapper;

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

/// What the mask's TIFF ImageDescription records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MaskInfo {
    facepipe: String,
    palette: String,
    mode: OffPalette,
    off_palette: u64,
}

fn write_mask(path: &Path, w: u32, h: u32, data: &[u8], info: &MaskInfo, compression: MaskCompression) -> Result<()> {
    let desc = serde_json::to_string(info)?;
    facepipe_core::mask::write(path, w, h, data, Some(&desc), compression)
}

/// Reads a mask written by this stage: its description (None if it is not ours) and pixels.
fn read_mask(path: &Path) -> Result<(Option<MaskInfo>, u32, u32, Vec<u8>)> {
    let f = fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    read_mask_from(BufReader::new(f), path)
}

/// Reads one of rgb2class's masks (an 8-bit single-channel TIFF and its description tag) from
/// any reader; `path` names it in errors. What the fuzz targets drive with broken TIFFs.
pub fn read_mask_from<R: std::io::Read + std::io::Seek>(
    r: R,
    path: &Path,
) -> Result<(Option<MaskInfo>, u32, u32, Vec<u8>)> {
    let (desc, w, h, data) = facepipe_core::mask::read_tiff_from(r, path)?;
    let info = desc
        .and_then(|s| serde_json::from_str::<MaskInfo>(&s).ok())
        .filter(|i| i.facepipe == STAGE);
    Ok((info, w, h, data))
}

fn mtime(p: &Path) -> Option<SystemTime> {
    fs::metadata(p).and_then(|m| m.modified()).ok()
}

/// Result of one item.
#[derive(Debug, Clone)]
struct Done {
    width: u32,
    height: u32,
    off_palette: u64,
    counts: Vec<u64>,
    reused: bool,
}

struct Job<'a> {
    label: PathBuf,
    image: Option<PathBuf>,
    mask: PathBuf,
    mapper: &'a Mapper,
    info: MaskInfo,
    compression: MaskCompression,
    force: bool,
}

impl Job<'_> {
    fn image_size(&self) -> Result<Option<(u32, u32)>> {
        let Some(img) = &self.image else { return Ok(None) };
        let size = facepipe_core::images::reader(img, "image")?
            .into_dimensions()
            .with_context(|| format!("cannot read the size of image {}", img.display()))?;
        Ok(Some(size))
    }

    fn check_size(&self, image: Option<(u32, u32)>, w: u32, h: u32) -> Result<()> {
        if let (Some((iw, ih)), Some(img)) = (image, &self.image)
            && (iw, ih) != (w, h)
        {
            bail!(
                "label {} is {w}×{h} but its image {} is {iw}×{ih}",
                self.label.display(),
                img.display()
            );
        }
        Ok(())
    }

    /// Reuses an up-to-date mask made with the same palette and mode.
    fn reuse(&self, image: Option<(u32, u32)>, n_counts: usize) -> Result<Option<Done>> {
        if self.force {
            return Ok(None);
        }
        let (Some(m), Some(l)) = (mtime(&self.mask), mtime(&self.label)) else {
            return Ok(None);
        };
        let (info, w, h, data) = match read_mask(&self.mask) {
            Ok(x) => x,
            Err(_) => return self.foreign(),
        };
        let Some(info) = info else { return self.foreign() };
        if m < l || info.palette != self.info.palette || info.mode != self.info.mode {
            return Ok(None);
        }
        if image.is_some_and(|s| s != (w, h)) {
            return Ok(None);
        }
        let mut counts = vec![0u64; n_counts];
        let n = n_counts - 1;
        for &v in &data {
            let i = usize::from(v);
            counts[if v == IGNORE || i >= n { n } else { i }] += 1;
        }
        Ok(Some(Done {
            width: w,
            height: h,
            off_palette: info.off_palette,
            counts,
            reused: true,
        }))
    }

    fn foreign(&self) -> Result<Option<Done>> {
        bail!(
            "{} exists and was not written by rgb2class; refusing to overwrite it (use --force)",
            self.mask.display()
        )
    }

    fn run(&self, n_counts: usize) -> Result<Done> {
        let image = self.image_size()?;
        if let Some(done) = self.reuse(image, n_counts)? {
            return Ok(done);
        }
        if self.mask.exists() && !self.force && read_mask(&self.mask).ok().and_then(|m| m.0).is_none() {
            self.foreign()?;
        }
        // One output buffer per worker thread, reused: a fresh zeroed allocation per mask
        // costs as much as the mapping.
        thread_local!(static OUT: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) });
        OUT.with_borrow_mut(|out| {
            let mut counts = vec![0u64; n_counts];
            let mut off = 0u64;
            let streamed = stream_rgb8_png(&self.label, |y, h, row| {
                let w = row.len() / 3;
                if y == 0 {
                    // Same size as the last mask: no reallocation and no zeroing.
                    out.resize(w * h as usize, 0);
                }
                let first = y as usize * w;
                off += self
                    .mapper
                    .map(row, w as u32, first, &mut out[first..first + w], &mut counts)
                    .map_err(|p| self.off_error(p))?;
                Ok(())
            })?;
            let (w, h) = match streamed {
                Some(size) => size,
                None => {
                    let (w, h, rgb) = decode_label(&self.label, self.mapper.all_gray)?;
                    out.resize(rgb.len() / 3, 0);
                    off = self
                        .mapper
                        .map(&rgb, w, 0, out, &mut counts)
                        .map_err(|p| self.off_error(p))?;
                    (w, h)
                }
            };
            self.check_size(image, w, h)?;
            self.write(out, w, h, off, counts)
        })
    }

    fn off_error(&self, p: OffPalettePixel) -> anyhow::Error {
        anyhow::anyhow!(
            "label {}: pixel ({}, {}) has colour {:?}, which is not in the palette (--off-palette error)",
            self.label.display(),
            p.x,
            p.y,
            p.rgb
        )
    }

    fn write(&self, out: &[u8], w: u32, h: u32, off: u64, counts: Vec<u64>) -> Result<Done> {
        if let Some(d) = self.mask.parent() {
            io::create_dir_all(d)?;
        }
        let info = MaskInfo {
            off_palette: off,
            ..self.info.clone()
        };
        write_mask(&self.mask, w, h, out, &info, self.compression)?;
        Ok(Done {
            width: w,
            height: h,
            off_palette: off,
            counts,
            reused: false,
        })
    }
}

/// Converts every labelled item; returns the output manifest (masks are written, the manifest
/// is not).
pub fn run(cfg: &Config, progress: &indicatif::ProgressBar) -> Result<Manifest> {
    let loaded = Manifest::read(&cfg.input)?;
    let mut m = loaded.manifest;
    let mut inputs = vec![loaded.input];
    let (classes, source) = match &cfg.palette {
        Some(p) => {
            let classes = palette::load(p)?;
            inputs.push(io::read_input(p)?.1);
            (classes, "file")
        }
        None if !m.classes.is_empty() => (m.classes.clone(), "manifest"),
        None => (palette::mut1ny(), "mut1ny"),
    };
    let shown = cfg.input.display();
    if m.items.is_empty() {
        bail!("manifest {shown} has no items");
    }
    let labelled_in =
        |m: &Manifest| -> Vec<usize> { (0..m.items.len()).filter(|&i| m.items[i].label_rgb.is_some()).collect() };
    let labels_of = |m: &Manifest, labelled: &[usize]| -> Vec<PathBuf> {
        labelled
            .iter()
            .map(|&i| PathBuf::from(m.items[i].label_rgb.as_ref().unwrap()))
            .collect()
    };
    let mut labelled = labelled_in(&m);
    if labelled.is_empty() {
        bail!("no item in {shown} has a `label_rgb` to convert");
    }

    // Where masks go: mirror each label's path below the dataset root (or below the labels'
    // common folder when the manifest names no root that holds them all). Found from every
    // label, so that each shard puts a mask where the unsharded run would.
    let mut labels = labels_of(&m, &labelled);
    let root = m
        .root
        .as_ref()
        .map(PathBuf::from)
        .filter(|r| labels.iter().all(|l| l.starts_with(r)))
        .or_else(|| paths::common_dir(labels.iter().map(PathBuf::as_path)))
        .context("labels have no common folder")?;
    let out_dir = paths::absolute(&cfg.out_dir)?;
    let masks_of = |labels: &[PathBuf]| -> Vec<PathBuf> {
        labels
            .iter()
            .map(|l| out_dir.join(l.strip_prefix(&root).unwrap_or(l)).with_extension("tif"))
            .collect()
    };
    let mut masks = masks_of(&labels);
    let mut owner: HashMap<&Path, usize> = HashMap::new();
    for (k, mask) in masks.iter().enumerate() {
        if let Some(prev) = owner.insert(mask, k) {
            bail!(
                "labels {} and {} would both be written to {}",
                labels[prev].display(),
                labels[k].display(),
                mask.display()
            );
        }
        let it = &m.items[labelled[k]];
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
    // the checks above are over every item; a shard converts its part
    if let Some(shard) = cfg.shard {
        let mut items = std::mem::take(&mut m.items);
        let keep = shard.select(&items.iter().map(|it| it.id.as_str()).collect::<Vec<_>>());
        m.items = keep.iter().map(|&i| std::mem::take(&mut items[i])).collect();
        labelled = labelled_in(&m);
        labels = labels_of(&m, &labelled);
        masks = masks_of(&labels);
        log::info!("shard {shard}: {} of {} items", m.items.len(), items.len());
    }
    io::create_dir_all(&out_dir)?;
    match cfg.shard {
        // main holds the folder's lock: what a killed run left half-written can go
        None => facepipe_core::out::sweep_temps_under(&out_dir),
        // other shards write into the folder now: only this shard's masks' leftovers go
        Some(_) => masks.iter().for_each(|p| facepipe_core::out::sweep_temps(p)),
    }

    let mapper = Mapper::new(&classes, cfg.off_palette);
    let info = MaskInfo {
        facepipe: STAGE.into(),
        palette: palette::fingerprint(&classes),
        mode: cfg.off_palette,
        off_palette: 0,
    };
    let n_counts = classes.len() + 1;
    progress.set_length(labelled.len() as u64);
    let results: Vec<Done> = labelled
        .par_iter()
        .enumerate()
        .map(|(k, &i)| {
            let it = &m.items[i];
            let job = Job {
                label: labels[k].clone(),
                image: it.image.as_ref().map(PathBuf::from),
                mask: masks[k].clone(),
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

    let mut totals = vec![0u64; n_counts];
    let (mut off_total, mut reused, mut pixels) = (0u64, 0usize, 0u64);
    for ((k, &i), d) in labelled.iter().enumerate().zip(&results) {
        let it = &mut m.items[i];
        it.mask = Some(paths::to_manifest_string(&masks[k])?);
        it.width = Some(d.width);
        it.height = Some(d.height);
        it.off_palette = Some(d.off_palette);
        off_total += d.off_palette;
        reused += usize::from(d.reused);
        pixels += u64::from(d.width) * u64::from(d.height);
        totals.iter_mut().zip(&d.counts).for_each(|(t, c)| *t += c);
    }
    m.classes = classes
        .into_iter()
        .enumerate()
        .map(|(c, mut cl)| {
            cl.pixels = Some(totals[c]);
            cl
        })
        .collect();

    let mut step = Step::new(STAGE, facepipe_core::VERSION)
        .param("palette", source)
        .param("off_palette", cfg.off_palette)
        .param("compression", cfg.compression);
    if let Some(shard) = cfg.shard {
        step = step.param("shard", shard.to_string());
    }
    step.inputs = inputs;
    step.count("masks", results.len());
    step.count("unlabelled_items", m.items.len() - labelled.len());
    step.count("pixels", pixels);
    step.count("off_palette_pixels", off_total);
    step.count("ignored_pixels", totals[n_counts - 1]);
    m.provenance.push(step);
    // what was reused goes to the log, not the manifest: a resumed run's manifest is the
    // same as an uninterrupted one's
    if reused > 0 {
        log::info!("{reused} of {} masks were up to date and reused", results.len());
    }
    let lossy: Vec<(usize, f64)> = labelled
        .iter()
        .zip(&results)
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
    if off_total > 0 {
        log::info!(
            "{off_total} of {pixels} label pixels were off the palette ({:?})",
            cfg.off_palette
        );
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use facepipe_core::palette::Class;

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

    #[test]
    fn mask_round_trip_keeps_description() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("m.tif");
        let info = MaskInfo {
            facepipe: STAGE.into(),
            palette: "abc".into(),
            mode: OffPalette::Nearest,
            off_palette: 7,
        };
        for c in [
            MaskCompression::None,
            MaskCompression::Packbits,
            MaskCompression::Lzw,
            MaskCompression::Deflate,
        ] {
            write_mask(&p, 3, 2, &[0, 1, 2, 3, 4, 255], &info, c).unwrap();
            let (i, w, h, data) = read_mask(&p).unwrap();
            assert_eq!((i.unwrap(), w, h, data), (info.clone(), 3, 2, vec![0, 1, 2, 3, 4, 255]));
        }
    }
}
