//! What a run writes as it goes, besides weights: `metrics.csv` and `loss.png` after every
//! epoch, `lr_find.csv` and `lr_find.png` after every sweep.

use std::path::Path;

use anyhow::Result;
use facepipe_core::io::write_atomic;
use facepipe_core::palette::Class;

use super::fit::{EpochRecord, LrFind};

/// `metrics.csv`: one row per epoch; per-class columns named after the classes.
pub fn write_metrics(path: &Path, records: &[EpochRecord], classes: &[Class]) -> Result<()> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut header: Vec<String> = [
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
    ]
    .map(String::from)
    .to_vec();
    let word = facepipe_core::palette::column_name;
    header.extend(classes.iter().map(|c| format!("dice_{}", word(&c.name))));
    header.extend(classes.iter().map(|c| format!("iou_{}", word(&c.name))));
    header.extend(["lr_group0", "lr_group1", "lr_group2", "seconds"].map(String::from));
    w.write_record(&header)?;
    let opt = |v: &Option<f64>| v.map(|x| x.to_string()).unwrap_or_default();
    for r in records {
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
    write_atomic(path, &w.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?)
}

pub(super) fn plot_losses(path: &Path, records: &[EpochRecord]) -> Result<()> {
    use facepipe_plot::{LineChart, Series};
    let pts = |f: fn(&EpochRecord) -> f64| {
        records
            .iter()
            .enumerate()
            .map(|(i, r)| ((i + 1) as f64, f(r)))
            .collect()
    };
    let chart = LineChart {
        title: "loss per epoch".into(),
        x_label: "epoch (all phases)".into(),
        y_label: "cross-entropy".into(),
        log_x: false,
        series: vec![
            Series {
                name: "train".into(),
                points: pts(|r| r.train_loss),
                dots: false,
            },
            Series {
                name: "valid".into(),
                points: pts(|r| r.valid_loss),
                dots: false,
            },
        ],
        markers: vec![],
    };
    facepipe_plot::save_png(path, &chart.render(720, 420))
}

pub(super) fn write_lr_finds(dir: &Path, finds: &[LrFind]) -> Result<()> {
    use facepipe_plot::{LineChart, Marker, Series};
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(["sweep", "iteration", "lr", "smoothed_loss"])?;
    for (k, f) in finds.iter().enumerate() {
        for (i, (lr, loss)) in f.lrs.iter().zip(&f.losses).enumerate() {
            w.write_record([k.to_string(), i.to_string(), lr.to_string(), loss.to_string()])?;
        }
    }
    write_atomic(
        &dir.join("lr_find.csv"),
        &w.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?,
    )?;
    let Some(last) = finds.last() else { return Ok(()) };
    let mut markers = vec![];
    if let Some(s) = &last.suggestions {
        for (name, x) in [("valley", s.valley), ("minimum/10", s.minimum), ("steep", s.steep)] {
            markers.push(Marker {
                x,
                label: format!("{name} {x:.2e}"),
            });
        }
    }
    let chart = LineChart {
        title: "lr_find".into(),
        x_label: "learning rate".into(),
        y_label: "smoothed loss".into(),
        log_x: true,
        series: vec![Series {
            name: "loss".into(),
            points: last.lrs.iter().copied().zip(last.losses.iter().copied()).collect(),
            dots: false,
        }],
        markers,
    };
    facepipe_plot::save_png(&dir.join("lr_find.png"), &chart.render(720, 420))
}
