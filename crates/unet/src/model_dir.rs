//! The model directory a training run writes, and what reads and writes its files: the
//! published model (`model.json`, the weights). `run.json` and `checkpoint/` are the run's own
//! ([`crate::training::checkpoint`]); they are listed here because they share the folder.
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

pub use crate::model::weights::torch_renames;

pub use facepipe_formats::model::{
    Arch, EpochRecord, FitLr, LrFind, LrSource, ModelInfo, Preprocessing, Pretrained, ResolvedLr, Suggestions,
    WeightFiles,
};
use facepipe_formats::tag;

pub(crate) fn is_ours(dir: &Path) -> bool {
    let has = |name: &str, kind: tag::Kind| {
        fs::read_to_string(dir.join(name))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .is_some_and(|v| kind.names(&v))
    };
    has("run.json", tag::TRAIN_RUN) || has("model.json", tag::MODEL)
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
