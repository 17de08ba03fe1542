//! Batches from a split manifest, prepared in parallel.
//!
//! Every random choice comes from a stream derived from (seed, epoch, item), so a batch is the
//! same whatever the number of threads and whatever order the workers finish in. Train batches
//! are shuffled per epoch and the last partial batch is dropped (as fastai does); valid
//! batches keep the manifest's order and every item. A background thread prepares the next
//! batch while the current one trains.

use std::path::{Path, PathBuf};
use std::sync::mpsc;

use anyhow::{Context, Result, bail};
use facepipe_core::rng::SplitMix64;
use facepipe_core::{Manifest, Split};
use rayon::prelude::*;

use facepipe_core::mask::read as read_mask;

use crate::data::{normalize, prepare, read_image, square_crop};

/// One labelled sample.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sample {
    pub id: String,
    pub image: PathBuf,
    pub mask: PathBuf,
}

/// The train and valid samples of a split manifest.
#[derive(Clone, Debug)]
pub struct SplitSet {
    pub train: Vec<Sample>,
    pub valid: Vec<Sample>,
    pub n_classes: usize,
    /// The manifest's classes (palette), in index order.
    pub classes: Vec<facepipe_core::palette::Class>,
    /// The manifest file as read (path, sha256, size).
    pub input: facepipe_core::io::InputFile,
}

impl SplitSet {
    /// Reads a split manifest; every item needs `image`, `mask` and `split`, and the manifest
    /// needs its `classes`.
    pub fn read(path: &Path) -> Result<SplitSet> {
        let loaded = Manifest::read(path)?;
        let m = loaded.manifest;
        let shown = path.display();
        if m.classes.is_empty() {
            bail!("manifest {shown} has no `classes`: run rgb2class (or add the palette) first");
        }
        let (mut train, mut valid) = (Vec::new(), Vec::new());
        for it in &m.items {
            let field = |v: &Option<String>, name: &str| {
                v.as_ref()
                    .map(PathBuf::from)
                    .with_context(|| format!("manifest {shown}: item {:?} has no `{name}`", it.id))
            };
            let s = Sample {
                id: it.id.clone(),
                image: field(&it.image, "image")?,
                mask: field(&it.mask, "mask")?,
            };
            match it.split {
                Some(Split::Train) => train.push(s),
                Some(Split::Valid) => valid.push(s),
                None => bail!("manifest {shown}: item {:?} has no `split`: run split first", it.id),
            }
        }
        if train.is_empty() {
            bail!("manifest {shown} has no training items");
        }
        Ok(SplitSet {
            train,
            valid,
            n_classes: m.classes.len(),
            classes: m.classes,
            input: loaded.input,
        })
    }
}

impl SplitSet {
    /// Reads every mask and image header once, in parallel, so that a bad file stops the run
    /// before anything is written rather than hours into training.
    pub fn validate(&self) -> Result<()> {
        self.train.par_iter().chain(self.valid.par_iter()).try_for_each(|s| {
            let mask = read_mask(&s.mask, self.n_classes)?;
            // the size as shown (EXIF orientation applied), as every stage sees the photo
            let (w, h) = facepipe_core::photo::shown_size(&s.image, "image").with_context(|| format!("item {:?}", s.id))?;
            if (w, h) != mask.dimensions() {
                bail!(
                    "image {} is {w}×{h} as shown but its mask {} is {}×{}: a mask must match the photo as a viewer shows it",
                    s.image.display(),
                    s.mask.display(),
                    mask.width(),
                    mask.height()
                );
            }
            Ok(())
        })
    }
}

/// A batch: images `[n, 3, size, size]` normalised, masks `[n, size, size]` (255 = ignore).
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    pub n: usize,
    pub size: usize,
    pub images: Vec<f32>,
    pub masks: Vec<i64>,
}

/// Prepares one sample: random crop for training (from the given stream), centre crop else.
pub fn load_sample(
    s: &Sample,
    size: u32,
    n_classes: usize,
    rng: Option<&mut SplitMix64>,
) -> Result<(Vec<f32>, Vec<i64>)> {
    let img = read_image(&s.image)?;
    let mask = read_mask(&s.mask, n_classes)?;
    if img.dimensions() != mask.dimensions() {
        bail!(
            "image {} is {}×{} as shown but its mask {} is {}×{}",
            s.image.display(),
            img.width(),
            img.height(),
            s.mask.display(),
            mask.width(),
            mask.height()
        );
    }
    let crop = square_crop(img.width(), img.height(), rng);
    let (img, mask) = prepare(&img, Some(&mask), crop, size);
    let mask = mask.expect("mask given");
    Ok((normalize(&img), mask.as_raw().iter().map(|&v| i64::from(v)).collect()))
}

/// The order of the samples in an epoch and how they group into batches.
pub fn epoch_order(n: usize, bs: usize, train: bool, seed: u64, epoch: u64) -> Vec<Vec<usize>> {
    let mut idx: Vec<usize> = (0..n).collect();
    if train {
        SplitMix64::derive(seed, epoch).shuffle(&mut idx);
        idx.chunks_exact(bs).map(<[usize]>::to_vec).collect()
    } else {
        idx.chunks(bs).map(<[usize]>::to_vec).collect()
    }
}

