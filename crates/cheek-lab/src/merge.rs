//! `cheek-lab --merge`: joins the reports of the N shards of one measurement (`--shard K/N`,
//! each with its own `--report`) into the CSV, report and scatter plot one unsharded run
//! writes.
//!
//! A shard's report holds every row it measured at full precision (`shard.items`), so the
//! merge concatenates the rows in the input's order (`--expect INPUT`, else by item id),
//! re-reads the reference (which must be unchanged: same sha256) and computes the agreement
//! on all rows with the code a whole run uses: CSV rows and statistics equal an unsharded
//! run's. QC pictures stay in the shards' `--qc-dir` folders.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use facepipe_core::Manifest;
use facepipe_core::io::{InputFile, read_input};
use facepipe_core::shard::{Shard, ShardSpec};

use crate::outputs::Files;
use crate::{Config, RefInput, Report, ShardItem, ShardRef, assemble, reference};

/// One shard's report, read and checked.
struct Part {
    path: PathBuf,
    shard: Shard,
    report: Report,
    sha256: String,
}

/// Reads a shard's report: a cheek-lab report written with `--shard K/N`, not a merge.
fn read_part(path: &Path) -> Result<Part> {
    let (bytes, input) = read_input(path)?;
    let report: Report = facepipe_formats::tag::CHEEK_LAB.parse(path, &bytes)?;
    ensure!(
        report.shards.is_empty(),
        "{} is already a merge of {} shards",
        path.display(),
        report.shards.len()
    );
    let part = report.shard.as_ref().with_context(|| {
        format!(
            "{} was not written with --shard: it is a whole run's report",
            path.display()
        )
    })?;
    let shard = match part.shard.parse::<ShardSpec>() {
        Ok(ShardSpec::Fixed(s)) => s,
        _ => bail!("{}: its shard {:?} is not K/N", path.display(), part.shard),
    };
    Ok(Part {
        path: path.to_path_buf(),
        shard,
        report,
        sha256: input.sha256,
    })
}

/// The settings every shard must share, as JSON (compared field by field for the error).
fn settings(r: &Report) -> Vec<(&'static str, serde_json::Value)> {
    let part = r.shard.as_ref().expect("a shard");
    vec![
        ("schema version", j(&r.schema_version)),
        ("input manifest", j(&r.input)),
        ("mask field", j(&r.mask_field)),
        ("--faces", j(&r.faces_mode)),
        ("--white", j(&r.white_point)),
        ("--averaging", j(&r.averaging)),
        ("--patch-px", j(&r.patch_px)),
        ("--reference-face-width", j(&r.reference_face_width)),
        ("--min-skin", j(&r.min_skin)),
        ("reference", j(&r.agreement.as_ref().map(|a| &a.reference))),
        ("reference columns", j(&part.ref_columns)),
        ("--join", j(&part.join)),
    ]
}

fn j<T: serde::Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}

/// Merges the shard reports (`cfg.merge`) into `-o` and `--report`; returns the merged report.
pub fn merge(cfg: &Config) -> Result<Report> {
    ensure!(!cfg.merge.is_empty(), "--merge needs the shards' reports");
    let output = cfg.output()?;
    refuse_shards_as_outputs(cfg, output)?;
    let outputs = Files::guard(output, cfg.report.as_deref(), cfg.force)?;
    let mut parts = cfg.merge.iter().map(|p| read_part(p)).collect::<Result<Vec<_>>>()?;
    check_one_run(&parts)?;
    parts.sort_by_key(|p| p.shard.index);
    let first = &parts[0].report;
    let part = first.shard.as_ref().expect("a shard");
    let mut items = items_of(&parts)?;
    match &cfg.expect {
        Some(path) => order_as_input(&mut items, path, first)?,
        None => items.sort_by(|a, b| a.id.cmp(&b.id)),
    }
    let rows: Vec<_> = items.iter().flat_map(|it| it.rows.iter().cloned()).collect();
    let warnings: Vec<String> = items.iter().flat_map(|it| it.warnings.iter().cloned()).collect();
    let reference = reread_reference(first)?;
    let shown = part.reference.clone().unwrap_or_default();
    let ref_input = reference.as_ref().map(|(data, input)| RefInput {
        data,
        input,
        shown: &shown,
        columns: &part.ref_columns,
        join: part.join.clone(),
    });
    let mut head = merged_head(&parts)?;
    head.csv = crate::written_path(output, cfg.report.as_deref())?;
    let (report, csv, joined) = assemble(head, &rows, warnings, ref_input.as_ref())?;
    outputs.write(&report, &csv, &rows, joined.as_ref())?;
    Ok(report)
}

