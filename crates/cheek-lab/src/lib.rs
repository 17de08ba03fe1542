//! `cheek-lab`: left and right cheek CIE L\*a\*b\* of every face, from its segmentation.
//!
//! The reference measurements this replaces were made by hand: a person put a square of about
//! 50×50 px on each cheek in Photoshop and read the mean L\*a\*b\*. This stage places the
//! squares from the class mask ([`faces`]), averages the skin pixels inside them
//! ([`measure`]), and, with a reference CSV, says how far it is from the hand measurements
//! ([`reference`]).
//!
//! Nothing is written until every item has been measured; the CSV comes last. In parts
//! (`--shard K/N`) and joined again: see [`merge`].

pub mod agreement;
pub mod components;
pub mod config;
pub mod faces;
pub mod geometry;
mod item;
pub mod measure;
pub mod merge;
mod outputs;
pub mod qc;
pub mod reference;
pub mod report;
pub mod roles;
pub mod table;

pub(crate) use agreement::{Joined, RefInput, assemble};
pub use config::{Config, Faces, JoinOn};
pub use report::*;
pub use roles::ClassNames;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use facepipe_core::colour;
use facepipe_core::io::{InputFile, read_input};
use facepipe_core::manifest::Loaded;
use facepipe_core::shard::{Shard, ShardSpec};
use facepipe_core::{Item, Manifest};
use rayon::prelude::*;

use item::Measurer;
use outputs::Files;
use roles::Roles;

pub const STAGE: &str = "cheek-lab";

pub use facepipe_formats::cheeks::FaceRow;

/// An item's faces (or the reason there are none).
#[derive(Clone, Debug)]
pub struct ItemResult {
    pub rows: Vec<FaceRow>,
    pub warnings: Vec<String>,
    /// For the QC pictures.
    pub image: Option<PathBuf>,
    pub mask: Option<PathBuf>,
}

/// The input manifest, the roles of its classes and the reference, read and checked before any
/// item is measured.
struct Inputs {
    loaded: Loaded,
    roles: Roles,
    /// The reference's rows and its provenance record.
    reference: Option<(reference::Reference, InputFile)>,
}

/// Measures every item of the manifest (or of its `--shard` part) and writes the CSV (last),
/// the report and the QC pictures; returns the report.
pub fn run(cfg: &Config, progress: &indicatif::ProgressBar) -> Result<Report> {
    let output = cfg.output()?;
    let shard = cfg.shard.as_ref().map(ShardSpec::resolve).transpose()?;
    check_flags(cfg, shard)?;
    let mut outputs = Files::guard(output, cfg.report.as_deref(), cfg.force)?;
    let mut qc_folder = match &cfg.qc_dir {
        Some(d) => Some(outputs.qc_folder(d)?),
        None => None,
    };
    let inputs = read_inputs(cfg)?;
    let items = select(&inputs.loaded.manifest, shard);
    let results = measure_all(cfg, &inputs, &items, progress)?;
    let rows: Vec<FaceRow> = results.iter().flat_map(|r| r.rows.iter().cloned()).collect();
    let warnings: Vec<String> = results.iter().flat_map(|r| r.warnings.iter().cloned()).collect();
    for w in &warnings {
        log::warn!("{w}");
    }
    let reference_shown = cfg
        .reference
        .as_deref()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let ref_input = inputs.reference.as_ref().map(|(data, input)| RefInput {
        data,
        input,
        shown: &reference_shown,
        columns: &cfg.ref_columns,
        join: cfg.join.clone(),
    });
    let mut head = report_head(cfg, &inputs.loaded, shard, &items, &results);
    head.csv = written_path(output, cfg.report.as_deref())?;
    head.qc_dir = (cfg.qc_dir.as_deref())
        .map(|d| written_path(d, cfg.report.as_deref()))
        .transpose()?
        .flatten();
    let (report, csv, joined) = assemble(head, &rows, warnings, ref_input.as_ref())?;
    if let (Some(d), Some(folder)) = (&cfg.qc_dir, qc_folder.as_mut()) {
        let de = qc_delta_e(&rows, joined.as_ref());
        qc::write(folder, d, &results, &rows, &de, &inputs.roles)?;
    }
    outputs.write(&report, &csv, &rows, joined.as_ref())?;
    Ok(report)
}

/// What clap cannot check of the flags: ranges (for a [`Config`] built in code) and that a
/// shard has a report file to hold its rows.
fn check_flags(cfg: &Config, shard: Option<Shard>) -> Result<()> {
    ensure!(cfg.patch_px >= 3.0, "--patch-px must be at least 3");
    ensure!(
        cfg.reference_face_width > 0.0,
        "--reference-face-width must be positive"
    );
    ensure!((0.0..=1.0).contains(&cfg.min_skin), "--min-skin must be in [0, 1]");
    ensure!(
        cfg.placement.cheek_out.is_finite() && cfg.placement.cheek_down.is_finite(),
        "--cheek-out and --cheek-down must be finite numbers"
    );
    if cfg.reference.is_some() && cfg.faces == Faces::All && cfg.join != JoinOn::FaceId {
        bail!(
            "--join {} gives one reference row per photo, so with --faces all every face of a photo would be compared with it: use --join face-id (reference ids ITEM#FACE), or --faces largest",
            cfg.join
        );
    }
    if shard.is_some() {
        ensure!(
            cfg.report.as_deref().is_some_and(|r| r != Path::new("-")),
            "--shard needs --report FILE: the shard's rows go there for --merge"
        );
    }
    Ok(())
}