/// Builds one batch in parallel.
pub fn make_batch(
    samples: &[Sample],
    which: &[usize],
    size: u32,
    n_classes: usize,
    train: bool,
    seed: u64,
    epoch: u64,
) -> Result<Batch> {
    let parts: Vec<(Vec<f32>, Vec<i64>)> = which
        .par_iter()
        .map(|&i| {
            let mut rng = SplitMix64::derive(seed ^ epoch.wrapping_mul(0x9E37_79B9), i as u64 + 1);
            load_sample(&samples[i], size, n_classes, train.then_some(&mut rng))
        })
        .collect::<Result<_>>()?;
    let mut b = Batch {
        n: which.len(),
        size: size as usize,
        images: Vec::new(),
        masks: Vec::new(),
    };
    for (x, y) in parts {
        b.images.extend(x);
        b.masks.extend(y);
    }
    Ok(b)
}

/// Iterates an epoch's batches, preparing the next one on a background thread.
pub fn batches(
    samples: Vec<Sample>,
    bs: usize,
    size: u32,
    n_classes: usize,
    train: bool,
    seed: u64,
    epoch: u64,
) -> impl Iterator<Item = Result<Batch>> {
    let order = epoch_order(samples.len(), bs, train, seed, epoch);
    let (tx, rx) = mpsc::sync_channel(1);
    std::thread::spawn(move || {
        for which in order {
            let b = make_batch(&samples, &which, size, n_classes, train, seed, epoch);
            let failed = b.is_err();
            if tx.send(b).is_err() || failed {
                break;
            }
        }
    });
    rx.into_iter()
}

/// Training batches for lr_find: shuffled epochs one after another, from streams of their own.
pub(crate) struct SweepBatches {
    pub(crate) data: SplitSet,
    pub(crate) bs: usize,
    pub(crate) size: u32,
    pub(crate) seed: u64,
    pub(crate) stream: u64,
    pub(crate) epoch: u64,
    pub(crate) current: Option<Box<dyn Iterator<Item = Result<Batch>>>>,
}

impl SweepBatches {
    pub(crate) fn next(&mut self) -> Result<Batch> {
        loop {
            if let Some(it) = self.current.as_mut()
                && let Some(b) = it.next()
            {
                return b;
            }
            let it = batches(
                self.data.train.clone(),
                self.bs,
                self.size,
                self.data.n_classes,
                true,
                self.seed,
                self.stream + self.epoch,
            );
            self.epoch += 1;
            self.current = Some(Box::new(it));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{GrayImage, RgbImage};

    fn fixture(n: usize) -> (tempfile::TempDir, PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let mut items = vec![];
        for i in 0..n {
            let (w, h) = (40 + i as u32 * 3, 30);
            RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 5) as u8, (y * 7) as u8, i as u8]))
                .save(d.path().join(format!("{i}.png")))
                .unwrap();
            GrayImage::from_fn(w, h, |x, _| image::Luma([(x % 3) as u8]))
                .save(d.path().join(format!("{i}.tif")))
                .unwrap();
            let split = if i < n - 2 { "train" } else { "valid" };
            items.push(serde_json::json!({"id": format!("s{i}"), "image": format!("{i}.png"), "mask": format!("{i}.tif"), "split": split}));
        }
        let classes = serde_json::json!([{"id":0,"name":"a","rgb":[0,0,0]},{"id":1,"name":"b","rgb":[1,1,1]},{"id":2,"name":"c","rgb":[2,2,2]}]);
        let m = serde_json::json!({"schema":"facepipe/dataset","schema_version":1,"classes":classes,"items":items,"provenance":[]});
        let p = d.path().join("split.json");
        std::fs::write(&p, m.to_string()).unwrap();
        (d, p)
    }

    #[test]
    fn batches_are_shaped_seeded_and_drop_the_last_partial_train_batch() {
        let (_d, p) = fixture(9);
        let set = SplitSet::read(&p).unwrap();
        assert_eq!((set.train.len(), set.valid.len(), set.n_classes), (7, 2, 3));
        let run = |seed, epoch| -> Vec<Batch> {
            batches(set.train.clone(), 3, 16, 3, true, seed, epoch)
                .collect::<Result<_>>()
                .unwrap()
        };
        let a = run(1, 0);
        assert_eq!(a.len(), 2, "7 items in batches of 3: the partial batch is dropped");
        assert_eq!((a[0].images.len(), a[0].masks.len()), (3 * 3 * 16 * 16, 3 * 16 * 16));
        assert!(a[0].masks.iter().all(|&v| (0..3).contains(&v)));
        assert_eq!(a, run(1, 0), "same seed and epoch, same batches");
        assert_ne!(a, run(1, 1), "another epoch, another order and other crops");
        let v: Vec<Batch> = batches(set.valid.clone(), 3, 16, 3, false, 1, 0)
            .collect::<Result<_>>()
            .unwrap();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].n, 2, "valid keeps every item");
        let v2: Vec<Batch> = batches(set.valid.clone(), 3, 16, 3, false, 9, 5)
            .collect::<Result<_>>()
            .unwrap();
        assert_eq!(v, v2, "valid batches do not depend on the seed");
    }

    #[test]
    fn bad_samples_and_manifests_are_named() {
        let (d, p) = fixture(4);
        GrayImage::from_pixel(41, 30, image::Luma([7]))
            .save(d.path().join("1.tif"))
            .unwrap();
        let set = SplitSet::read(&p).unwrap();
        let errs: Vec<String> = batches(set.train.clone(), 1, 8, 3, false, 0, 0)
            .filter_map(|b| b.err())
            .map(|e| format!("{e:#}"))
            .collect();
        assert_eq!(errs.len(), 1);
        assert!(errs[0].contains("1.tif") && errs[0].contains("value 7"), "{}", errs[0]);

        let mut m: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        m["items"][0].as_object_mut().unwrap().remove("split");
        std::fs::write(&p, m.to_string()).unwrap();
        let e = format!("{:#}", SplitSet::read(&p).unwrap_err());
        assert!(e.contains("\"s0\"") && e.contains("split"), "{e}");
    }
}
