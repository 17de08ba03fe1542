//! `unet-train`: trains the UNet-ResNet34 on a split manifest with a fastai recipe and writes
//! a model directory (see [`unet::model_dir`] for its contents).
//!
//! The recipe is the reference workflow unless `--recipe FILE` gives another (JSON, see
//! [`unet::training::recipe`]); `--fine-tune-epochs`, `--epochs`, `--lr`, `--patience` and `--loss`
//! adjust it without a file.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use unet::training::recipe::{Expand, LrMax, Recipe, RecipeStep};

pub const STAGE: &str = "unet-train";

/// A short human summary of a finished model directory (what `make all` prints last).
/// `--check-device`: the table of every compared result, then an error when one is beyond its
/// limit.
pub fn check_device(device: unet::device::DeviceSpec) -> Result<()> {
    let diffs = unet::device_check::check(device)?;
    let head = format!("--device {device} against the CPU");
    let mut lines = vec![format!("{head:<64} {:>9} {:>7}", "max diff", "limit")];
    for d in &diffs {
        let mark = if d.ok() { "" } else { "  << beyond the limit" };
        lines.push(format!("{:<64} {:>9.1e} {:>7.0e}{mark}", d.what, d.rel, d.tol));
        if let Some(more) = &d.detail {
            lines.push(format!("    {more}"));
        }
    }
    let bad = diffs.iter().filter(|d| !d.ok()).count();
    lines.push(format!(
        "{} of {} results within their limit (max |device - cpu| / max |cpu|)",
        diffs.len() - bad,
        diffs.len()
    ));
    facepipe_core::cli::say(lines.join("\n"));
    if bad > 0 {
        bail!("--check-device: {bad} result(s) on {device} differ from the CPU's beyond float32 rounding");
    }
    Ok(())
}

pub fn summary(dir: &std::path::Path) -> Result<String> {
    let info = unet::model_dir::ModelInfo::read(dir)?;
    let b = &info.best.record;
    let mut out = format!(
        "model {}: {} decoder, {}x{} inputs, {} loss, {} epochs on {} train / {} valid images ({})\n  best: {} epoch {}: valid_loss {:.4}, pixel accuracy {:.4}, mean IoU {:.4} (foreground {:.4}), mean dice {:.4} (foreground {:.4})\n  IoU per class:",
        dir.display(),
        info.arch,
        info.preprocessing.input_size,
        info.preprocessing.input_size,
        info.recipe.loss,
        info.epochs,
        info.n_train,
        info.n_valid,
        info.device,
        b.phase,
        b.epoch + 1,
        b.valid_loss,
        b.pixel_accuracy,
        b.mean_iou,
        b.mean_iou_fg,
        b.mean_dice,
        b.mean_dice_fg
    );
    for (c, v) in info.classes.iter().zip(&b.iou) {
        match v {
            Some(v) => out.push_str(&format!(" {} {v:.3},", c.name)),
            None => out.push_str(&format!(" {} absent,", c.name)),
        }
    }
    out.pop();
    for f in info
        .fit_lrs
        .iter()
        .filter(|f| f.lr.source != unet::training::phase::LrSource::Stated)
    {
        out.push_str(&format!(
            "\n  {} phase: lr_max {} from the {}{}",
            f.phase,
            unet::training::recipe::show_groups(&f.lr.lr_max),
            f.lr.source,
            f.lr.reason.as_ref().map(|r| format!(" ({r})")).unwrap_or_default()
        ));
    }
    Ok(out)
}

/// Changes to the recipe given on the command line.
#[derive(Clone, Debug, Default)]
pub struct RecipeEdits {
    pub fine_tune_epochs: Option<usize>,
    pub epochs: Option<usize>,
    pub lr: Option<LrMax>,
    /// `Some(None)` turns early stopping off.
    pub patience: Option<Option<usize>>,
    pub no_lr_find: bool,
    pub loss: Option<unet::training::loss::Loss>,
}

/// Parses `--lr`: `auto`, a number, or `LO,HI` (fastai's `slice(lo, hi)`).
pub fn parse_lr(s: &str) -> Result<LrMax, String> {
    let num = |t: &str| {
        t.trim()
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v > 0.0)
            .ok_or_else(|| format!("{t:?} is not a positive number"))
    };
    if s == "auto" {
        return Ok(LrMax::Auto(unet::training::recipe::AutoTag::Auto));
    }
    match s.split_once(',') {
        Some((lo, hi)) => {
            let (lo, hi) = (num(lo)?, num(hi)?);
            if lo > hi {
                return Err(format!("--lr {s}: the low rate comes first"));
            }
            Ok(LrMax::Slice([lo, hi]))
        }
        None => num(s).map(LrMax::One),
    }
}

/// `--patience`: epochs, or `None` for no early stopping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Patience(pub Option<usize>);

/// Parses `--patience`: a count or `none`.
pub fn parse_patience(s: &str) -> Result<Patience, String> {
    match s {
        "none" | "off" => Ok(Patience(None)),
        _ => s
            .parse::<usize>()
            .map(|n| Patience(Some(n)))
            .map_err(|_| format!("{s:?} is not a whole number or `none`")),
    }
}

