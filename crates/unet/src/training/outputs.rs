//! What a run writes as it goes, besides weights: `metrics.csv` and `loss.png` after every
//! epoch, `lr_find.csv` and `lr_find.png` after every sweep.

use std::path::Path;

use anyhow::Result;
use facepipe_core::io::write_atomic;
use facepipe_core::palette::Class;

use super::fit::{EpochRecord, LrFind};

/// `metrics.csv`: one row per epoch (the format is `facepipe_formats::metrics`'s).
pub fn write_metrics(path: &Path, records: &[EpochRecord], classes: &[Class]) -> Result<()> {
    write_atomic(path, &facepipe_formats::metrics::to_csv(records, classes)?)
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