/// A shard report named as an output would be overwritten before it is read: refused.
fn refuse_shards_as_outputs(cfg: &Config, output: &Path) -> Result<()> {
    for s in &cfg.merge {
        let same = |p: &Path| {
            std::fs::canonicalize(p)
                .ok()
                .is_some_and(|c| Some(c) == std::fs::canonicalize(s).ok())
        };
        if same(output) || cfg.report.as_deref().is_some_and(same) {
            bail!(
                "{} is both a shard report and an output; write the merged files elsewhere",
                s.display()
            );
        }
    }
    Ok(())
}

/// The parts must be every shard of one N (each once) and share every setting.
fn check_one_run(parts: &[Part]) -> Result<()> {
    let first_settings = settings(&parts[0].report);
    let shown: Vec<String> = parts.iter().map(|p| p.path.display().to_string()).collect();
    facepipe_core::shard::check_complete(parts.iter().zip(&shown).map(|(p, n)| (p.shard, n.as_str())))?;
    for p in parts {
        let differs: Vec<&str> = settings(&p.report)
            .into_iter()
            .zip(&first_settings)
            .filter(|(a, b)| a.1 != b.1)
            .map(|(a, _)| a.0)
            .collect();
        ensure!(
            differs.is_empty(),
            "{} is not a shard of the same run as {}: its {} differ",
            p.path.display(),
            parts[0].path.display(),
            differs.join(", ")
        );
    }
    Ok(())
}

/// Every shard's items, in shard order; an item in two shards is an error.
fn items_of(parts: &[Part]) -> Result<Vec<&ShardItem>> {
    let mut items: Vec<&ShardItem> = Vec::new();
    let mut owner: HashMap<&str, &Path> = HashMap::new();
    for p in parts {
        for it in &p.report.shard.as_ref().expect("a shard").items {
            if let Some(other) = owner.insert(it.id.as_str(), &p.path) {
                bail!(
                    "item {:?} is in both {} and {}",
                    it.id,
                    other.display(),
                    p.path.display()
                );
            }
            items.push(it);
        }
    }
    Ok(items)
}

/// Puts the items in the order of `--expect`, which must be the manifest the shards measured
/// (same sha256) and hold the same items.
fn order_as_input(items: &mut [&ShardItem], path: &Path, first: &Report) -> Result<()> {
    let loaded = Manifest::read(path)?;
    ensure!(
        loaded.input.sha256 == first.input.sha256,
        "--expect {} is not the manifest the shards measured ({})",
        path.display(),
        first.input.path
    );
    let pos: HashMap<&str, usize> = loaded
        .manifest
        .items
        .iter()
        .enumerate()
        .map(|(i, it)| (it.id.as_str(), i))
        .collect();
    ensure!(
        items.len() == pos.len() && items.iter().all(|it| pos.contains_key(it.id.as_str())),
        "the shards hold {} items, --expect {} has {}: not the same items",
        items.len(),
        path.display(),
        pos.len()
    );
    items.sort_by_key(|it| pos[it.id.as_str()]);
    Ok(())
}

/// The shards' reference, read again; it must be unchanged since they measured (same sha256).
fn reread_reference(first: &Report) -> Result<Option<(reference::Reference, InputFile)>> {
    let part = first.shard.as_ref().expect("a shard");
    let (Some(path), Some(a)) = (&part.reference, &first.agreement) else {
        return Ok(None);
    };
    let data = reference::read(Path::new(path), &part.ref_columns)?;
    let (_, input) = read_input(Path::new(path))?;
    ensure!(
        input.sha256 == a.reference.sha256,
        "reference {path} has changed since the shards were measured (sha256 differs): rerun them, or restore it"
    );
    Ok(Some((data, input)))
}

/// The merged report's settings: the first shard's, with the items of all, the shards it
/// joined and this version; [`assemble`] fills in the counts.
fn merged_head(parts: &[Part]) -> Result<Report> {
    let mut head = parts[0].report.clone();
    head.items = parts.iter().map(|p| p.report.items).sum();
    head.shard = None;
    // The shards' QC folders are their own; the merged CSV is set by the caller.
    head.qc_dir = None;
    head.shards = parts
        .iter()
        .map(|p| {
            Ok(ShardRef {
                shard: p.shard.to_string(),
                report: facepipe_core::paths::to_manifest_string(&facepipe_core::paths::absolute(&p.path)?)?,
                sha256: p.sha256.clone(),
            })
        })
        .collect::<Result<_>>()?;
    head.facepipe_version = facepipe_core::VERSION.into();
    Ok(head)
}
