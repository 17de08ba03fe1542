//! The model directory a training run writes, and what reads and writes its files.
//!
//! ```text
//! runs/NAME/
//!   run.json                 settings of the run (marks the directory as a facepipe run)
//!   metrics.csv              one row per epoch (rewritten after each)
//!   loss.png                 train and valid loss per epoch
//!   lr_find.csv, lr_find.png the sweep(s) and the suggestions
//!   best.bpk, best.safetensors   the model with the lowest valid loss so far
//!   last.bpk, last.safetensors   the model at the end
//!   checkpoint/              the last completed epoch: weights, Adam state, progress
//!   model.json               written last, when the run is complete: what unet-eval reads
//! ```
//!
//! `.bpk` is burn's own format (burnpack); `.safetensors` uses PyTorch's names (BatchNorm
//! `weight`/`bias`, `layer1.0.downsample.0.weight`, ...) so `model.load_state_dict(
//! safetensors.torch.load_file(...), strict=False)` works (burn keeps no `num_batches_tracked`).
//!
//! Every file is written to a temporary name and renamed, and the checkpoint's progress file is
//! written after the weights it points to: a run killed at any moment resumes (`--resume`) from
//! its last completed epoch, and continues exactly as the uninterrupted run would have (same
//! batches, same schedule positions, same optimiser state), so its `metrics.csv` is the same.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use burn::module::Module;
use burn::tensor::backend::Backend;
use burn_store::{BurnToPyTorchAdapter, BurnpackStore, BurnpackWriter, ModuleSnapshot, SafetensorsStore};
use facepipe_core::io::write_atomic;
use facepipe_core::palette::Class;
use serde::{Deserialize, Serialize};

use crate::training::fit::{EpochRecord, LrFind};
use crate::training::optim::{SavedAdam, SavedMoments};
use crate::training::phase::ResolvedLr;
use crate::training::recipe::Recipe;
use crate::training::schedule::EarlyStopping;

use crate::model::Arch;
pub use crate::model::weights::torch_renames;

/// `model.json`'s format name and version.
pub const MODEL_FORMAT: &str = "facepipe.model";
pub const MODEL_FORMAT_VERSION: u32 = 1;
pub(crate) const RUN_FORMAT: &str = "facepipe.train-run";

/// The settings that make two runs the same run; `--resume` refuses a directory whose
/// settings differ.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    pub arch: Arch,
    pub input_size: u32,
    pub batch_size: usize,
    pub seed: u64,
    pub recipe: Recipe,
    pub manifest_sha256: String,
    pub pretrained_sha256: Option<String>,
    pub classes: Vec<Class>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct RunFile {
    pub(crate) format: String,
    pub(crate) settings: Settings,
    pub(crate) manifest: String,
    /// What the encoder started from (so a resumed run reports it like the original).
    pub(crate) pretrained: Option<Pretrained>,
}

/// Files of one saved model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WeightFiles {
    /// burn's format, relative to the model directory.
    pub burnpack: String,
    /// PyTorch names, relative to the model directory.
    pub safetensors: String,
    /// The epoch it is the model of.
    pub record: EpochRecord,
    /// sha256 of the burnpack and safetensors files as written: `unet-eval` refuses weights
    /// that are not these (a `best.bpk` copied in from another run). Absent in model
    /// directories written before facepipe 0.1 recorded them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burnpack_sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub safetensors_sha256: Option<String>,
}

impl WeightFiles {
    /// The files `stem`.bpk and `stem`.safetensors in `dir`, with their hashes, for `record`.
    pub fn hashed(dir: &Path, stem: &str, record: EpochRecord) -> Result<Self> {
        let hash = |name: &str| -> Result<Option<String>> {
            Ok(Some(facepipe_core::io::read_input(&dir.join(name))?.1.sha256))
        };
        let (burnpack, safetensors) = (format!("{stem}.bpk"), format!("{stem}.safetensors"));
        Ok(WeightFiles {
            burnpack_sha256: hash(&burnpack)?,
            safetensors_sha256: hash(&safetensors)?,
            burnpack,
            safetensors,
            record,
        })
    }
}

/// Input preparation the model expects (what training's validation did).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Preprocessing {
    pub input_size: u32,
    /// How an image becomes a square input.
    pub crop: String,
    pub resize: String,
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

/// Where the encoder's starting weights came from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pretrained {
    pub file: String,
    pub sha256: String,
    pub applied: usize,
    pub missing: Vec<String>,
    pub unused: Vec<String>,
}

