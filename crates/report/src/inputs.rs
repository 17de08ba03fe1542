//! The files the report reads, each parsed into the few fields the page shows. Errors name the
//! file and, for JSON, the field.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, ensure};
use facepipe_core::Class;
use facepipe_core::io::InputFile;
use facepipe_core::manifest::Loaded;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::{Config, resolve};

/// Everything the page is built from.
#[derive(Debug, Default)]
pub struct Inputs {
    pub manifest: Option<Loaded>,
    pub model: Option<Model>,
    pub eval: Option<Eval>,
    pub cheeks: Vec<Cheeks>,
}

impl Inputs {
    /// Reads what `cfg` names; any input that cannot be read is an error naming it.
    pub fn read(cfg: &Config) -> Result<Inputs> {
        Ok(Inputs {
            manifest: cfg.manifest.as_deref().map(facepipe_core::Manifest::read).transpose()?,
            model: cfg.model.as_deref().map(Model::read).transpose()?,
            eval: cfg.eval.as_deref().map(Eval::read).transpose()?,
            cheeks: cfg.cheeks.iter().map(|p| Cheeks::read(p)).collect::<Result<_>>()?,
        })
    }
}

/// A JSON file of a known `format`, parsed with the failing field named.
fn read_json<T: DeserializeOwned>(path: &Path, format: &str, made_by: &str) -> Result<T> {
    let bytes = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let head: serde_json::Value =
        serde_json::from_slice(&bytes).with_context(|| format!("{}: not JSON", path.display()))?;
    let found = head.get("format").and_then(|f| f.as_str()).unwrap_or("");
    ensure!(
        found == format,
        "{}: format {found:?} is not {format:?} (is it {made_by}'s output?)",
        path.display()
    );
    serde_path_to_error::deserialize(head).with_context(|| format!("{}: unexpected content", path.display()))
}

/// An optional picture a stage wrote beside its report.
fn picture(path: PathBuf) -> Option<PathBuf> {
    path.is_file().then_some(path)
}

// ---- unet-train ----

/// `model.json` and `metrics.csv` of a model directory.
#[derive(Debug)]
pub struct Model {
    pub dir: PathBuf,
    pub info: ModelInfo,
    pub metrics: Vec<MetricsRow>,
    /// sha256 of its `model.json`: what an evaluation or a predictions manifest records of
    /// the model it used.
    pub model_json_sha256: String,
}

#[derive(Debug, Deserialize)]
pub struct ModelInfo {
    pub arch: String,
    pub classes: Vec<Class>,
    pub preprocessing: Preprocessing,
    pub best: Weights,
    pub last: Weights,
    pub recipe: serde_json::Value,
    pub n_train: usize,
    pub n_valid: usize,
    pub batch_size: usize,
    pub seed: u64,
    pub device: String,
    pub pretrained: Option<serde_json::Value>,
    #[serde(default)]
    pub lr_find: Vec<LrFind>,
    #[serde(default)]
    pub fit_lrs: Vec<serde_json::Value>,
    pub epochs: usize,
    pub manifest: String,
    pub manifest_sha256: String,
    pub facepipe_version: String,
}

#[derive(Debug, Deserialize)]
pub struct Preprocessing {
    pub input_size: u32,
}

#[derive(Debug, Deserialize)]
pub struct Weights {
    pub record: Option<Record>,
}

/// One epoch as model.json records its best and last.
#[derive(Debug, Deserialize)]
pub struct Record {
    pub phase: String,
    pub epoch: usize,
    pub train_loss: f64,
    pub valid_loss: f64,
    pub mean_iou_fg: f64,
    pub mean_dice_fg: f64,
    pub pixel_accuracy: f64,
}

#[derive(Debug, Deserialize)]
pub struct LrFind {
    pub lrs: Vec<f64>,
    pub losses: Vec<Option<f64>>,
    pub suggestions: Option<Suggestions>,
    #[serde(default)]
    pub untrusted: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct Suggestions {
    pub valley: f64,
    pub minimum: f64,
    pub steep: f64,
}

/// One line of `metrics.csv`: the fixed columns, and the per-class IoU and learning rates by
/// column name.
#[derive(Debug)]
pub struct MetricsRow {
    pub phase: String,
    pub epoch: usize,
    pub train_loss: f64,
    pub valid_loss: f64,
    pub mean_iou_fg: f64,
    /// `iou_<class>` columns in file order (empty cell: class absent from the validation set).
    pub iou: Vec<(String, Option<f64>)>,
    /// `lr_group<k>` columns in file order.
    pub lrs: Vec<f64>,
}

impl Model {
    fn read(dir: &Path) -> Result<Model> {
        let info: ModelInfo = read_json(&dir.join("model.json"), "facepipe.model", "unet-train")?;
        let metrics = read_metrics(&dir.join("metrics.csv"))?;
        let model_json_sha256 = facepipe_core::io::read_input(&dir.join("model.json"))?.1.sha256;
        Ok(Model {
            dir: dir.to_path_buf(),
            info,
            metrics,
            model_json_sha256,
        })
    }

