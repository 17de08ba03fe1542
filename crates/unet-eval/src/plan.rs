//! Which items a run predicts, checked before anything is written: each selected item's
//! image is readable, its mask (if any) of the same size with valid values, and the output
//! names of all of them distinct.

use std::collections::HashSet;
use std::path::PathBuf;

use anyhow::{Context, Result, bail, ensure};
use facepipe_core::{Item, Manifest, Split};
use rayon::prelude::*;

use crate::{Config, Select, predict};

/// One item to run, checked.
#[derive(Clone, Debug)]
pub(crate) struct Job {
    /// Its position in the input manifest.
    pub index: usize,
    pub id: String,
    pub split: Option<Split>,
    pub image: PathBuf,
    pub mask: Option<PathBuf>,
    pub width: u32,
    pub height: u32,
    /// Output paths relative to the output directory, without extension.
    pub stem: String,
    /// The crops the network sees, and which is the validation centre crop.
    pub tiles: Vec<unet::data::Crop>,
    pub centre: usize,
}

impl Job {
    /// The files this item gets, relative to the output directory: its predicted mask, the
    /// mask in colour and the overlay.
    pub fn outputs(&self) -> [String; 3] {
        [
            format!("masks/{}.tif", self.stem),
            format!("colour/{}.png", self.stem),
            format!("overlay/{}.png", self.stem),
        ]
    }
}

/// The items to run.
pub(crate) struct Plan {
    pub jobs: Vec<Job>,
    /// Whether any item of the whole run (every shard) has a split: it names the group of
    /// the items without one (`unsplit` beside others, else `all`).
    pub any_split: bool,
    /// Items of the input in this part (all of them unsharded).
    pub part_items: usize,
}

/// Checks the selected items (of this shard, `cfg.shard`) before anything is written: image
/// present and readable, mask of the same size with valid values. Output names are checked
/// over every selected item, so that shards never write what the unsharded run would refuse.
/// `shown` names the manifest in messages.
pub(crate) fn plan(m: &Manifest, cfg: &Config, n_classes: usize, shown: &str) -> Result<Plan> {
    let select = cfg.select;
    if select != Select::All && m.items.iter().all(|it| it.split.is_none()) {
        bail!("no item in {shown} has a `split`: run split first, or use --split all");
    }
    let mine: Option<HashSet<usize>> = cfg.shard.map(|s| {
        let ids: Vec<&str> = m.items.iter().map(|it| it.id.as_str()).collect();
        s.select(&ids).into_iter().collect()
    });
    let any_split = m
        .items
        .iter()
        .filter(|it| wanted(it, select))
        .any(|it| it.split.is_some());
    let mut jobs = select_jobs(m, select, mine.as_ref(), shown)?;
    // (a shard may hold none of them: it writes an empty part)
    jobs.par_iter_mut()
        .try_for_each(|j| check_job(j, cfg.outside, n_classes))?;
    let part_items = mine.as_ref().map_or(m.items.len(), HashSet::len);
    Ok(Plan {
        jobs,
        any_split,
        part_items,
    })
}

/// Whether `--split` selects the item.
fn wanted(it: &Item, select: Select) -> bool {
    match select {
        Select::All => true,
        Select::Valid => it.split == Some(Split::Valid),
        Select::Train => it.split == Some(Split::Train),
    }
}

/// The selected items of this part (`mine`, the indices of the shard's items), unchecked;
/// errors on an item without an image, or on output names that clash among all selected.
fn select_jobs(m: &Manifest, select: Select, mine: Option<&HashSet<usize>>, shown: &str) -> Result<Vec<Job>> {
    let mut jobs = Vec::new();
    let selected: Vec<&Item> = m.items.iter().filter(|it| wanted(it, select)).collect();
    if selected.is_empty() {
        bail!("no item of {shown} is selected by --split {select}");
    }
    check_output_names(&selected, shown)?;
    for (index, it) in m.items.iter().enumerate().filter(|(_, it)| wanted(it, select)) {
        let image = it
            .image
            .as_ref()
            .with_context(|| format!("item {:?} in {shown} has no `image`", it.id))?;
        let stem = facepipe_core::paths::output_stem(&it.id);
        if mine.is_some_and(|k| !k.contains(&index)) {
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
    Ok(jobs)
}

/// Refuses ids whose output files clash ([`facepipe_core::paths::output_clash`]), before
/// anything is written: no file name, the same name ignoring case or unsafe characters, or one
/// id's file a folder of another's (`x` writes `masks/x.tif`, `x.tif/y` needs `masks/x.tif/`).
fn check_output_names(selected: &[&Item], shown: &str) -> Result<()> {
    use facepipe_core::paths::{Clash, output_clash, output_stem};
    let id = |k: usize| selected[k].id.as_str();
    match output_clash(selected.iter().map(|it| it.id.as_str())) {
        None => Ok(()),
        Some(Clash::NoName(k)) => bail!("item id {:?} makes no file name", id(k)),
        Some(Clash::SameStem(_, k)) => bail!(
            "item ids in {shown} give the same output name {:?} (ids differing only in case or in unsafe characters)",
            output_stem(id(k))
        ),
        Some(Clash::FileIsFolder(j, k, ext)) => bail!(
            "item ids {:?} and {:?} in {shown} clash: the first's output file {}{ext} would have to be a folder of the second's; rename one",
            id(j),
            id(k),
            output_stem(id(j))
        ),
    }
}

/// Reads an item's image size as shown (its tiles follow from it) and checks its mask, if
/// any: same size, every value a class.
fn check_job(j: &mut Job, outside: predict::Outside, n_classes: usize) -> Result<()> {
    let (w, h) = facepipe_core::photo::shown_size(&j.image, "image").with_context(|| format!("item {:?}", j.id))?;
    ensure!(w > 0 && h > 0, "item {:?}: image {} is empty", j.id, j.image.display());
    ensure!(
        facepipe_core::photo::aspect_ok(w, h),
        "item {:?}: image {} is {w}×{h}, more than {} times as long as it is wide: no face photo is; crop it first",
        j.id,
        j.image.display(),
        facepipe_core::photo::MAX_ASPECT
    );
    (j.width, j.height) = (w, h);
    (j.tiles, j.centre) = predict::tiles(w, h, outside);
    if let Some(mp) = &j.mask {
        let mask = facepipe_core::mask::read(mp, n_classes).with_context(|| format!("item {:?}", j.id))?;
        ensure!(
            mask.dimensions() == (w, h),
            "item {:?}: image {} is {w}×{h} as shown but its mask {} is {}×{}: a mask must match the photo as a viewer shows it (EXIF orientation applied)",
            j.id,
            j.image.display(),
            mp.display(),
            mask.width(),
            mask.height()
        );
    }
    Ok(())
}