/// `model.json`: everything needed to use the model and to know where it came from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    pub format: String,
    pub format_version: u32,
    pub arch: Arch,
    pub classes: Vec<Class>,
    pub preprocessing: Preprocessing,
    pub best: WeightFiles,
    pub last: WeightFiles,
    pub recipe: Recipe,
    pub manifest: String,
    pub manifest_sha256: String,
    pub n_train: usize,
    pub n_valid: usize,
    pub batch_size: usize,
    pub seed: u64,
    pub device: String,
    pub pretrained: Option<Pretrained>,
    pub lr_find: Vec<LrFind>,
    /// The peak rates each fit used and where they came from (`stated` in the recipe, an
    /// lr_find `valley`, or the `fallback` when the valley was not trusted, with the reason).
    #[serde(default)]
    pub fit_lrs: Vec<FitLr>,
    pub epochs: usize,
    pub facepipe_version: String,
}

/// One fit's peak learning rates (per group) and their source.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FitLr {
    pub phase: String,
    #[serde(flatten)]
    pub lr: ResolvedLr,
}

impl ModelInfo {
    /// Reads and checks a model directory's `model.json`.
    pub fn read(dir: &Path) -> Result<ModelInfo> {
        let p = dir.join("model.json");
        let text = fs::read_to_string(&p).with_context(|| {
            format!(
                "reading {}: is {} a complete unet-train model directory?",
                p.display(),
                dir.display()
            )
        })?;
        let m: ModelInfo = serde_json::from_str(&text).with_context(|| format!("parsing {}", p.display()))?;
        ensure!(
            m.format == MODEL_FORMAT,
            "{}: format {:?} is not {MODEL_FORMAT:?}",
            p.display(),
            m.format
        );
        ensure!(
            m.format_version <= MODEL_FORMAT_VERSION,
            "{}: format version {} is newer than this facepipe reads ({MODEL_FORMAT_VERSION})",
            p.display(),
            m.format_version
        );
        Ok(m)
    }
}

/// Where a run stands: saved in `checkpoint/state.json` after every epoch and phase.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// The phase in progress (or the next to start).
    pub phase: usize,
    /// Epochs of that phase done.
    pub epochs_done: usize,
    pub stopper: Option<EarlyStopping>,
    pub lr_finds: Vec<LrFind>,
    /// The rates of each fit started so far.
    #[serde(default)]
    pub fit_lrs: Vec<FitLr>,
    pub records: Vec<EpochRecord>,
    /// Index into `records` of the best epoch (lowest valid loss).
    pub best: Option<usize>,
    /// Checkpoint weight and optimiser files, relative to `checkpoint/`.
    pub weights: Option<String>,
    pub optimiser: Option<String>,
    pub finished: bool,
    /// β1 the optimiser holds: Adam's 0.9 until a fit ran, then the one-cycle momentum of the
    /// last batch trained (fastai's lr_find schedules only the learning rate and keeps it).
    #[serde(default)]
    pub beta1: Option<f64>,
}

pub(crate) fn is_ours(dir: &Path) -> bool {
    let has = |name: &str, format: &str| {
        fs::read_to_string(dir.join(name))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .is_some_and(|v| v.get("format").and_then(|f| f.as_str()) == Some(format))
    };
    has("run.json", RUN_FORMAT) || has("model.json", MODEL_FORMAT)
}

/// The ledger of a run folder (a run's own files are also known by their names).
pub(crate) const MARKER: &str = ".unet-train";

/// Whether `rel` is a name only a run writes (see the module docs).
pub(crate) fn run_file(rel: &str) -> bool {
    const TOP: [&str; 10] = [
        "run.json",
        "model.json",
        "metrics.csv",
        "loss.png",
        "lr_find.csv",
        "lr_find.png",
        "best.bpk",
        "best.safetensors",
        "last.bpk",
        "last.safetensors",
    ];
    let numbered = |s: &str, prefix: &str, digits: usize, suffix: &str| {
        s.strip_prefix(prefix)
            .and_then(|r| r.strip_suffix(suffix))
            .is_some_and(|n| n.len() == digits && n.bytes().all(|b| b.is_ascii_digit()))
    };
    match rel.strip_prefix("checkpoint/") {
        None => TOP.contains(&rel),
        Some(c) => {
            c == "state.json"
                || numbered(c, "epoch-", 4, ".bpk")
                || numbered(c, "epoch-", 4, ".adam.safetensors")
                || numbered(c, "phase-", 2, ".adam.safetensors")
        }
    }
}

