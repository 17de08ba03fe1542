//! Writing an evaluation's files: `eval.json` ([`crate::eval_file`]), the tables
//! ([`crate::tables`]) and the pictures ([`crate::pictures`]). The types and functions other
//! code names as `report::…` are re-exported here.

use std::path::Path;

use anyhow::Result;
use facepipe_core::io::{InputFile, write_atomic};
use unet::inference::{Model, Weights};

use crate::{EVAL_FORMAT, ItemResult};

pub use crate::eval_file::*;
use crate::pictures::{SheetRow, contact_sheet, sheet_row};
pub use crate::pictures::{colourise, confusion_png, overlay};
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

/// What part of a run the results are, and how many images the contact sheet shows.
#[derive(Clone, Copy, Debug)]
pub struct Scope {
    /// Worst and best images on the contact sheet (each).
    pub contact: usize,
    /// Whether any item of the whole run (every shard) has a split; see [`groups`].
    pub any_split: bool,
    /// The part (`--shard K/N`), if not the whole input.
    pub shard: Option<facepipe_core::shard::Shard>,
}

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
    let Scope {
        contact,
        any_split,
        shard,
    } = *scope;
    let classes = &model.info.classes;
    let groups = groups(results, classes, any_split);
    let headline = groups.first().map(|g| g.name.clone());
    let mut files = vec!["masks/".to_string(), "colour/".into(), "overlay/".into()];
    let labelled = results.iter().filter(|r| r.full.is_some()).count();
    let mut sheet = false;
    if let Some(h) = groups.first() {
        per_image_csv(&out_dir.join("per_image.csv"), results, classes, any_split)?;
        confusion_csv(&out_dir.join("confusion.csv"), &h.full_resolution, classes)?;
        let title = format!("confusion matrix: {} ({} images), full resolution", h.name, h.images);
        facepipe_plot::save_png(
            &out_dir.join("confusion.png"),
            &confusion_png(&h.full_resolution, classes, &title),
        )?;
        files.extend(["per_image.csv", "confusion.csv", "confusion.png"].map(String::from));
        // contact sheet: the headline group's worst and best images
        let mut ranked: Vec<(f64, &ItemResult)> = results
            .iter()
            .filter(|r| group_name(r, any_split) == h.name)
            .filter_map(|r| r.full.as_ref().and_then(|c| rank_score(c, classes)).map(|s| (s, r)))
            .collect();
        ranked.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.id.cmp(&b.1.id)));
        if contact > 0 && !ranked.is_empty() {
            let worst: Vec<&ItemResult> = ranked.iter().take(contact).map(|x| x.1).collect();
            let n_best = contact.min(ranked.len() - worst.len());
            let best: Vec<&ItemResult> = ranked.iter().rev().take(n_best).map(|x| x.1).collect();
            let side = 150;
            let rows = |list: &[&ItemResult]| -> Result<Vec<SheetRow>> {
                list.iter()
                    .map(|r| sheet_row(r, out_dir, classes, r.mask.as_deref().expect("labelled"), side))
                    .collect()
            };
            let mut sections = vec![(
                format!("worst {} of {} ({})", worst.len(), ranked.len(), h.name),
                rows(&worst)?,
            )];
            if !best.is_empty() {
                sections.push((format!("best {}", best.len()), rows(&best)?));
            }
            facepipe_plot::save_png(
                &out_dir.join("contact_sheet.png"),
                &contact_sheet(&sections, classes, side),
            )?;
            files.push("contact_sheet.png".into());
            sheet = true;
        }
    }
    files.extend(["report.md", "eval.json"].map(String::from));
    let record = match settings.weights {
        Weights::Best => &model.info.best.record,
        Weights::Last => &model.info.last.record,
    };
    let eval = EvalFile {
        format: EVAL_FORMAT.into(),
        format_version: 1,
        model: ModelRef {
            dir: model.dir.display().to_string(),
            model_json_sha256: model.model_json.sha256.clone(),
            weights: model.which,
            weights_file: model.weights.display().to_string(),
            weights_sha256: model.weights_file.sha256.clone(),
            arch: model.info.arch.to_string(),
            input_size: model.input_size(),
            n_valid: model.info.n_valid,
            training_record: serde_json::to_value(record)?,
        },
        manifest: manifest.clone(),
        settings: settings.clone(),
        classes: classes.clone(),
        items: results.len(),
        labelled,
        unlabelled: results.len() - labelled,
        headline,
        groups,
        throughput,
        files,
        shard: shard.map(|s| s.to_string()),
        shards: vec![],
        facepipe_version: facepipe_core::VERSION.into(),
    };
    write_atomic(&out_dir.join("report.md"), report_md(&eval, sheet).as_bytes())?;
    facepipe_core::io::write_json(&out_dir.join("eval.json"), &eval)?;
    Ok(eval)
}
