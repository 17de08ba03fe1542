//! The files the report reads, each through the type its writer writes it with
//! (`facepipe_formats`; the dataset manifest through `facepipe_core::manifest`), so the page and
//! the stages cannot disagree on a field. Errors name the file and, for JSON, the field.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use facepipe_core::manifest::Loaded;
use facepipe_formats::cheeks::Report;
use facepipe_formats::eval::EvalFile;
use facepipe_formats::metrics::Metrics;
use facepipe_formats::model::ModelInfo;

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

/// An optional picture a stage wrote beside its report.
fn picture(path: PathBuf) -> Option<PathBuf> {
    path.is_file().then_some(path)
}

// ---- unet-train ----

/// `model.json` and `metrics.csv` of a model directory, read through unet-train's own types.
#[derive(Debug)]
pub struct Model {
    pub dir: PathBuf,
    pub info: ModelInfo,
    pub metrics: Metrics,
    /// sha256 of its `model.json`: what an evaluation or a predictions manifest records of
    /// the model it used.
    pub model_json_sha256: String,
}

impl Model {
    fn read(dir: &Path) -> Result<Model> {
        let info = ModelInfo::read(dir)?;
        let metrics = facepipe_formats::metrics::read(&dir.join("metrics.csv"))?;
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

// ---- unet-eval ----

/// `eval.json` of a unet-eval directory (read through unet-eval's own types) and its pictures.
#[derive(Debug)]
pub struct Eval {
    pub dir: PathBuf,
    pub info: EvalFile,
}

impl Eval {
    fn read(dir: &Path) -> Result<Eval> {
        let info = EvalFile::read(&dir.join("eval.json"))?;
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

/// A cheek-lab report (read through cheek-lab's own types), its CSV's measured and reference values, and its QC sheet.
#[derive(Debug)]
pub struct Cheeks {
    pub path: PathBuf,
    pub info: Report,
    /// Measured and reference L*, a*, b* of every cheek with both (left, then right, per face).
    pub pairs: Vec<CheekPair>,
    /// Why the CSV was not read (none written, or to stdout).
    pub no_csv: Option<String>,
    pub qc_sheet: Option<PathBuf>,
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
        let info = Report::read(path)?;
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
