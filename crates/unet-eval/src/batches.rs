//! The network pass: the planned items a batch of tiles at a time, and what each item gives
//! (its prediction mapped back to full resolution, its scores, its files).

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, ensure};
use facepipe_core::io;
use facepipe_core::metrics::Confusion;
use facepipe_core::out::OutDir;
use facepipe_core::palette::{Class, IGNORE};
use image::{GrayImage, RgbImage};
use rayon::prelude::*;
use unet::device::DeviceSpec;
use unet::inference::{Model, Predict, with_predictor};

use crate::plan::Job;
use crate::{ItemResult, predict, report};

/// What a pass needs besides the items.
pub(crate) struct Pass<'a> {
    pub model: &'a Model,
    pub device: DeviceSpec,
    /// Tiles per forward pass.
    pub bs: usize,
    /// The output folder, absolute.
    pub out_dir: &'a Path,
}

/// Time spent in the network, and the tiles it saw.
#[derive(Default)]
struct NetworkTime {
    seconds: f64,
    tiles: usize,
}

/// Builds the network (its weights loaded before anything is written), takes the output
/// folder for the run, and predicts, scores and writes every job in order.
pub(crate) fn predict_all(
    pass: &Pass,
    jobs: &[Job],
    mut folder: OutDir,
    progress: &indicatif::ProgressBar,
) -> Result<(Vec<ItemResult>, report::Throughput)> {
    let planned = jobs
        .iter()
        .flat_map(Job::outputs)
        .chain(report::FILES.iter().map(|f| f.to_string()));
    let mut network = NetworkTime::default();
    let mut results: Vec<ItemResult> = Vec::with_capacity(jobs.len());
    progress.set_length(jobs.len() as u64);
    let seconds = with_predictor(pass.model, pass.device, |net: &mut dyn Predict| {
        folder.begin(planned)?;
        let t0 = Instant::now();
        let mut start = 0;
        while start < jobs.len() {
            let end = chunk_end(jobs, start, pass.bs);
            let done = pass.run_chunk(net, &jobs[start..end], &mut network)?;
            progress.inc(done.len() as u64);
            results.extend(done);
            start = end;
        }
        Ok(t0.elapsed().as_secs_f64())
    })?;
    let throughput = report::Throughput {
        images: results.len(),
        tiles: network.tiles,
        seconds,
        images_per_s: results.len() as f64 / seconds.max(1e-9),
        network_seconds: network.seconds,
        network_tiles_per_s: network.tiles as f64 / network.seconds.max(1e-9),
    };
    Ok((results, throughput))
}

/// Where the chunk starting at `start` ends: as many images as fit in one pass of `bs`
/// tiles (at least one).
fn chunk_end(jobs: &[Job], start: usize, bs: usize) -> usize {
    let mut end = start;
    let mut n_tiles = 0;
    while end < jobs.len() {
        let k = jobs[end].tiles.len();
        if end > start && n_tiles + k > bs {
            break;
        }
        n_tiles += k;
        end += 1;
    }
    end
}