/// Looks at the output folder for a fresh run (writes nothing): absent or empty, or a previous
/// run replaced with `--force`. Only the previous run's own files are ever removed: anything
/// else in the folder makes it refuse, and with `--force` is kept.
pub(crate) fn inspect_dir(
    outputs: &mut facepipe_core::out::Outputs,
    dir: &Path,
    force: bool,
) -> Result<facepipe_core::out::OutDir> {
    let ours = is_ours(dir);
    let folder = outputs.folder(dir, MARKER, "--out-dir", &|rel| ours && run_file(rel))?;
    if ours && !force {
        bail!(
            "output directory {} holds a previous run: --resume to continue it, --force to replace it",
            dir.display()
        );
    }
    Ok(folder)
}

pub(crate) use facepipe_core::io::write_json;

/// The temporary name a weight file is written under: `.NAME.facepipe-tmp-w`, which the
/// next run sweeps if a kill left it (see `facepipe_core::out`).
pub(crate) fn tmp_path(path: &Path) -> PathBuf {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    path.with_file_name(format!("{}w", facepipe_core::out::temp_prefix(&name)))
}

/// Renames a finished temporary file over `to`, which must not be a symlink or special file.
pub(crate) fn replace_with(tmp: &Path, to: &Path) -> Result<()> {
    facepipe_core::out::ensure_replaceable(to).inspect_err(|_| {
        let _ = fs::remove_file(tmp);
    })?;
    fs::rename(tmp, to).with_context(|| format!("writing {}", to.display()))
}

/// Saves `net` as `stem.bpk` (burn) and, given the model's `arch` (`torch`), `stem.safetensors`
/// under the PyTorch model's names (see [`torch_renames`]) in `dir`.
pub fn save_weights<B: Backend, M: Module<B>>(net: &M, dir: &Path, stem: &str, torch: Option<Arch>) -> Result<()> {
    let bpk = dir.join(format!("{stem}.bpk"));
    let tmp = tmp_path(&bpk);
    // burn's writer, without the random per-process parameter ids burn would record (loading
    // keeps the module's own ids, and the optimiser state is matched by name): identical weights
    // give identical bytes
    let mut snapshots = net.collect(None, None, false);
    for s in &mut snapshots {
        s.tensor_id = None;
    }
    let _ = fs::remove_file(&tmp);
    BurnpackWriter::new(snapshots)
        .with_metadata("format", "burnpack")
        .with_metadata("producer", "burn")
        .with_metadata("version", "0.21.0")
        .write_to_file(&tmp)
        .map_err(|e| {
            let _ = fs::remove_file(&tmp);
            anyhow::anyhow!("writing {}: {e}", bpk.display())
        })?;
    replace_with(&tmp, &bpk)?;
    let Some(arch) = torch else {
        return Ok(());
    };
    let st = dir.join(format!("{stem}.safetensors"));
    let tmp = tmp_path(&st);
    let mut store = SafetensorsStore::from_file(&tmp)
        .with_to_adapter(BurnToPyTorchAdapter)
        .skip_enum_variants(true)
        // one metadata entry: burn's three come from a HashMap, in a different order each
        // run, and would make identical weights hash differently
        .clear_metadata()
        .metadata(
            "producer",
            concat!("facepipe ", env!("CARGO_PKG_VERSION"), " with burn 0.21.0"),
        )
        .overwrite(true);
    for (from, to) in torch_renames(arch) {
        store = store.with_key_remapping(from, *to);
    }
    net.save_into(&mut store).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        anyhow::anyhow!("writing {}: {e}", st.display())
    })?;
    replace_with(&tmp, &st)?;
    Ok(())
}

/// Makes `to` the same file as `from` (a hard link, or a copy where links are not possible),
/// replacing `to` atomically.
pub(crate) fn link_or_copy(from: &Path, to: &Path) -> Result<()> {
    let tmp = tmp_path(to);
    let _ = fs::remove_file(&tmp);
    if fs::hard_link(from, &tmp).is_err() {
        fs::copy(from, &tmp).with_context(|| format!("copying {} to {}", from.display(), tmp.display()))?;
    }
    replace_with(&tmp, to)
}

