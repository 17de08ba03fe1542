//! `metrics.csv`: one row per epoch of a training run (rewritten after each), the
//! [`EpochRecord`]s of `model.json` as a table.
//!
//! Columns, in order: `phase`, `epoch`, `size`, `train_loss`, `valid_loss`, `pixel_accuracy`,
//! `mean_dice`, `mean_iou`, `mean_dice_fg`, `mean_iou_fg`, then `dice_<class>` and
//! `iou_<class>` for each class in the model's order (the class name as a column word, see
//! `facepipe_core::palette::column_name`; empty: the class was absent from prediction and
//! truth), then `lr_group0`..`lr_group2` and `seconds`. Numbers are written as Rust prints an
//! `f64` (shortest round-trip), `seconds` to the millisecond.

use std::path::Path;

use anyhow::{Context, Result, bail};
use facepipe_core::palette::{Class, column_name};

use crate::model::EpochRecord;

/// The columns before the per-class ones.
pub const FIXED: [&str; 10] = [
    "phase",
    "epoch",
    "size",
    "train_loss",
    "valid_loss",
    "pixel_accuracy",
    "mean_dice",
    "mean_iou",
    "mean_dice_fg",
    "mean_iou_fg",
];
/// The columns after the per-class ones.
pub const TRAILING: [&str; 4] = ["lr_group0", "lr_group1", "lr_group2", "seconds"];

/// The header for `classes`.
pub fn header(classes: &[Class]) -> Vec<String> {
    let mut h: Vec<String> = FIXED.map(String::from).to_vec();
    h.extend(classes.iter().map(|c| format!("dice_{}", column_name(&c.name))));
    h.extend(classes.iter().map(|c| format!("iou_{}", column_name(&c.name))));
    h.extend(TRAILING.map(String::from));
    h
}

/// The file's bytes.
pub fn to_csv(records: &[EpochRecord], classes: &[Class]) -> Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(header(classes))?;
    let opt = |v: &Option<f64>| v.map(|x| x.to_string()).unwrap_or_default();
    for r in records {
        anyhow::ensure!(
            r.dice.len() == classes.len() && r.iou.len() == classes.len(),
            "metrics.csv: epoch {} of {} has {} dice and {} IoU values for {} classes",
            r.epoch,
            r.phase,
            r.dice.len(),
            r.iou.len(),
            classes.len()
        );
        let mut row = vec![
            r.phase.clone(),
            r.epoch.to_string(),
            r.size.to_string(),
            r.train_loss.to_string(),
            r.valid_loss.to_string(),
            r.pixel_accuracy.to_string(),
            r.mean_dice.to_string(),
            r.mean_iou.to_string(),
            r.mean_dice_fg.to_string(),
            r.mean_iou_fg.to_string(),
        ];
        row.extend(r.dice.iter().map(opt));
        row.extend(r.iou.iter().map(opt));
        row.extend(r.lrs.iter().map(f64::to_string));
        row.push(format!("{:.3}", r.seconds));
        w.write_record(&row)?;
    }
    w.into_inner().map_err(|e| anyhow::anyhow!("{e}"))
}

/// A `metrics.csv` read back.
#[derive(Clone, Debug, PartialEq)]
pub struct Metrics {
    /// The class column words, in column order (`skin`, `left_eye`, ...).
    pub classes: Vec<String>,
    pub records: Vec<EpochRecord>,
}

