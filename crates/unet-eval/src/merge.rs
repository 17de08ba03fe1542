//! `unet-eval --merge`: joins the output folders of the N shards of one evaluation
//! (`--shard K/N`, each with its own `--out-dir`) into the scores one unsharded run gives.
//!
//! Scores are global sums (see [`crate::report`]), so the shards' confusion matrices and
//! summed losses are added group by group and every score is computed once from the sums:
//! the merged `eval.json`'s groups, `per_image.csv`, `confusion.csv` and `confusion.png` are
//! an unsharded run's (the mean loss to rounding: its sum is added in another order). The
//! predicted masks and the pictures stay in the shard folders (the shards' output manifests,
//! joined by `manifest-merge`, point there), and so does each shard's contact sheet: the
//! merged `report.md` links them. Throughput is summed over the shards (worker time).
//!
//! Every shard must have scored the same manifest with the same model, weights and settings,
//! each of the N parts must be there once, and the merged folder must be none of the shards'.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use facepipe_core::io::{read_input, write_atomic};
use facepipe_core::metrics::Confusion;
use facepipe_core::out::Outputs;
use facepipe_core::shard::{Shard, ShardSpec};
use facepipe_core::{Manifest, paths};

use crate::pictures::write_confusion_png;
use crate::report::{self, EvalFile, Group, Scores, ShardRef, Throughput};
use crate::{MARKER, STAGE};
use facepipe_formats::tag;

/// What `--merge` needs.
#[derive(Clone, Debug)]
pub struct MergeConfig {
    /// The shards' `--out-dir` folders, in any order.
    pub shards: Vec<PathBuf>,
    /// The merged folder (none of the shards').
    pub out_dir: PathBuf,
    /// The manifest the shards read: `per_image.csv` keeps its order (else rows are sorted by
    /// id), and it must be the file the shards scored (same sha256).
    pub expect: Option<PathBuf>,
    pub force: bool,
}

/// One shard folder, read.
struct Part {
    dir: PathBuf,
    shard: Shard,
    eval: EvalFile,
    sha256: String,
}

fn read_part(dir: &Path) -> Result<Part> {
    let p = dir.join("eval.json");
    let (bytes, input) =
        read_input(&p).with_context(|| format!("{} is not a finished unet-eval --shard folder", dir.display()))?;
    let eval: EvalFile = tag::EVAL.parse(&p, &bytes)?;
    ensure!(
        eval.shards.is_empty(),
        "{} is already a merge of {} shards",
        dir.display(),
        eval.shards.len()
    );
    let spec = eval
        .shard
        .as_deref()
        .with_context(|| format!("{} was not run with --shard: it is a whole evaluation", dir.display()))?;
    let shard = match spec.parse::<ShardSpec>() {
        Ok(ShardSpec::Fixed(s)) => s,
        _ => bail!("{}: its shard {spec:?} is not K/N", p.display()),
    };
    Ok(Part {
        dir: dir.to_path_buf(),
        shard,
        eval,
        sha256: input.sha256,
    })
}

/// Errors unless the parts are the N shards of one evaluation, each once.
fn check_parts(parts: &[Part]) -> Result<()> {
    let first = &parts[0];
    let shown: Vec<String> = parts.iter().map(|p| p.dir.display().to_string()).collect();
    facepipe_core::shard::check_complete(parts.iter().zip(&shown).map(|(p, n)| (p.shard, n.as_str())))?;
    for p in parts {
        let name = p.dir.display();
        let (a, b) = (&p.eval, &first.eval);
        let differs = [
            ("schema version", same(&a.schema_version, &b.schema_version)),
            ("model or weights", same(&a.model, &b.model)),
            ("input manifest", same(&a.manifest, &b.manifest)),
            ("settings", same(&a.settings, &b.settings)),
            ("classes", same(&a.classes, &b.classes)),
        ]
        .into_iter()
        .filter(|(_, eq)| !eq)
        .map(|(what, _)| what)
        .collect::<Vec<_>>();
        ensure!(
            differs.is_empty(),
            "{name} is not a shard of the same evaluation as {}: its {} differ",
            first.dir.display(),
            differs.join(", ")
        );
    }
    Ok(())
}

/// Whether two records are the same (compared as JSON).
fn same<T: serde::Serialize>(a: &T, b: &T) -> bool {
    serde_json::to_value(a).ok() == serde_json::to_value(b).ok()
}