/// Reads the manifest (it needs items, classes naming every role, and the mask field on some
/// item) and the reference.
fn read_inputs(cfg: &Config) -> Result<Inputs> {
    let loaded = Manifest::read(&cfg.input)?;
    let shown = cfg.input.display().to_string();
    let m = &loaded.manifest;
    ensure!(!m.items.is_empty(), "manifest {shown} has no items");
    ensure!(
        !m.classes.is_empty(),
        "manifest {shown} has no classes: cheek-lab needs the palette to know which class is skin"
    );
    let roles = Roles::resolve(&m.classes, &cfg.classes, &shown)?;
    if !m.items.iter().any(|it| it.field(&cfg.mask_field).is_some()) {
        bail!(
            "no item of {shown} has a `{}`{}",
            cfg.mask_field,
            if cfg.mask_field == "pred_mask" {
                ": run unet-eval first, or measure on the true masks with --mask-field mask"
            } else {
                ""
            }
        );
    }
    let reference = match &cfg.reference {
        Some(p) => Some((reference::read(p, &cfg.ref_columns)?, read_input(p)?.1)),
        None => None,
    };
    Ok(Inputs {
        loaded,
        roles,
        reference,
    })
}

/// The items to measure: all, or the shard's part (the checks before were over every item).
fn select(m: &Manifest, shard: Option<Shard>) -> Vec<&Item> {
    match shard {
        Some(s) => {
            let ids: Vec<&str> = m.items.iter().map(|it| it.id.as_str()).collect();
            let mine: Vec<&Item> = s.select(&ids).into_iter().map(|i| &m.items[i]).collect();
            log::info!("shard {s}: {} of {} items", mine.len(), m.items.len());
            mine
        }
        None => m.items.iter().collect(),
    }
}

/// Measures the items in parallel (in order), counting them on `progress`.
fn measure_all(
    cfg: &Config,
    inputs: &Inputs,
    items: &[&Item],
    progress: &indicatif::ProgressBar,
) -> Result<Vec<ItemResult>> {
    progress.set_length(items.len() as u64);
    let measurer = Measurer {
        cfg,
        roles: &inputs.roles,
        n_classes: inputs.loaded.manifest.classes.len(),
    };
    let results = items
        .par_iter()
        .map(|it| {
            let r = measurer.item(it).with_context(|| format!("item {:?}", it.id));
            progress.inc(1);
            r
        })
        .collect::<Result<_>>()?;
    progress.finish_and_clear();
    Ok(results)
}

/// The report's settings and, for a shard, its rows; [`assemble`] fills in the counts.
fn report_head(cfg: &Config, loaded: &Loaded, shard: Option<Shard>, items: &[&Item], results: &[ItemResult]) -> Report {
    Report {
        schema: facepipe_formats::tag::CHEEK_LAB.tag.into(),
        schema_version: facepipe_formats::tag::CHEEK_LAB.version,
        input: loaded.input.clone(),
        mask_field: cfg.mask_field.clone(),
        faces_mode: cfg.faces,
        white_point: cfg.white,
        averaging: cfg.averaging,
        patch_px: cfg.patch_px,
        reference_face_width: cfg.reference_face_width,
        min_skin: cfg.min_skin,
        items: items.len(),
        faces: 0,
        cheeks_measured: 0,
        cheeks_not_measurable: 0,
        not_measurable: BTreeMap::new(),
        fwhr_measured: 0,
        colour_profiles: BTreeMap::new(),
        photos_oriented: 0,
        warnings: vec![],
        agreement: None,
        csv: None,
        qc_dir: None,
        shard: shard.map(|s| ShardPart {
            shard: s.to_string(),
            reference: cfg.reference.as_deref().map(|p| p.display().to_string()),
            ref_columns: cfg.ref_columns.clone(),
            join: cfg.join.clone(),
            items: items
                .iter()
                .zip(results)
                .map(|(it, r)| ShardItem {
                    id: it.id.clone(),
                    rows: r.rows.clone(),
                    warnings: r.warnings.clone(),
                })
                .collect(),
        }),
        shards: vec![],
        facepipe_version: facepipe_core::VERSION.into(),
    }
}

/// An output's path as the report records it: relative to the report's folder (so a run
/// folder moved to another disk or machine can still be reported), absolute when the report
/// goes to stdout; none for an output to stdout.
pub(crate) fn written_path(p: &Path, report: Option<&Path>) -> Result<Option<String>> {
    if p == Path::new("-") {
        return Ok(None);
    }
    let abs = facepipe_core::paths::absolute(p)?;
    let shown = match report.filter(|r| *r != Path::new("-")) {
        Some(r) => {
            let r = facepipe_core::paths::absolute(r)?;
            facepipe_core::paths::relative_to(&abs, r.parent().unwrap_or(Path::new("/")))
        }
        None => abs,
    };
    facepipe_core::paths::to_manifest_string(&shown).map(Some)
}

/// CIEDE2000 of each face's left and right cheek against the reference, for the QC captions
/// (none without a reference).
fn qc_delta_e(rows: &[FaceRow], joined: Option<&Joined>) -> Vec<[Option<f64>; 2]> {
    let Some(j) = joined else {
        return vec![[None, None]; rows.len()];
    };
    rows.iter()
        .zip(&j.per_face)
        .map(|(row, m)| {
            [
                (&row.left, m.and_then(|m| m.left)),
                (&row.right, m.and_then(|m| m.right)),
            ]
            .map(|(c, rv)| c.lab.zip(rv).map(|(a, b)| colour::ciede2000(a, b)))
        })
        .collect()
}
