//! Writing an evaluation's files: `eval.json` ([`crate::eval_file`]), the tables
//! ([`crate::tables`]) and the pictures ([`crate::pictures`]). The types and functions other
//! code names as `report::…` are re-exported here.

use std::path::Path;

use anyhow::Result;
use facepipe_core::io::{InputFile, write_atomic};
use unet::inference::{Model, Weights};

use crate::ItemResult;
use facepipe_formats::tag;

pub use crate::eval_file::*;
pub use crate::pictures::{colourise, confusion_png, overlay};
use crate::pictures::{write_confusion_png, write_contact_sheet};
use crate::tables::per_image_csv;
pub use crate::tables::{confusion_csv, log_summary, report_md, summary};

/// The files [`write_all`] may write at the top of the output folder.
pub const FILES: [&str; 6] = [
    "per_image.csv",
    "confusion.csv",
    "confusion.png",
    "contact_sheet.png",
    "report.md",
    "eval.json",
];

/// Writes `eval.json`, the CSVs, the pictures and the report; returns what `eval.json` holds.
pub fn write_all(
    out_dir: &Path,
    model: &Model,
    manifest: &InputFile,
    settings: &Settings,
    results: &[ItemResult],
    throughput: Throughput,
    scope: &Scope,
) -> Result<EvalFile> {
    let classes = &model.info.classes;
    let groups = groups(results, classes, scope.any_split);
    let mut files = vec!["masks/".to_string(), "colour/".into(), "overlay/".into()];
    let mut sheet = false;
    if let Some(h) = groups.first() {
        per_image_csv(&out_dir.join("per_image.csv"), results, classes, scope.any_split)?;
        confusion_csv(&out_dir.join("confusion.csv"), &h.full_resolution, classes)?;
        write_confusion_png(out_dir, h, classes)?;
        files.extend(["per_image.csv", "confusion.csv", "confusion.png"].map(String::from));
        sheet = write_contact_sheet(out_dir, results, classes, h, scope)?;
        if sheet {
            files.push("contact_sheet.png".into());
        }
    }
    files.extend(["report.md", "eval.json"].map(String::from));
    let labelled = results.iter().filter(|r| r.full.is_some()).count();
    let eval = EvalFile {
        schema: tag::EVAL.tag.into(),
        schema_version: tag::EVAL.version,
        model: model_ref(model, settings.weights)?,
        manifest: manifest.clone(),
        settings: settings.clone(),
        classes: classes.clone(),
        items: results.len(),
        labelled,
        unlabelled: results.len() - labelled,
        headline: groups.first().map(|g| g.name.clone()),
        groups,
        throughput,
        files,
        shard: scope.shard.map(|s| s.to_string()),
        shards: vec![],
        facepipe_version: facepipe_core::VERSION.into(),
    };
    write_atomic(&out_dir.join("report.md"), report_md(&eval, sheet).as_bytes())?;
    facepipe_core::io::write_json(&out_dir.join("eval.json"), &eval)?;
    Ok(eval)
}

/// The model as `eval.json` records it: where, which weights, their hashes, and the
/// training's record of those weights.
fn model_ref(model: &Model, weights: Weights) -> Result<ModelRef> {
    let record = match weights {
        Weights::Best => &model.info.best.record,
        Weights::Last => &model.info.last.record,
    };
    Ok(ModelRef {
        dir: model.dir.display().to_string(),
        model_json_sha256: model.model_json.sha256.clone(),
        weights: model.which,
        weights_file: model.weights.display().to_string(),
        weights_sha256: model.weights_file.sha256.clone(),
        arch: model.info.arch.to_string(),
        input_size: model.input_size(),
        n_valid: model.info.n_valid,
        training_record: serde_json::to_value(record)?,
    })
}