/// A group's scores at one resolution, added over the shards.
fn add_scores(list: &[&Scores], classes: &[facepipe_core::Class], with_loss: bool, shown: &str) -> Result<Scores> {
    let n = classes.len();
    let mut sum = Confusion::new(n);
    let mut loss = 0.0;
    for s in list {
        let c = Confusion::from_rows(&s.confusion, s.unpredicted_pixels)
            .filter(|c| c.n_classes() == n)
            .with_context(|| format!("{shown}: a confusion matrix is not {n}×{n}"))?;
        sum.merge(&c);
        if with_loss {
            loss += s
                .loss_sum
                .with_context(|| format!("{shown}: a model-resolution score has no `loss_sum`"))?;
        }
    }
    Ok(Scores::from_confusion(&sum, classes, with_loss.then_some(loss)))
}

/// Merges the shard folders into `cfg.out_dir`; returns the merged `eval.json`.
pub fn merge(cfg: &MergeConfig) -> Result<EvalFile> {
    ensure!(!cfg.shards.is_empty(), "--merge needs the shards' output folders");
    // held to the end: a second run on the folder refuses
    let mut outputs = Outputs::new(STAGE, cfg.force);
    outputs.lock(&cfg.out_dir)?;
    let out_dir = paths::absolute(&cfg.out_dir)?;
    let mut parts = cfg.shards.iter().map(|d| read_part(d)).collect::<Result<Vec<_>>>()?;
    check_apart(&parts, &cfg.out_dir, &out_dir)?;
    check_parts(&parts)?;
    parts.sort_by_key(|p| p.shard.index);
    let first = &parts[0].eval;
    let classes = &first.classes;
    let position = match &cfg.expect {
        Some(path) => Some(input_order(path, first)?),
        None => None,
    };
    let groups = merge_groups(&parts, classes)?;
    let table = per_image_rows(&parts, position.as_ref())?;

    let mut folder = outputs.folder(&out_dir, MARKER, "--out-dir", &|_| false)?;
    let mut files = Vec::new();
    if !groups.is_empty() {
        files.extend(["per_image.csv", "confusion.csv", "confusion.png"].map(String::from));
    }
    files.extend(["report.md", "eval.json"].map(String::from));
    folder.begin(files.iter().cloned())?;
    if let Some(h) = groups.first() {
        write_atomic(&out_dir.join("per_image.csv"), &table.to_csv()?)?;
        report::confusion_csv(&out_dir.join("confusion.csv"), &h.full_resolution, classes)?;
        write_confusion_png(&out_dir, h, classes)?;
    }
    let eval = merged_eval(&parts, groups, files)?;
    write_atomic(&out_dir.join("report.md"), report::report_md(&eval, false).as_bytes())?;
    facepipe_core::io::write_json(&out_dir.join("eval.json"), &eval)?;
    Ok(eval)
}

/// Errors if the merged folder and a shard's are inside one another.
fn check_apart(parts: &[Part], shown: &Path, out_dir: &Path) -> Result<()> {
    for p in parts {
        let d = paths::absolute(&p.dir)?;
        ensure!(
            !d.starts_with(out_dir) && !out_dir.starts_with(&d),
            "--out-dir {} and the shard folder {} are inside one another: merge into a folder of its own",
            shown.display(),
            p.dir.display()
        );
    }
    Ok(())
}

/// Each id's position in the manifest at `path` (`--expect`), which must be the one the
/// shards scored: per_image.csv's rows are put in its order, as an unsharded run's.
fn input_order(path: &Path, first: &EvalFile) -> Result<HashMap<String, usize>> {
    let loaded = Manifest::read(path)?;
    ensure!(
        loaded.input.sha256 == first.manifest.sha256,
        "--expect {} is not the manifest the shards scored ({}, sha256 {}…)",
        path.display(),
        first.manifest.path,
        &first.manifest.sha256[..12.min(first.manifest.sha256.len())]
    );
    Ok(loaded
        .manifest
        .items
        .iter()
        .enumerate()
        .map(|(i, it)| (it.id.clone(), i))
        .collect())
}

/// Each group of any shard, its scores added over the shards, in the unsharded run's order.
fn merge_groups(parts: &[Part], classes: &[facepipe_core::Class]) -> Result<Vec<Group>> {
    let mut groups = Vec::new();
    for name in ["valid", "train", "unsplit", "all"] {
        let members: Vec<&Group> = parts
            .iter()
            .flat_map(|p| p.eval.groups.iter().filter(|g| g.name == name))
            .collect();
        if members.is_empty() {
            continue;
        }
        let shown = format!("group {name}");
        let full: Vec<&Scores> = members.iter().map(|g| &g.full_resolution).collect();
        let model: Vec<&Scores> = members.iter().map(|g| &g.model_resolution).collect();
        groups.push(Group {
            name: name.into(),
            images: members.iter().map(|g| g.images).sum(),
            full_resolution: add_scores(&full, classes, false, &shown)?,
            model_resolution: add_scores(&model, classes, true, &shown)?,
        });
    }
    Ok(groups)
}