/// Reads `path`; errors name the file, the line and the column. A file without the `size`
/// column (written before fits had sizes) reads as size 0.
pub fn read(path: &Path) -> Result<Metrics> {
    let mut r = csv::Reader::from_path(path).with_context(|| format!("reading {}", path.display()))?;
    let headers = r
        .headers()
        .with_context(|| format!("{}: no header", path.display()))?
        .clone();
    let col = |name: &str| headers.iter().position(|h| h == name);
    let need_col = |name: &str| col(name).with_context(|| format!("{}: no column {name:?}", path.display()));
    let fixed: Vec<Option<usize>> = FIXED.iter().map(|n| col(n)).collect();
    for (n, c) in FIXED.iter().zip(&fixed) {
        if c.is_none() && *n != "size" {
            bail!("{}: no column {n:?}", path.display());
        }
    }
    let per_class = |prefix: &str| -> Vec<(usize, String)> {
        headers
            .iter()
            .enumerate()
            .filter_map(|(i, h)| h.strip_prefix(prefix).map(|n| (i, n.to_string())))
            .collect()
    };
    let (dice_cols, iou_cols) = (per_class("dice_"), per_class("iou_"));
    let names: Vec<String> = iou_cols.iter().map(|(_, n)| n.clone()).collect();
    if dice_cols.iter().map(|(_, n)| n).ne(names.iter()) {
        bail!("{}: the dice_ and iou_ columns name different classes", path.display());
    }
    let trailing = TRAILING.iter().map(|n| need_col(n)).collect::<Result<Vec<_>>>()?;
    let mut records = Vec::new();
    for (line, rec) in r.records().enumerate() {
        let line = line + 2;
        let rec = rec.with_context(|| format!("{}: line {line}", path.display()))?;
        let cell = |i: usize| rec.get(i).unwrap_or("");
        let num = |i: usize| -> Result<Option<f64>> {
            let c = cell(i);
            if c.is_empty() {
                return Ok(None);
            }
            c.parse().map(Some).with_context(|| {
                format!(
                    "{}: line {line}, column {:?}: {c:?} is not a number",
                    path.display(),
                    &headers[i]
                )
            })
        };
        let need = |i: usize| -> Result<f64> {
            num(i)?.with_context(|| format!("{}: line {line}: {:?} is empty", path.display(), &headers[i]))
        };
        let whole = |i: usize| -> Result<u64> {
            cell(i).parse().with_context(|| {
                format!(
                    "{}: line {line}, column {:?}: {:?} is not a whole number",
                    path.display(),
                    &headers[i],
                    cell(i)
                )
            })
        };
        let f = |k: usize| fixed[k].expect("checked above");
        records.push(EpochRecord {
            phase: cell(f(0)).to_string(),
            epoch: whole(f(1))? as usize,
            size: fixed[2].map(whole).transpose()?.unwrap_or(0) as u32,
            train_loss: need(f(3))?,
            valid_loss: need(f(4))?,
            pixel_accuracy: need(f(5))?,
            mean_dice: need(f(6))?,
            mean_iou: need(f(7))?,
            mean_dice_fg: need(f(8))?,
            mean_iou_fg: need(f(9))?,
            dice: dice_cols.iter().map(|(i, _)| num(*i)).collect::<Result<_>>()?,
            iou: iou_cols.iter().map(|(i, _)| num(*i)).collect::<Result<_>>()?,
            lrs: [need(trailing[0])?, need(trailing[1])?, need(trailing[2])?],
            seconds: need(trailing[3])?,
        });
    }
    Ok(Metrics {
        classes: names,
        records,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(epoch: usize, iou: Option<f64>) -> EpochRecord {
        EpochRecord {
            phase: "fit".into(),
            epoch,
            train_loss: 1.25,
            valid_loss: 0.1 + epoch as f64,
            dice: vec![Some(0.5), iou.map(|v| v * 2.0 / (1.0 + v))],
            iou: vec![Some(1.0 / 3.0), iou],
            mean_dice: 0.4,
            mean_iou: 0.3,
            mean_dice_fg: 0.2,
            mean_iou_fg: 0.1,
            pixel_accuracy: 0.9,
            lrs: [1e-5, 1e-4, 1e-3],
            seconds: 12.5,
            size: 64,
        }
    }

    #[test]
    fn what_is_written_reads_back_the_same() {
        let classes = vec![
            Class::new(0, "background", [0, 0, 0]),
            Class::new(1, "left eye", [0, 255, 0]),
        ];
        let recs = vec![record(0, Some(0.25)), record(1, None)];
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("metrics.csv");
        std::fs::write(&p, to_csv(&recs, &classes).unwrap()).unwrap();
        let m = read(&p).unwrap();
        assert_eq!(m.classes, ["background", "left_eye"]);
        assert_eq!(m.records, recs);
    }

    #[test]
    fn a_bad_cell_is_named_by_file_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("metrics.csv");
        let classes = [Class::new(0, "skin", [1, 2, 3]), Class::new(1, "hair", [4, 5, 6])];
        let text = String::from_utf8(to_csv(&[record(0, None)], &classes).unwrap()).unwrap();
        std::fs::write(&p, text.replacen("1.25", "x", 1)).unwrap();
        let e = format!("{:#}", read(&p).unwrap_err());
        assert!(e.contains("metrics.csv: line 2, column \"train_loss\""), "{e}");
        std::fs::write(&p, "phase,epoch\nfit,0\n").unwrap();
        let e = format!("{:#}", read(&p).unwrap_err());
        assert!(e.contains("no column \"train_loss\""), "{e}");
    }
}
