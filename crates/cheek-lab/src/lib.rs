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
pub mod faces;
pub mod measure;
pub mod merge;
pub mod qc;
pub mod reference;
pub mod report;
pub mod table;

pub(crate) use agreement::{Joined, RefInput, assemble};
pub use report::*;
use table::{CSV_SIGNATURE, csv_bytes};

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use facepipe_core::colour::{self, WhitePoint};
use facepipe_core::io::read_input;
use facepipe_core::shard::Shard;
use facepipe_core::{Item, Manifest, Output};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use faces::{Cheek, Placement, Roles};
use measure::{Averaging, CheekResult};

pub const STAGE: &str = "cheek-lab";
pub const REPORT_FORMAT: &str = "facepipe.cheek-lab";

/// Which faces of an image to measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Faces {
    /// The largest face region only (the subject).
    Largest,
    /// Every face region (connected components), largest first.
    All,
}

/// Which of our columns matches the reference's id column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum JoinOn {
    /// `ID#FACE` (face 0 = largest): the demo's `participant_id`.
    FaceId,
    /// The item id (one face per image).
    Id,
}

/// Class names of the roles.
#[derive(Clone, Debug)]
pub struct ClassNames {
    pub skin: String,
    pub eyes: String,
    pub nose: String,
    pub lips: String,
    pub brows: String,
    /// Glasses (their lenses place the eyes when sunglasses hide them); ignored when absent
    /// from the palette.
    pub glasses: String,
    /// Every class that is part of a face (not hair, not ears).
    pub face_region: Vec<String>,
}