    pub fn loss_png(&self) -> Option<PathBuf> {
        picture(self.dir.join("loss.png"))
    }
}

fn read_metrics(path: &Path) -> Result<Vec<MetricsRow>> {
    let mut r = csv::Reader::from_path(path).with_context(|| format!("reading {}", path.display()))?;
    let headers = r
        .headers()
        .with_context(|| format!("{}: no header", path.display()))?
        .clone();
    let col = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .with_context(|| format!("{}: no column {name:?}", path.display()))
    };
    let fixed = [
        col("phase")?,
        col("epoch")?,
        col("train_loss")?,
        col("valid_loss")?,
        col("mean_iou_fg")?,
    ];
    let with = |prefix: &str| -> Vec<(usize, String)> {
        headers
            .iter()
            .enumerate()
            .filter_map(|(i, h)| h.strip_prefix(prefix).map(|n| (i, n.to_string())))
            .collect()
    };
    let (iou_cols, lr_cols) = (with("iou_"), with("lr_group"));
    let mut rows = vec![];
    for (line, rec) in r.records().enumerate() {
        let rec = rec.with_context(|| format!("{}: line {}", path.display(), line + 2))?;
        let num = |i: usize| -> Result<Option<f64>> {
            let cell = rec.get(i).unwrap_or("");
            if cell.is_empty() {
                return Ok(None);
            }
            cell.parse().map(Some).with_context(|| {
                format!(
                    "{}: line {}, column {:?}: {cell:?} is not a number",
                    path.display(),
                    line + 2,
                    &headers[i]
                )
            })
        };
        let need = |i: usize| -> Result<f64> {
            num(i)?.with_context(|| format!("{}: line {}: {:?} is empty", path.display(), line + 2, &headers[i]))
        };
        rows.push(MetricsRow {
            phase: rec.get(fixed[0]).unwrap_or("").to_string(),
            epoch: need(fixed[1])? as usize,
            train_loss: need(fixed[2])?,
            valid_loss: need(fixed[3])?,
            mean_iou_fg: need(fixed[4])?,
            iou: iou_cols
                .iter()
                .map(|(i, n)| Ok((n.clone(), num(*i)?)))
                .collect::<Result<_>>()?,
            lrs: lr_cols.iter().map(|(i, _)| need(*i)).collect::<Result<_>>()?,
        });
    }
    Ok(rows)
}

// ---- unet-eval ----

/// `eval.json` of a unet-eval directory and its pictures.
#[derive(Debug)]
pub struct Eval {
    pub dir: PathBuf,
    pub info: EvalInfo,
}

#[derive(Debug, Deserialize)]
pub struct EvalInfo {
    pub model: EvalModel,
    /// The manifest unet-eval read.
    #[serde(default)]
    pub manifest: Option<InputFile>,
    pub settings: serde_json::Value,
    pub classes: Vec<Class>,
    pub items: usize,
    pub labelled: usize,
    pub headline: Option<String>,
    pub groups: Vec<Group>,
    pub throughput: Option<Throughput>,
}

#[derive(Debug, Deserialize)]
pub struct EvalModel {
    pub arch: String,
    pub input_size: u32,
    pub weights: String,
    #[serde(default)]
    pub model_json_sha256: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct Group {
    pub name: String,
    pub images: usize,
    pub full_resolution: Scores,
    pub model_resolution: Option<Scores>,
}

#[derive(Debug, Deserialize)]
pub struct Scores {
    pub pixel_accuracy: f64,
    pub mean_dice: f64,
    pub mean_iou: f64,
    pub mean_dice_fg: f64,
    pub mean_iou_fg: f64,
    pub per_class: Vec<ClassScore>,
    /// Rows: true class, columns: predicted class.
    pub confusion: Vec<Vec<u64>>,
}

#[derive(Debug, Deserialize)]
pub struct ClassScore {
    pub name: String,
    pub truth_pixels: u64,
    pub pred_pixels: u64,
    pub dice: Option<f64>,
    pub iou: Option<f64>,
}

#[derive(Debug, Deserialize)]
pub struct Throughput {
    pub images_per_s: f64,
}

impl Eval {
    fn read(dir: &Path) -> Result<Eval> {
        let info: EvalInfo = read_json(&dir.join("eval.json"), "facepipe.eval", "unet-eval")?;
        Ok(Eval {
            dir: dir.to_path_buf(),
            info,
        })
    }

