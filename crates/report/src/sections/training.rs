//! The training: the run's settings, loss, per-class IoU and learning rate per epoch, the
//! lr_find sweeps with their suggestions, and the best and last epochs.

use crate::html::{Cell, Page, num};
use facepipe_formats::model::{EpochRecord, FitLr, LrFind};

use crate::inputs::Model;
use crate::svg::{HIGHLIGHT, LineChart, Series, colour};

pub fn write(page: &mut Page, model: Option<&Model>) {
    page.section("training", "Training");
    let Some(m) = model else {
        page.note("No model directory given (--model).");
        return;
    };
    let i = &m.info;
    page.p(&format!("Model directory {}.", m.dir.display()));
    page.cards(&[
        (i.arch.to_string(), "architecture".into()),
        (format!("{}²", i.preprocessing.input_size), "input size".into()),
        (format!("{} / {}", i.n_train, i.n_valid), "train / valid items".into()),
        (i.batch_size.to_string(), "batch size".into()),
        (i.epochs.to_string(), "epochs".into()),
        (i.recipe.loss.to_string(), "loss".into()),
        (i.device.clone(), "device".into()),
        (i.seed.to_string(), "seed".into()),
    ]);
    let pretrained = match &i.pretrained {
        Some(p) => format!(
            "{} ({} tensors applied, {} missing, {} unused)",
            p.file,
            p.applied,
            p.missing.len(),
            p.unused.len()
        ),
        None => "none (random initial weights)".into(),
    };
    page.p(&format!("Pretrained weights: {pretrained}."));
    page.table_cells(
        &["recipe"],
        &[vec![Cell::code(&serde_json::to_string(&i.recipe).unwrap_or_default())]],
        1,
    );
    fit_lrs(page, &i.fit_lrs);
    records(page, m);
    if m.metrics.records.is_empty() {
        page.note("metrics.csv holds no epochs.");
    } else {
        curves(page, m);
    }
    for (k, sweep) in i.lr_find.iter().enumerate() {
        lr_find(page, k, sweep);
    }
}

/// The peak rates each fit used and where they came from.
fn fit_lrs(page: &mut Page, fits: &[FitLr]) {
    if fits.is_empty() {
        return;
    }
    let rows: Vec<Vec<String>> = fits
        .iter()
        .map(|f| {
            let lrs = f.lr.lr_max.iter().map(|v| num(Some(*v))).collect::<Vec<_>>().join(", ");
            vec![
                f.phase.clone(),
                lrs,
                f.lr.source.to_string(),
                f.lr.reason.clone().unwrap_or_default(),
            ]
        })
        .collect();
    page.table(&["fit", "peak learning rates (per group)", "from", "why"], &rows, 1);
}

fn records(page: &mut Page, m: &Model) {
    let row = |which: &str, r: &EpochRecord| {
        vec![
            which.to_string(),
            r.phase.clone(),
            r.epoch.to_string(),
            num(Some(r.train_loss)),
            num(Some(r.valid_loss)),
            num(Some(r.mean_iou_fg)),
            num(Some(r.mean_dice_fg)),
            num(Some(r.pixel_accuracy)),
        ]
    };
    let rows: Vec<Vec<String>> = [("best", &m.info.best.record), ("last", &m.info.last.record)]
        .into_iter()
        .map(|(w, r)| row(w, r))
        .collect();
    page.table(
        &[
            "weights",
            "phase",
            "epoch of phase (from 0)",
            "train loss",
            "valid loss",
            "fg mean IoU",
            "fg mean dice",
            "pixel accuracy",
        ],
        &rows,
        2,
    );
}

/// Loss, per-class IoU and learning rates against the epoch number (counted across phases).
fn curves(page: &mut Page, m: &Model) {
    let rows = &m.metrics.records;
    let x = |k: usize| (k + 1) as f64;
    let mut guides = vec![];
    for k in 1..rows.len() {
        if rows[k].phase != rows[k - 1].phase {
            guides.push(Series::vline(
                format!("{} starts", rows[k].phase),
                colour(7),
                x(k) - 0.5,
            ));
        }
    }
    let b = &m.info.best.record;
    if let Some(k) = rows.iter().position(|r| r.phase == b.phase && r.epoch == b.epoch) {
        guides.push(Series::vline(format!("best (epoch {})", k + 1), colour(3), x(k)));
    }
    let line = |name: &str, c: usize, f: &dyn Fn(&EpochRecord) -> f64| {
        Series::new(
            name,
            colour(c),
            rows.iter().enumerate().map(|(k, r)| (x(k), f(r))).collect(),
        )
    };
    let mut loss = LineChart::new("Loss", "epoch", "loss");
    loss.integer_x = true;
    loss.series = vec![line("train", 0, &|r| r.train_loss), line("valid", 1, &|r| r.valid_loss)];
    loss.series.extend(guides.iter().cloned());
    page.svg(
        loss.to_svg(),
        "Mean training loss of each epoch and the validation loss after it.",
    );

    let mut iou = LineChart::new("Validation IoU per class", "epoch", "IoU");
    iou.size = (900, 440);
    iou.integer_x = true;
    iou.series.push(line("foreground mean", HIGHLIGHT, &|r| r.mean_iou_fg));
    for (c, name) in m.metrics.classes.iter().enumerate() {
        let pts = rows
            .iter()
            .enumerate()
            .map(|(k, r)| (x(k), r.iou.get(c).copied().flatten().unwrap_or(f64::NAN)))
            .collect();
        let c = if c >= HIGHLIGHT { c + 1 } else { c };
        iou.series.push(Series::new(name.as_str(), colour(c), pts));
    }
    page.svg(
        iou.to_svg(),
        "IoU of each class on the validation set after each epoch (classes absent from it are not drawn).",
    );

    // every epoch records the three groups' rates (`EpochRecord::lrs`)
    let mut lr = LineChart::new("Learning rate", "epoch", "learning rate at the epoch's last batch");
    lr.log_y = true;
    lr.integer_x = true;
    for g in 0..3 {
        let pts = rows.iter().enumerate().map(|(k, r)| (x(k), r.lrs[g])).collect();
        lr.series.push(Series::new(format!("group {g}"), colour(g), pts));
    }
    page.svg(
        lr.to_svg(),
        "The one-cycle schedule as each epoch ended, per parameter group (encoder stem, encoder, decoder).",
    );
}

fn lr_find(page: &mut Page, k: usize, sweep: &LrFind) {
    let pts: Vec<(f64, f64)> = sweep.lrs.iter().zip(&sweep.losses).map(|(lr, l)| (*lr, *l)).collect();
    let mut c = LineChart::new(&format!("lr_find {}", k + 1), "learning rate", "smoothed loss");
    c.log_x = true;
    c.series.push(Series::new("loss", colour(0), pts));
    if let Some(s) = &sweep.suggestions {
        for (name, v, col) in [
            ("valley", s.valley, 3),
            ("minimum/10", s.minimum, 2),
            ("steep", s.steep, 4),
        ] {
            c.series
                .push(Series::vline(format!("{name} {}", num(Some(v))), colour(col), v));
        }
    }
    let caption = match (&sweep.untrusted, &sweep.suggestions) {
        (Some(why), _) => format!("Not used by \"auto\": {why}."),
        (None, Some(_)) => "\"auto\" takes the valley.".to_string(),
        (None, None) => "No suggestion: too few points.".to_string(),
    };
    page.svg(
        c.to_svg(),
        &format!("lr_find sweep {} ({} rates). {caption}", k + 1, sweep.lrs.len()),
    );
}