/// The recipe: the file's (or the reference one) with the command line's edits.
pub fn build_recipe(file: Option<&PathBuf>, edits: &RecipeEdits) -> Result<Recipe> {
    let mut r = match file {
        Some(p) => {
            let text = std::fs::read_to_string(p).with_context(|| format!("reading --recipe {}", p.display()))?;
            unet::training::recipe::parse(&text).with_context(|| format!("recipe {}", p.display()))?
        }
        None => Recipe::default(),
    };
    if let Some(p) = edits.patience {
        r.patience = p;
    }
    if let Some(l) = edits.loss {
        r.loss = l;
    }
    if edits.no_lr_find {
        if edits.lr.is_none()
            && r.steps
                .iter()
                .any(|s| matches!(s, RecipeStep::FitOneCycle(f) if matches!(f.lr_max, LrMax::Auto(_))))
        {
            bail!("--no-lr-find: the recipe's learning rate is \"auto\", which needs lr_find; give --lr too");
        }
        r.steps.retain(|s| !matches!(s, RecipeStep::LrFind(_)));
    }
    if let Some(n) = edits.fine_tune_epochs {
        match r.steps.iter_mut().find_map(|s| match s {
            RecipeStep::FineTune(f) => Some(f),
            _ => None,
        }) {
            Some(f) => f.epochs = n,
            None => bail!("--fine-tune-epochs: the recipe has no fine_tune step"),
        }
    }
    if edits.epochs.is_some() || edits.lr.is_some() {
        let Some(f) = r.steps.iter_mut().rev().find_map(|s| match s {
            RecipeStep::FitOneCycle(f) => Some(f),
            _ => None,
        }) else {
            bail!("--epochs/--lr: the recipe has no fit_one_cycle step to change");
        };
        if let Some(n) = edits.epochs {
            f.epochs = n;
        }
        if let Some(lr) = &edits.lr {
            f.lr_max = lr.clone();
            if !matches!(lr, LrMax::Auto(_)) {
                // a stated rate needs no fallback
                f.lr_fallback = None;
            }
        }
    }
    r.phases().context("the recipe after the command line's changes")?;
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lr_flags_parse_like_fastai_arguments() {
        assert_eq!(parse_lr("1e-3"), Ok(LrMax::One(1e-3)));
        assert_eq!(parse_lr("1e-5,1e-4"), Ok(LrMax::Slice([1e-5, 1e-4])));
        assert!(matches!(parse_lr("auto"), Ok(LrMax::Auto(_))));
        assert!(parse_lr("1e-4,1e-5").unwrap_err().contains("low rate comes first"));
        assert!(parse_lr("-1").is_err() && parse_lr("fast").is_err());
        assert_eq!(parse_patience("none"), Ok(Patience(None)));
        assert_eq!(parse_patience("3"), Ok(Patience(Some(3))));
    }

    #[test]
    fn the_shipped_recipes_parse() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../pipelines");
        let mut seen = 0;
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            if name.contains("recipe") && name.ends_with(".json") {
                build_recipe(Some(&p), &RecipeEdits::default()).unwrap_or_else(|e| panic!("{name}: {e:#}"));
                seen += 1;
            }
        }
        assert!(seen >= 1, "no recipe in {}", dir.display());
        // the demo's: cross-entropy + dice, stated rate
        let demo = build_recipe(Some(&dir.join("demo-recipe.json")), &RecipeEdits::default()).unwrap();
        assert_eq!(demo.loss, unet::training::loss::Loss::CrossEntropyDice);
        // progressive resizing: a fit at 64² first, the last at the model's --size (a size the
        // recipe does not name, so a stated 128 would show); --epochs edits only the last
        let fits = |r: &Recipe| -> Vec<(Option<u32>, usize)> {
            r.phases().unwrap().iter().map(|p| (p.size(1000), p.epochs())).collect()
        };
        let shipped = fits(&demo);
        assert_eq!(shipped.len(), 2, "{demo:?}");
        assert_eq!((shipped[0].0, shipped[1].0), (Some(64), Some(1000)));
        let edited = build_recipe(
            Some(&dir.join("demo-recipe.json")),
            &RecipeEdits {
                epochs: Some(30),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(fits(&edited), [shipped[0], (Some(1000), 30)]);
    }

    #[test]
    fn edits_change_the_right_steps() {
        let r = build_recipe(
            None,
            &RecipeEdits {
                fine_tune_epochs: Some(0),
                epochs: Some(3),
                lr: Some(LrMax::One(1e-3)),
                patience: Some(None),
                no_lr_find: true,
                loss: Some(unet::training::loss::Loss::Focal),
            },
        )
        .unwrap();
        assert_eq!((r.patience, r.loss), (None, unet::training::loss::Loss::Focal));
        assert_eq!(r.steps.len(), 2);
        let RecipeStep::FitOneCycle(f) = &r.steps[1] else {
            panic!()
        };
        assert_eq!((f.epochs, &f.lr_max), (3, &LrMax::One(1e-3)));
        let e = build_recipe(
            None,
            &RecipeEdits {
                no_lr_find: true,
                lr: None,
                ..Default::default()
            },
        );
        assert!(e.is_ok(), "the reference lr is fixed, so lr_find can go");
        let auto = build_recipe(
            None,
            &RecipeEdits {
                lr: Some(LrMax::Auto(unet::training::recipe::AutoTag::Auto)),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(auto.steps.len(), 3);
    }
}