/// Loads burn-format weights into `net`; every tensor must match, and every value be finite
/// (a model with a NaN weight predicts nothing but NaN).
pub fn load_weights<B: Backend, M: Module<B>>(net: &mut M, file: &Path) -> Result<()> {
    ensure!(file.is_file(), "weight file {} is missing", file.display());
    let shown = file.display();
    // burn's own validation formats its errors with Debug; ours below names them plainly
    let mut store = BurnpackStore::from_file(file).validate(false).allow_partial(true);
    let r = net
        .load_from(&mut store)
        .map_err(|e| anyhow::anyhow!("loading {shown}: {e}"))?;
    if let Some(e) = r.errors.first() {
        bail!(
            "loading {shown}: {} ({} errors in all): the file does not fit this model",
            plain(e),
            r.errors.len()
        );
    }
    if let Some((k, _)) = r.missing.first() {
        bail!(
            "loading {shown}: {k} is not in the file ({} tensors missing): the file does not fit this model",
            r.missing.len()
        );
    }
    for snap in net.collect(None, None, true) {
        if !snap.dtype.is_float() {
            continue;
        }
        let data = snap
            .to_data()
            .map_err(|e| anyhow::anyhow!("loading {shown}: {}: {e}", snap.full_path()))?;
        if data.iter::<f32>().any(|v| !v.is_finite()) {
            bail!(
                "loading {shown}: {} holds NaN or infinite values; these weights cannot predict anything",
                snap.full_path()
            );
        }
    }
    Ok(())
}

/// burn's error in words (its own Display shows shapes as `Shape { dims: [..] }`).
fn plain(e: &burn_store::ApplyError) -> String {
    use burn_store::ApplyError as E;
    let dims = |s: &burn::tensor::Shape| {
        let d: Vec<String> = s.iter().map(ToString::to_string).collect();
        format!("[{}]", d.join(", "))
    };
    match e {
        E::ShapeMismatch { path, expected, found } => {
            format!(
                "{path} has shape {} in the file, the model needs {}",
                dims(found),
                dims(expected)
            )
        }
        E::DTypeMismatch { path, expected, found } => {
            format!("{path} is of type {found:?} in the file, the model needs {expected:?}")
        }
        other => other.to_string(),
    }
}

pub(crate) fn save_adam(saved: &SavedAdam, path: &Path) -> Result<()> {
    use safetensors::tensor::{Dtype, TensorView};
    let bytes: Vec<(String, Vec<u8>, usize)> = saved
        .moments
        .iter()
        .flat_map(|s| {
            [("m", &s.m), ("v", &s.v)].map(|(k, v)| {
                (
                    format!("{}.{k}", s.path),
                    v.iter().flat_map(|x| x.to_le_bytes()).collect(),
                    v.len(),
                )
            })
        })
        .collect();
    let views: Vec<(String, TensorView<'_>)> = bytes
        .iter()
        .map(|(k, b, n)| Ok((k.clone(), TensorView::new(Dtype::F32, vec![*n], b)?)))
        .collect::<Result<_, safetensors::SafeTensorError>>()?;
    let steps: std::collections::BTreeMap<&str, i32> =
        saved.moments.iter().map(|s| (s.path.as_str(), s.step)).collect();
    let meta = std::collections::HashMap::from([
        ("frozen".to_string(), saved.frozen.to_string()),
        ("steps".to_string(), serde_json::to_string(&steps)?),
    ]);
    let data = safetensors::tensor::serialize(views, Some(meta))?;
    write_atomic(path, &data)
}

pub(crate) fn load_adam(path: &Path) -> Result<SavedAdam> {
    let shown = path.display();
    let data = fs::read(path).with_context(|| format!("reading {shown}"))?;
    let (_, meta) = safetensors::SafeTensors::read_metadata(&data).with_context(|| format!("parsing {shown}"))?;
    let st = safetensors::SafeTensors::deserialize(&data).with_context(|| format!("parsing {shown}"))?;
    let meta = meta.metadata().clone().unwrap_or_default();
    let frozen = meta.get("frozen").map(String::as_str) == Some("true");
    let steps: std::collections::BTreeMap<String, i32> =
        serde_json::from_str(meta.get("steps").map(String::as_str).unwrap_or("{}"))
            .with_context(|| format!("{shown}: bad `steps` metadata"))?;
    let read = |k: &str| -> Result<Vec<f32>> {
        let t = st.tensor(k).with_context(|| format!("{shown}: no tensor {k}"))?;
        Ok(t.data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    };
    let moments = steps
        .into_iter()
        .map(|(path, step)| {
            Ok(SavedMoments {
                m: read(&format!("{path}.m"))?,
                v: read(&format!("{path}.v"))?,
                step,
                path,
            })
        })
        .collect::<Result<_>>()?;
    Ok(SavedAdam { frozen, moments })
}

pub(crate) fn settings_diff(a: &Settings, b: &Settings) -> Vec<String> {
    let (a, b) = (
        serde_json::to_value(a).unwrap_or_default(),
        serde_json::to_value(b).unwrap_or_default(),
    );
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return vec![];
    };
    a.iter()
        .filter(|(k, v)| b.get(*k) != Some(*v))
        .map(|(k, _)| k.clone())
        .collect()
}
