//! `photos`: a folder of photos, or a CSV listing them, → a dataset manifest, the way into the
//! chain for a researcher's own photos (no labels needed: `unet-eval` predicts the masks,
//! `cheek-lab` measures them).
//!
//! Every photo is read whole through [`facepipe_core::photo`], so what is written is what the
//! later stages will see: each item has the size as shown (EXIF orientation applied), the
//! orientation and colour profile applied, whether it has colour at all, its bit depth, and
//! the sha256 and size of its bytes. A CSV's other columns (participant, session, camera...)
//! are carried into its items, so that `cheek-lab --join FIELD` can match a reference by them.
//!
//! A photo that cannot be used (missing, unreadable, truncated, empty, not an image, a format
//! facepipe does not read, too thin to be a face photo, or the same bytes as an earlier one) is
//! listed by name with the reason; the stage refuses them all at once, or with `--skip-bad`
//! leaves them out and records them in the manifest's `skipped` list.
//!
//! Ids are the path below the folder (or the CSV's `id` column), without the extension;
//! two photos whose ids give the same output file name (ignoring case, after unsafe characters
//! become `_`) are refused, so that ids stay stable as photos are added.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use facepipe_core::io::InputFile;
use facepipe_core::photo::{self, PhotoInfo};
use facepipe_core::shard::Shard;
use facepipe_core::{Item, Manifest, Step, paths};
use rayon::prelude::*;
use serde::Serialize;
use serde_json::{Value, json};

pub mod list;

use list::Candidate;

pub const STAGE: &str = "photos";

/// What to read, and how.
#[derive(Clone, Debug)]
pub struct Config {
    /// A folder (searched recursively) or a CSV file.
    pub input: PathBuf,
    /// The CSV column naming the photos.
    pub path_column: Option<String>,
    /// Leave unusable photos out (recorded in `skipped`) instead of refusing them.
    pub skip_bad: bool,
    /// Read only this part of the photos (`--shard K/N`).
    pub shard: Option<Shard>,
}

/// A photo left out, and why.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Skipped {
    pub file: String,
    pub reason: String,
}

/// A photo read: its item, or why it cannot be used.
enum Read {
    /// The item, its bytes' sha256 and the photo's name.
    Ok(Box<Item>, String, String),
    Bad(Skipped),
}

/// The photos listed, with where their paths are relative to, and the CSV's record.
struct Listed {
    root: PathBuf,
    photos: Vec<Candidate>,
    others: Vec<String>,
    csv: Option<InputFile>,
}

fn list(cfg: &Config) -> Result<Listed> {
    let input = paths::absolute(&cfg.input)?;
    if input.is_dir() {
        if cfg.path_column.is_some() {
            bail!("--path-column is for a CSV input; {} is a folder", cfg.input.display());
        }
        let l = list::folder(&input)?;
        if l.photos.is_empty() {
            bail!(
                "no photos under {} (files ending in .{}; {} other files)",
                cfg.input.display(),
                list::READ.join(", ."),
                l.others.len()
            );
        }
        return Ok(Listed {
            root: input,
            photos: l.photos,
            others: l.others,
            csv: None,
        });
    }
    if !input.exists() {
        bail!(
            "{} does not exist: give a folder of photos or a CSV listing them",
            cfg.input.display()
        );
    }
    let l = list::csv(&cfg.input, cfg.path_column.as_deref())?;
    let (_, record) = facepipe_core::io::read_input(&cfg.input)?;
    // ids are paths below the CSV's folder, so that listing one more photo elsewhere in it
    // changes no id; photos outside it take their common folder
    let csv_dir = input.parent().map(Path::to_path_buf).unwrap_or_default();
    let root = if l.photos.iter().all(|c| c.path.starts_with(&csv_dir)) {
        csv_dir
    } else {
        paths::common_dir(l.photos.iter().map(|c| c.path.as_path())).unwrap_or_default()
    };
    Ok(Listed {
        root,
        photos: l.photos,
        others: vec![],
        csv: Some(record),
    })
}

/// The id of a photo: the CSV's, or its path below `root` without the extension.
fn id_of(c: &Candidate, root: &Path) -> String {
    if let Some(id) = &c.id {
        return id.clone();
    }
    list::relative_name(root, &c.path.with_extension(""))
}

/// Refuses photos whose ids would give clashing output files in the later stages
/// ([`paths::output_clash`]): the same name, or one's file a folder of another's.
fn check_ids(photos: &[Candidate], ids: &[String]) -> Result<()> {
    use paths::Clash;
    match paths::output_clash(ids.iter().map(String::as_str)) {
        None => Ok(()),
        Some(Clash::NoName(k)) => bail!("photo {}: its id {:?} makes no file name", photos[k].name, ids[k]),
        Some(Clash::SameStem(j, k)) => bail!(
            "photos {} and {} would have the same id {:?} (ids are paths without the extension, compared ignoring case and unsafe characters): rename one, or give ids in a CSV's id column",
            photos[j].name,
            photos[k].name,
            ids[j]
        ),
        Some(Clash::FileIsFolder(j, k, ext)) => bail!(
            "photos {} and {} clash: the first's output files ({:?}{ext}) would have to be a folder of the second's (id {:?}): rename one",
            photos[j].name,
            photos[k].name,
            ids[j],
            ids[k]
        ),
    }
}