    pub fn contact_sheet(&self) -> Option<PathBuf> {
        picture(self.dir.join("contact_sheet.png"))
    }
}

// ---- cheek-lab ----

/// A cheek-lab report, its CSV's measured and reference values, and its QC sheet.
#[derive(Debug)]
pub struct Cheeks {
    pub path: PathBuf,
    pub info: CheekInfo,
    /// Measured and reference L*, a*, b* of every cheek with both (left, then right, per face).
    pub pairs: Vec<CheekPair>,
    /// Why the CSV was not read (none written, or to stdout).
    pub no_csv: Option<String>,
    pub qc_sheet: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
pub struct CheekInfo {
    pub input: InputFile,
    pub facepipe_version: String,
    pub mask_field: String,
    pub white_point: String,
    pub items: usize,
    pub faces: usize,
    pub cheeks_measured: usize,
    pub cheeks_not_measurable: usize,
    pub not_measurable: BTreeMap<String, usize>,
    pub fwhr_measured: usize,
    #[serde(default)]
    pub warnings: Vec<String>,
    pub agreement: Option<Agreement>,
    #[serde(default)]
    pub csv: Option<String>,
    #[serde(default)]
    pub qc_dir: Option<String>,
    pub faces_mode: String,
    pub averaging: String,
    pub patch_px: f64,
    pub reference_face_width: f64,
    pub min_skin: f64,
}

#[derive(Debug, Deserialize)]
pub struct Agreement {
    pub reference: InputFile,
    pub faces_joined: usize,
    pub faces_without_reference: usize,
    pub cheeks_compared: usize,
    pub delta_e76: Spread,
    pub delta_e2000: Spread,
    pub channels: Vec<Channel>,
}

#[derive(Debug, Deserialize)]
pub struct Spread {
    pub n: usize,
    pub median: Option<f64>,
    pub mean: Option<f64>,
    pub p90: Option<f64>,
    pub max: Option<f64>,
}

#[derive(Debug, Deserialize)]
pub struct Channel {
    pub channel: String,
    pub n: usize,
    pub pearson_r: Option<f64>,
    pub mean_bias: Option<f64>,
    pub mean_abs_diff: Option<f64>,
}

/// One cheek: which side, measured L*a*b*, reference L*a*b*.
#[derive(Debug, Clone, Copy)]
pub struct CheekPair {
    pub left: bool,
    pub measured: [f64; 3],
    pub reference: [f64; 3],
}

impl Cheeks {
    fn read(path: &Path) -> Result<Cheeks> {
        let info: CheekInfo = read_json(path, "facepipe.cheek-lab", "cheek-lab")?;
        let base = path.parent().unwrap_or(Path::new("."));
        let (pairs, no_csv) = match &info.csv {
            Some(csv) => (read_pairs(&resolve(base, csv))?, None),
            None => (
                vec![],
                Some("the report names no CSV (written to stdout, or by an older cheek-lab)".into()),
            ),
        };
        let qc_sheet = info
            .qc_dir
            .as_deref()
            .and_then(|d| picture(resolve(base, d).join("contact_sheet.png")));
        Ok(Cheeks {
            path: path.to_path_buf(),
            info,
            pairs,
            no_csv,
            qc_sheet,
        })
    }
}

/// The cheeks of cheek-lab's CSV that have both a measurement and a reference value.
fn read_pairs(path: &Path) -> Result<Vec<CheekPair>> {
    let mut r = csv::Reader::from_path(path)
        .with_context(|| format!("reading {} (the cheek-lab CSV its report names)", path.display()))?;
    let headers = r
        .headers()
        .with_context(|| format!("{}: no header", path.display()))?
        .clone();
    let cols = |side: &str, what: &str| -> Option<[usize; 3]> {
        let one = |c: &str| headers.iter().position(|h| h == format!("{side}_{what}{c}"));
        Some([one("L")?, one("a")?, one("b")?])
    };
    let mut sides = vec![];
    for (left, side) in [(true, "left"), (false, "right")] {
        if let (Some(m), Some(rf)) = (cols(side, ""), cols(side, "ref_")) {
            sides.push((left, m, rf));
        }
    }
    let mut pairs = vec![];
    for (line, rec) in r.records().enumerate() {
        let rec = rec.with_context(|| format!("{}: line {}", path.display(), line + 2))?;
        let lab = |c: [usize; 3]| -> Option<[f64; 3]> {
            let v = |i: usize| rec.get(i).and_then(|s| s.parse::<f64>().ok());
            Some([v(c[0])?, v(c[1])?, v(c[2])?])
        };
        for &(left, m, rf) in &sides {
            if let (Some(measured), Some(reference)) = (lab(m), lab(rf)) {
                pairs.push(CheekPair {
                    left,
                    measured,
                    reference,
                });
            }
        }
    }
    Ok(pairs)
}