impl Pass<'_> {
    /// One forward pass over the chunk's tiles; each item's result.
    fn run_chunk(&self, net: &mut dyn Predict, chunk: &[Job], network: &mut NetworkTime) -> Result<Vec<ItemResult>> {
        let size = self.model.input_size();
        let n_tiles: usize = chunk.iter().map(|j| j.tiles.len()).sum();
        let prepared: Vec<(RgbImage, Vec<f32>)> = chunk.par_iter().map(|j| self.prepare(j)).collect::<Result<_>>()?;
        let batch: Vec<f32> = prepared.iter().flat_map(|p| p.1.iter().copied()).collect();
        let tn = Instant::now();
        let probs = net.probabilities(&batch, n_tiles)?;
        network.seconds += tn.elapsed().as_secs_f64();
        network.tiles += n_tiles;
        let plane = self.model.n_classes() * (size * size) as usize;
        let mut offsets = Vec::with_capacity(chunk.len());
        let mut o = 0;
        for j in chunk {
            offsets.push(o);
            o += j.tiles.len();
        }
        chunk
            .par_iter()
            .zip(&prepared)
            .zip(&offsets)
            .map(|((j, (img, _)), &off)| {
                let tp: Vec<&[f32]> = (0..j.tiles.len())
                    .map(|k| &probs[(off + k) * plane..(off + k + 1) * plane])
                    .collect();
                self.finish(j, img, &tp).with_context(|| format!("item {:?}", j.id))
            })
            .collect()
    }

    /// An item's photo, and its tiles as the network's input (normalised, one after another).
    fn prepare(&self, j: &Job) -> Result<(RgbImage, Vec<f32>)> {
        let size = self.model.input_size();
        let pre = &self.model.info.preprocessing;
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
    }

    /// A labelled item's scores (`None` unlabelled): the full-resolution prediction `pred`
    /// against its mask, and the centre tile's probabilities against the mask's centre crop
    /// as validation prepares it (resized by nearest), with their cross-entropy.
    fn score(&self, j: &Job, img: &RgbImage, pred: &[u8], probs: &[&[f32]]) -> Result<Option<ItemScores>> {
        let Some(mask_path) = &j.mask else {
            return Ok(None);
        };
        let (n, size) = (self.model.info.classes.len(), self.model.input_size());
        let mask = facepipe_core::mask::read(mask_path, n)?;
        let mut full = Confusion::new(n);
        full.add(pred, mask.as_raw());
        let (_, small) = unet::data::prepare(img, Some(&mask), j.tiles[j.centre], size);
        let small = small.expect("mask given");
        let p = probs[j.centre];
        let px = (size * size) as usize;
        let mut model = Confusion::new(n);
        model.add(&predict::argmax_planes(p, n, size as usize), small.as_raw());
        let mut loss = 0.0;
        for (i, &t) in small.as_raw().iter().enumerate() {
            if t != IGNORE {
                loss -= f64::from(p[usize::from(t) * px + i].max(f32::MIN_POSITIVE)).ln();
            }
        }
        Ok(Some(ItemScores { full, model, loss }))
    }

    /// Maps one item's tiles back, scores it and writes its files.
    fn finish(&self, j: &Job, img: &RgbImage, probs: &[&[f32]]) -> Result<ItemResult> {
        let classes = &self.model.info.classes;
        let size = self.model.input_size();
        let pred = predict::map_back(probs, &j.tiles, j.width, j.height, size, classes.len());
        let scores = self.score(j, img, &pred, probs)?;
        let [pred_mask, colour, overlay] = j.outputs();
        let mask_img = GrayImage::from_raw(j.width, j.height, pred).expect("sized");
        write_item(self.out_dir, [&pred_mask, &colour, &overlay], &mask_img, img, classes)?;
        let (full, model, model_loss_sum) = match scores {
            Some(s) => (Some(s.full), Some(s.model), s.loss),
            None => (None, None, 0.0),
        };
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
            model_loss_sum,
        })
    }
}

/// A labelled item's scores.
struct ItemScores {
    full: Confusion,
    model: Confusion,
    /// Cross-entropy summed over the model-resolution labelled pixels.
    loss: f64,
}

/// Writes an item's predicted mask (TIFF), the mask in colour and the overlay (PNGs), at
/// `files` (relative to `out_dir`, in that order).
fn write_item(out_dir: &Path, files: [&str; 3], mask: &GrayImage, photo: &RgbImage, classes: &[Class]) -> Result<()> {
    let [pred_mask, colour, overlay] = files;
    for f in [colour, overlay] {
        if let Some(d) = out_dir.join(f).parent() {
            io::create_dir_all(d)?;
        }
    }
    facepipe_core::mask::write(
        &out_dir.join(pred_mask),
        mask.width(),
        mask.height(),
        mask.as_raw(),
        None,
        facepipe_core::mask::Compression::Packbits,
    )?;
    facepipe_plot::save_png(&out_dir.join(colour), &report::colourise(mask, classes))?;
    facepipe_plot::save_png(&out_dir.join(overlay), &report::overlay(photo, mask, classes))
}