/// The shards' `per_image.csv` rows, joined.
struct Table {
    header: Option<csv::StringRecord>,
    rows: Vec<csv::StringRecord>,
}

impl Table {
    /// The table as CSV.
    fn to_csv(&self) -> Result<Vec<u8>> {
        let mut w = csv::Writer::from_writer(Vec::new());
        if let Some(hd) = &self.header {
            w.write_record(hd)?;
        }
        for r in &self.rows {
            w.write_record(r)?;
        }
        Ok(w.into_inner()?)
    }
}

/// Every shard's `per_image.csv` rows (all with the first's columns), in the input's order
/// (`position`, from `--expect`) or else sorted by id.
fn per_image_rows(parts: &[Part], position: Option<&HashMap<String, usize>>) -> Result<Table> {
    let mut header: Option<csv::StringRecord> = None;
    let mut rows: Vec<csv::StringRecord> = Vec::new();
    for p in parts
        .iter()
        .filter(|p| p.eval.files.iter().any(|x| x == "per_image.csv"))
    {
        let f = p.dir.join("per_image.csv");
        let mut r = csv::Reader::from_path(&f).with_context(|| format!("reading {}", f.display()))?;
        let h = r.headers().with_context(|| format!("reading {}", f.display()))?.clone();
        match &header {
            Some(h0) if *h0 != h => bail!("{} has other columns than the first shard's", f.display()),
            _ => header = Some(h),
        }
        for rec in r.records() {
            rows.push(rec.with_context(|| format!("reading {}", f.display()))?);
        }
    }
    let key = |r: &csv::StringRecord| r.get(0).unwrap_or("").to_string();
    match position {
        Some(pos) => {
            if let Some(r) = rows.iter().find(|r| !pos.contains_key(&key(r))) {
                bail!("item {:?} of the shards is not in --expect", key(r));
            }
            rows.sort_by_key(|r| pos[&key(r)]);
        }
        None => rows.sort_by_key(key),
    }
    Ok(Table { header, rows })
}

/// The merged `eval.json`: the first shard's model, manifest and settings, the counts and
/// throughput summed over the shards (worker time), the merged groups, and each shard's folder.
fn merged_eval(parts: &[Part], groups: Vec<Group>, files: Vec<String>) -> Result<EvalFile> {
    let first = &parts[0].eval;
    Ok(EvalFile {
        schema: tag::EVAL.tag.into(),
        schema_version: tag::EVAL.version,
        model: first.model.clone(),
        manifest: first.manifest.clone(),
        settings: first.settings.clone(),
        classes: first.classes.clone(),
        items: parts.iter().map(|p| p.eval.items).sum(),
        labelled: parts.iter().map(|p| p.eval.labelled).sum(),
        unlabelled: parts.iter().map(|p| p.eval.unlabelled).sum(),
        headline: groups.first().map(|g| g.name.clone()),
        groups,
        throughput: summed_throughput(parts),
        files,
        shard: None,
        shards: parts.iter().map(shard_ref).collect::<Result<_>>()?,
        facepipe_version: facepipe_core::VERSION.into(),
    })
}

/// The shards' throughput added up: their images, tiles and seconds, and the rates of those.
fn summed_throughput(parts: &[Part]) -> Throughput {
    let sum = |f: fn(&Throughput) -> f64| parts.iter().map(|p| f(&p.eval.throughput)).sum::<f64>();
    let (images, tiles) = (
        parts.iter().map(|p| p.eval.throughput.images).sum::<usize>(),
        parts.iter().map(|p| p.eval.throughput.tiles).sum::<usize>(),
    );
    let (seconds, network_seconds) = (sum(|t| t.seconds), sum(|t| t.network_seconds));
    Throughput {
        images,
        tiles,
        seconds,
        images_per_s: images as f64 / seconds.max(1e-9),
        network_seconds,
        network_tiles_per_s: tiles as f64 / network_seconds.max(1e-9),
    }
}

/// Where a shard's folder (and its contact sheet, if it has one) is, and its `eval.json`'s hash.
fn shard_ref(p: &Part) -> Result<ShardRef> {
    let dir = paths::absolute(&p.dir)?;
    Ok(ShardRef {
        shard: p.shard.to_string(),
        dir: paths::to_manifest_string(&dir)?,
        eval_json_sha256: p.sha256.clone(),
        contact_sheet: p
            .eval
            .files
            .iter()
            .any(|f| f == "contact_sheet.png")
            .then(|| paths::to_manifest_string(&dir.join("contact_sheet.png")))
            .transpose()?,
    })
}