/// Reads one photo whole: its bytes hashed, its pixels decoded as shown.
fn read_one(c: &Candidate, id: &str) -> Read {
    let bad = |reason: String| {
        Read::Bad(Skipped {
            file: c.name.clone(),
            reason,
        })
    };
    if let Some(why) = list::unread_format(&c.path) {
        return bad(why);
    }
    let bytes = match std::fs::read(&c.path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return bad("does not exist".into()),
        Err(e) => return bad(format!("cannot be read ({e})")),
    };
    let sha = facepipe_core::io::sha256_hex(&bytes);
    let size = bytes.len();
    let p = match photo::read_bytes(bytes, Path::new(&c.name)) {
        Ok(p) => p,
        // the reader's error names the file, which the list gives already
        Err(e) => {
            let e = format!("{e:#}");
            return bad(e
                .replace(&format!("image {} ", c.name), "")
                .replace(&format!(" image {}:", c.name), ":"));
        }
    };
    let PhotoInfo { width, height, .. } = p.info;
    if !photo::aspect_ok(width, height) {
        return bad(format!(
            "is {width}×{height}, more than {} times as long as it is wide: no face photo is",
            photo::MAX_ASPECT
        ));
    }
    Read::Ok(Box::new(item(c, id, &p.info, &sha, size)), sha, c.name.clone())
}

fn item(c: &Candidate, id: &str, info: &PhotoInfo, sha: &str, size: usize) -> Item {
    let mut it = Item::new(id);
    it.image = Some(paths::to_manifest_string(&c.path).unwrap_or_else(|_| c.path.display().to_string()));
    it.width = Some(info.width);
    it.height = Some(info.height);
    if let Some((group, _)) = id.rsplit_once('/') {
        it.group = Some(group.to_string());
    }
    it.extra = c.fields.clone();
    let mut put = |k: &str, v: Value| {
        it.extra.insert(k.into(), v);
    };
    put("orientation", json!(info.orientation));
    put("colour_profile", json!(info.profile));
    put("colour", json!(info.colour));
    put("bit_depth", json!(info.bit_depth));
    put("sha256", json!(sha));
    put("bytes", json!(size));
    it
}

/// Builds the manifest of the photos (see the crate's notes).
pub fn build(cfg: &Config) -> Result<Manifest> {
    let listed = list(cfg)?;
    let ids: Vec<String> = listed.photos.iter().map(|c| id_of(c, &listed.root)).collect();
    check_ids(&listed.photos, &ids)?;
    let mine: Vec<usize> = match cfg.shard {
        Some(s) => s.select(&ids.iter().map(String::as_str).collect::<Vec<_>>()),
        None => (0..ids.len()).collect(),
    };
    let reads: Vec<Read> = mine.par_iter().map(|&k| read_one(&listed.photos[k], &ids[k])).collect();
    let (mut items, mut skipped, duplicates) = sort_out(reads);
    // in id order (and the left-out by name), as manifest-merge joins the parts of a sharded
    // run: the parts merged are the unsharded manifest
    items.sort_by(|a, b| a.id.cmp(&b.id));
    skipped.sort_by(|a, b| a.file.cmp(&b.file));
    if !skipped.is_empty() && !cfg.skip_bad {
        let lines: Vec<String> = skipped.iter().map(|s| format!("  {}: {}", s.file, s.reason)).collect();
        bail!(
            "{} of {} photos cannot be used (--skip-bad leaves them out and records them):\n{}",
            skipped.len(),
            mine.len(),
            lines.join("\n")
        );
    }
    for s in &skipped {
        log::warn!("left out {}: {}", s.file, s.reason);
    }
    if !listed.others.is_empty() {
        log::info!(
            "{} files that are not photos by their name were passed over: {}",
            listed.others.len(),
            listed.others.join(", ")
        );
    }
    if items.is_empty() {
        bail!("none of the {} photos can be used", mine.len());
    }
    let mut m = Manifest::new(items);
    m.root = Some(paths::to_manifest_string(&listed.root)?);
    if !skipped.is_empty() {
        m.extra.insert("skipped".into(), serde_json::to_value(&skipped)?);
    }
    m.provenance.push(step(cfg, &listed, &m, skipped.len(), duplicates));
    Ok(m)
}

/// The photos read, the ones left out (duplicates after the first of the same bytes among
/// them), and how many were duplicates.
fn sort_out(reads: Vec<Read>) -> (Vec<Item>, Vec<Skipped>, usize) {
    let mut first: HashMap<String, String> = HashMap::new();
    let (mut items, mut skipped, mut duplicates) = (vec![], vec![], 0);
    for r in reads {
        match r {
            Read::Bad(s) => skipped.push(s),
            Read::Ok(it, sha, name) => {
                if let Some(orig) = first.get(&sha) {
                    duplicates += 1;
                    skipped.push(Skipped {
                        file: name,
                        reason: format!("has the same bytes as {orig} (a copy of the same photo)"),
                    });
                } else {
                    first.insert(sha, name);
                    items.push(*it);
                }
            }
        }
    }
    (items, skipped, duplicates)
}

fn step(cfg: &Config, listed: &Listed, m: &Manifest, skipped: usize, duplicates: usize) -> Step {
    let mut s = Step::new(STAGE, facepipe_core::VERSION)
        .param("input", paths::to_manifest_string(&cfg.input).unwrap_or_default())
        .param("path_column", &cfg.path_column)
        .param("skip_bad", cfg.skip_bad);
    if let Some(shard) = cfg.shard {
        s = s.param("shard", shard.to_string());
    }
    s.inputs.extend(listed.csv.clone());
    s.count(facepipe_core::manifest::ITEMS_WRITTEN, m.items.len());
    s.count("skipped", skipped);
    s.count("duplicates", duplicates);
    s
}