impl Default for ClassNames {
    /// The Mut1ny palette's names.
    fn default() -> Self {
        ClassNames {
            skin: "general face".into(),
            eyes: "eyes".into(),
            nose: "nose".into(),
            lips: "lips".into(),
            brows: "eyebrows".into(),
            glasses: "specs/sunglasses".into(),
            face_region: [
                "general face",
                "eyes",
                "nose",
                "lips",
                "eyebrows",
                "teeth",
                "facial hair",
                "specs/sunglasses",
            ]
            .map(String::from)
            .to_vec(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Config {
    pub input: PathBuf,
    pub output: PathBuf,
    pub mask_field: String,
    pub reference: Option<PathBuf>,
    pub ref_columns: reference::Columns,
    pub join: JoinOn,
    pub report: Option<PathBuf>,
    pub qc_dir: Option<PathBuf>,
    pub faces: Faces,
    pub white: WhitePoint,
    pub averaging: Averaging,
    /// Patch side at the reference face width.
    pub patch_px: f64,
    pub reference_face_width: f64,
    /// Smallest share of the patch that must be skin.
    pub min_skin: f64,
    pub classes: ClassNames,
    pub placement: Placement,
    pub force: bool,
    /// Measure only this part of the input's items (`--shard K/N`); the report then holds
    /// every row, for [`merge`].
    pub shard: Option<Shard>,
}

/// One face's row.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FaceRow {
    pub id: String,
    pub face: usize,
    pub face_id: String,
    pub image: String,
    pub mask: String,
    pub faces_in_image: usize,
    pub face_pixels: usize,
    pub eye_distance_px: Option<f64>,
    pub face_width_px: Option<f64>,
    /// What the patch size was scaled from.
    pub scale_from: Cow<'static, str>,
    /// The eyes were placed from sunglasses.
    pub eyes_from_glasses: bool,
    pub patch_px: u32,
    pub fwhr: Option<f64>,
    pub fwhr_reason: String,
    pub left: CheekResult,
    pub right: CheekResult,
    #[serde(skip)]
    pub eyes: Vec<faces::P>,
    #[serde(skip)]
    pub label: u32,
}

/// An item's faces (or the reason there are none).
#[derive(Clone, Debug)]
pub struct ItemResult {
    pub rows: Vec<FaceRow>,
    pub warnings: Vec<String>,
    /// For the QC pictures.
    pub image: Option<PathBuf>,
    pub mask: Option<PathBuf>,
}

fn roles(classes: &[facepipe_core::Class], names: &ClassNames, shown: &str) -> Result<Roles> {
    let find =
        |n: &str| -> Result<u8> {
            classes.iter().find(|c| c.name.eq_ignore_ascii_case(n)).map(|c| c.id).with_context(|| {
            format!(
                "class {n:?} is not among the classes of {shown} ({}); name the classes with the --*-class flags",
                classes.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")
            )
        })
        };
    let mut face_region = [false; 256];
    for n in &names.face_region {
        face_region[usize::from(find(n)?)] = true;
    }
    let r = Roles {
        skin: find(&names.skin)?,
        eyes: find(&names.eyes)?,
        nose: find(&names.nose)?,
        lips: find(&names.lips)?,
        brows: find(&names.brows)?,
        glasses: find(&names.glasses).ok(),
        face_region,
    };
    for c in [r.skin, r.eyes, r.nose, r.lips, r.brows] {
        face_region[usize::from(c)] = true;
    }
    Ok(Roles { face_region, ..r })
}

/// Reads a photo as 8-bit sRGB; warns when it embeds an ICC profile that is not sRGB.
fn read_photo(path: &Path) -> Result<(image::RgbImage, Option<String>)> {
    use image::ImageDecoder as _;
    let shown = path.display();
    let mut dec = facepipe_core::images::decoder(path, "image")?;
    let icc = dec.icc_profile().ok().flatten();
    let warn = icc.filter(|p| !p.windows(4).any(|w| w == b"sRGB")).map(|_| {
        format!("image {shown} embeds an ICC profile that is not sRGB; its values are measured as if they were sRGB")
    });
    let img = image::DynamicImage::from_decoder(dec)
        .with_context(|| format!("cannot decode image {shown}"))?
        .to_rgb8();
    Ok((img, warn))
}

fn measure_item(it: &Item, cfg: &Config, roles: &Roles, n_classes: usize) -> Result<ItemResult> {
    let image = it.image.as_ref().map(PathBuf::from);
    let mask_path = it.field(&cfg.mask_field).and_then(|v| v.as_str().map(PathBuf::from));
    let shown = |p: &Option<PathBuf>| p.as_ref().map_or(String::new(), |p| p.display().to_string());
    let empty_row = |reason: &str| FaceRow {
        id: it.id.clone(),
        face: 0,
        face_id: format!("{}#0", it.id),
        image: shown(&image),
        mask: shown(&mask_path),
        faces_in_image: 0,
        face_pixels: 0,
        eye_distance_px: None,
        face_width_px: None,
        scale_from: "".into(),
        eyes_from_glasses: false,
        patch_px: 0,
        fwhr: None,
        fwhr_reason: reason.into(),
        left: CheekResult::missing(reason),
        right: CheekResult::missing(reason),
        eyes: vec![],
        label: 0,
    };
    let (Some(img_path), Some(mp)) = (&image, &mask_path) else {
        let why = if image.is_none() {
            "item has no image".to_string()
        } else {
            format!("item has no {}", cfg.mask_field)
        };
        return Ok(ItemResult {
            rows: vec![empty_row(&why)],
            warnings: vec![],
            image,
            mask: mask_path,
        });
    };
    let (photo, warn) = read_photo(img_path)?;
    let mask = facepipe_core::mask::read(mp, n_classes)?;
    ensure!(
        photo.dimensions() == mask.dimensions(),
        "image {} is {}×{} but its {} {} is {}×{}",
        img_path.display(),
        photo.width(),
        photo.height(),
        cfg.mask_field,
        mp.display(),
        mask.width(),
        mask.height()
    );
    let (w, h) = (photo.width() as usize, photo.height() as usize);
    let (labels, found) = faces::find_faces(mask.as_raw(), w, h, roles, &cfg.placement);
    let n_found = found.len();
    let mut rows = Vec::new();
    for (k, f) in found.into_iter().enumerate() {
        if cfg.faces == Faces::Largest && k > 0 {
            break;
        }
        let (scale, scale_from) = match (f.width, f.eye_distance) {
            (Some(wd), _) => (Some(wd), "face width"),
            // the face width of the reference geometry is about 2.6 eye distances
            (None, Some(d)) => (Some(2.6 * d), "eye distance"),
            _ => (None, ""),
        };
        let side = scale.map_or(0, |s| {
            (cfg.patch_px * s / cfg.reference_face_width).round().max(3.0) as u32
        });
        let cheek = |c: &Cheek| -> CheekResult {
            match c {
                Cheek::Missing(why) => CheekResult::missing(why),
                Cheek::At(p) => measure::measure(
                    &photo,
                    mask.as_raw(),
                    &labels,
                    f.label,
                    roles.skin,
                    *p,
                    side,
                    cfg.min_skin,
                    cfg.white,
                    cfg.averaging,
                ),
            }
        };
        rows.push(FaceRow {
            id: it.id.clone(),
            face: k,
            face_id: format!("{}#{k}", it.id),
            image: shown(&image),
            mask: shown(&mask_path),
            faces_in_image: n_found,
            face_pixels: f.pixels.len(),
            eye_distance_px: f.eye_distance,
            face_width_px: f.width,
            scale_from: scale_from.into(),
            eyes_from_glasses: f.eyes_from_glasses,
            patch_px: side,
            fwhr: f.fwhr.clone().ok(),
            fwhr_reason: f.fwhr.clone().err().unwrap_or_default(),
            left: cheek(&f.left),
            right: cheek(&f.right),
            eyes: f.eyes.clone(),
            label: f.label,
        });
    }
    if rows.is_empty() {
        rows.push(empty_row("no face in the mask"));
    }
    Ok(ItemResult {
        rows,
        warnings: warn.into_iter().collect(),
        image,
        mask: mask_path,
    })
}

fn is_png(b: &[u8]) -> bool {
    b.starts_with(b"\x89PNG\r\n\x1a\n")
}

fn is_report(b: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(b).is_ok_and(|v| v["format"] == REPORT_FORMAT)
}

/// Locks and checks the outputs before any work: the CSV, the report and the scatter plot
/// beside it, the QC folder. Returns the locks (keep them until the CSV is written) and the
/// scatter plot's path.
fn guard_outputs(
    output: &Path,
    report: Option<&Path>,
    qc_dir: Option<&Path>,
    force: bool,
) -> Result<(facepipe_core::out::Locks, Option<PathBuf>)> {
    let stdout = Path::new("-");
    ensure!(
        !(output == stdout && report == Some(stdout)),
        "-o and --report cannot both be `-` (stdout)"
    );
    let scatter = report.filter(|r| *r != stdout).map(scatter_path);
    let mut outputs: Vec<&Path> = vec![output];
    // the scatter plot is named after the report, so the report's lock covers it
    outputs.extend(report);
    outputs.extend(qc_dir);
    let locks = facepipe_core::out::lock_outputs(STAGE, outputs)?;
    use facepipe_core::out::check_file as check;
    check(output, "-o", "a cheek-lab CSV", force, |b: &[u8]| {
        b.starts_with(CSV_SIGNATURE.as_bytes())
    })?;
    if let Some(r) = report {
        check(r, "--report", "a cheek-lab report", force, is_report)?;
    }
    if let Some(s) = &scatter {
        check(s, "the scatter plot beside --report", "a PNG", force, is_png)?;
    }
    Ok((locks, scatter))
}

/// Writes the scatter plot (with a reference), the report and, last, the CSV.
fn write_outputs(
    output: &Path,
    report_path: Option<&Path>,
    scatter: Option<&Path>,
    report: &Report,
    csv: &[u8],
    rows: &[FaceRow],
    joined: Option<&Joined>,
) -> Result<()> {
    if let Some(p) = report_path {
        if let (Some(j), Some(s)) = (joined, scatter) {
            qc::scatter(s, rows, &j.per_face)?;
        }
        Output::parse(p).write(&facepipe_core::io::json_bytes(report)?)?;
    }
    Output::parse(output).write(csv)
}

/// Measures every item of the manifest (or of its `--shard` part) and writes the CSV (last),
/// the report and the QC pictures; returns the report.
pub fn run(cfg: &Config, progress: &indicatif::ProgressBar) -> Result<Report> {
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
    if cfg.shard.is_some() {
        ensure!(
            cfg.report.as_deref().is_some_and(|r| r != Path::new("-")),
            "--shard needs --report FILE: the shard's rows go there for --merge"
        );
    }
    let (_locks, scatter) = guard_outputs(&cfg.output, cfg.report.as_deref(), cfg.qc_dir.as_deref(), cfg.force)?;
    let mut qc_folder = match &cfg.qc_dir {
        Some(d) => Some(qc::inspect(d, cfg.force)?),
        None => None,
    };
    let loaded = Manifest::read(&cfg.input)?;
    let shown = cfg.input.display().to_string();
    let m = &loaded.manifest;
    ensure!(!m.items.is_empty(), "manifest {shown} has no items");
    ensure!(
        !m.classes.is_empty(),
        "manifest {shown} has no classes: cheek-lab needs the palette to know which class is skin"
    );
    let roles = roles(&m.classes, &cfg.classes, &shown)?;
    let with_mask = m.items.iter().filter(|it| it.field(&cfg.mask_field).is_some()).count();
    if with_mask == 0 {
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
    // the checks above are over every item; a shard measures its part
    let items: Vec<&Item> = match cfg.shard {
        Some(s) => {
            let ids: Vec<&str> = m.items.iter().map(|it| it.id.as_str()).collect();
            let mine: Vec<&Item> = s.select(&ids).into_iter().map(|i| &m.items[i]).collect();
            log::info!("shard {s}: {} of {} items", mine.len(), m.items.len());
            mine
        }
        None => m.items.iter().collect(),
    };

    progress.set_length(items.len() as u64);
    let n_classes = m.classes.len();
    let results: Vec<ItemResult> = items
        .par_iter()
        .map(|it| {
            let r = measure_item(it, cfg, &roles, n_classes).with_context(|| format!("item {:?}", it.id));
            progress.inc(1);
            r
        })
        .collect::<Result<_>>()?;
    progress.finish_and_clear();
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
    let ref_input = reference.as_ref().map(|(data, input)| RefInput {
        data,
        input,
        shown: &reference_shown,
        columns: &cfg.ref_columns,
        join: cfg.join,
    });
    let head = Report {
        format: REPORT_FORMAT.into(),
        format_version: 1,
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
        warnings: vec![],
        agreement: None,
        shard: cfg.shard.map(|s| ShardPart {
            shard: s.to_string(),
            reference: cfg.reference.as_deref().map(|p| p.display().to_string()),
            ref_columns: cfg.ref_columns.clone(),
            join: cfg.join,
            items: items
                .iter()
                .zip(&results)
                .map(|(it, r)| ShardItem {
                    id: it.id.clone(),
                    rows: r.rows.clone(),
                    warnings: r.warnings.clone(),
                })
                .collect(),
        }),
        shards: vec![],
        facepipe_version: facepipe_core::VERSION.into(),
    };
    let (report, csv, joined) = assemble(head, &rows, warnings, ref_input.as_ref())?;

    if let Some(d) = &cfg.qc_dir {
        let de: Vec<[Option<f64>; 2]> = match &joined {
            Some(j) => rows
                .iter()
                .zip(&j.per_face)
                .map(|(row, m)| {
                    [
                        (&row.left, m.and_then(|m| m.left)),
                        (&row.right, m.and_then(|m| m.right)),
                    ]
                    .map(|(c, rv)| c.lab.zip(rv).map(|(a, b)| colour::ciede2000(a, b)))
                })
                .collect(),
            None => vec![[None, None]; rows.len()],
        };
        let folder = qc_folder.as_mut().expect("inspected with --qc-dir");
        qc::write(folder, d, &results, &rows, &de, &m.classes, &roles)?;
    }
    write_outputs(
        &cfg.output,
        cfg.report.as_deref(),
        scatter.as_deref(),
        &report,
        &csv,
        &rows,
        joined.as_ref(),
    )?;
    Ok(report)
}
