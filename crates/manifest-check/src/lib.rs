//! `manifest-check`: validate a facepipe manifest the way a stage would read it, and summarise it.
//!
//! Checks, in order: the JSON Schema (the same one committed under `schemas/`), the reader's
//! rules (schema name and version, unique ids, a valid palette), that every path field names an
//! existing file, and that the fields given with `--require` are on every item.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use facepipe_core::{Manifest, Split, manifest::PATH_FIELDS};

#[derive(Clone, Debug)]
pub struct Config {
    pub input: PathBuf,
    pub check_files: bool,
    pub require: Vec<String>,
}

/// Validates and returns a one-paragraph summary.
pub fn check(cfg: &Config) -> Result<String> {
    let shown = cfg.input.display().to_string();
    let bytes = std::fs::read(&cfg.input).with_context(|| format!("cannot read {shown}"))?;
    let value: serde_json::Value =
        serde_json::from_slice(&bytes).with_context(|| format!("{shown} is not valid JSON"))?;
    let schema = facepipe_core::manifest::json_schema();
    let validator = jsonschema::validator_for(&schema).context("compiling the manifest schema")?;
    let errors: Vec<String> = validator
        .iter_errors(&value)
        .take(10)
        .map(|e| format!("  at {}: {e}", e.instance_path()))
        .collect();
    if !errors.is_empty() {
        bail!(
            "{shown} does not match schemas/dataset.schema.json:\n{}",
            errors.join("\n")
        );
    }
    let m = Manifest::read(&cfg.input)?.manifest;

    let mut missing = Vec::new();
    for it in &m.items {
        let v = serde_json::to_value(it)?;
        for f in &cfg.require {
            if v.get(f).is_none_or(serde_json::Value::is_null) {
                bail!("{shown}: item {:?} has no `{f}`", it.id);
            }
        }
        if cfg.check_files {
            for f in PATH_FIELDS {
                if let Some(p) = v.get(f).and_then(|p| p.as_str())
                    && !Path::new(p).is_file()
                {
                    missing.push(format!("  item {:?}: {f} {p}", it.id));
                }
            }
        }
    }
    if !missing.is_empty() {
        let n = missing.len();
        missing.truncate(20);
        bail!(
            "{shown}: {n} file(s) named by items do not exist:\n{}",
            missing.join("\n")
        );
    }
    Ok(summary(&shown, &m))
}

fn summary(shown: &str, m: &Manifest) -> String {
    let n = m.items.len();
    let count = |s: Split| m.items.iter().filter(|i| i.split == Some(s)).count();
    let has = |f: &str| m.items.iter().filter(|i| i.field(f).is_some()).count();
    let fields: Vec<String> = PATH_FIELDS
        .iter()
        .filter(|f| has(f) > 0)
        .map(|f| format!("{f} {}", has(f)))
        .collect();
    let steps: Vec<&str> = m.provenance.iter().map(|s| s.stage.as_str()).collect();
    let mut out = format!(
        "{shown}: ok: {n} items (train {}, valid {}), {} classes; {}; made by {}",
        count(Split::Train),
        count(Split::Valid),
        m.classes.len(),
        if fields.is_empty() {
            "no files".to_string()
        } else {
            fields.join(", ")
        },
        if steps.is_empty() {
            "-".to_string()
        } else {
            steps.join(" → ")
        },
    );
    let total: u64 = m.classes.iter().filter_map(|c| c.pixels).sum();
    if total > 0 {
        let balance: Vec<String> = m
            .classes
            .iter()
            .filter_map(|c| {
                c.pixels
                    .map(|p| format!("{} {:.1}%", c.name, 100.0 * p as f64 / total as f64))
            })
            .collect();
        out.push_str(&format!("\n  class balance: {}", balance.join(", ")));
    }
    let off: u64 = m.items.iter().filter_map(|i| i.off_palette).sum();
    if total > 0 {
        out.push_str(&format!(
            "\n  off-palette label pixels: {off} ({:.2}%)",
            100.0 * off as f64 / total as f64
        ));
    }
    out
}
