//! The tables and texts of an evaluation: `per_image.csv`, `confusion.csv`, `report.md`,
//! and the summaries printed to the log and by `--summary`.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;
use facepipe_core::io::write_atomic;
use facepipe_core::metrics::mean_present;
use facepipe_core::palette::Class;

use crate::ItemResult;
use crate::eval_file::*;
use crate::predict::Outside;

pub(crate) fn fmt(v: Option<f64>) -> String {
    v.map_or_else(String::new, |v| format!("{v:.6}"))
}

pub(crate) fn fmt_short(v: Option<f64>) -> String {
    v.map_or_else(|| "–".to_string(), |v| format!("{v:.3}"))
}

/// `per_image.csv`: one row per labelled image, full resolution.
pub(crate) fn per_image_csv(path: &Path, results: &[ItemResult], classes: &[Class], any_split: bool) -> Result<()> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut header: Vec<String> = [
        "id",
        "group",
        "image",
        "width",
        "height",
        "pixels",
        "unpredicted_pixels",
        "pixel_accuracy",
        "mean_dice",
        "mean_iou",
        "mean_dice_fg",
        "mean_iou_fg",
        "model_res_pixel_accuracy",
        "model_res_mean_iou",
    ]
    .map(String::from)
    .to_vec();
    header.extend(
        classes
            .iter()
            .map(|c| format!("iou_{}", facepipe_core::palette::column_name(&c.name))),
    );
    w.write_record(&header)?;
    let bg = background(classes);
    for r in results {
        let (Some(c), Some(m)) = (&r.full, &r.model) else {
            continue;
        };
        let (dice, iou) = (c.dice(), c.iou());
        let mut row = vec![
            r.id.clone(),
            group_name(r, any_split).to_string(),
            r.image.display().to_string(),
            r.width.to_string(),
            r.height.to_string(),
            c.pixels().to_string(),
            c.unpredicted().to_string(),
            fmt(c.pixel_accuracy()),
            fmt(mean_present(&dice, None)),
            fmt(mean_present(&iou, None)),
            fmt(mean_present(&dice, bg)),
            fmt(mean_present(&iou, bg)),
            fmt(m.pixel_accuracy()),
            fmt(mean_present(&m.iou(), None)),
        ];
        row.extend(iou.iter().map(|&v| fmt(v)));
        w.write_record(&row)?;
    }
    write_atomic(path, &w.into_inner()?)
}

pub fn confusion_csv(path: &Path, s: &Scores, classes: &[Class]) -> Result<()> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut header = vec!["truth \\ predicted".to_string()];
    header.extend(classes.iter().map(|c| c.name.clone()));
    w.write_record(&header)?;
    for (c, row) in classes.iter().zip(&s.confusion) {
        let mut r = vec![c.name.clone()];
        r.extend(row.iter().map(u64::to_string));
        w.write_record(&r)?;
    }
    write_atomic(path, &w.into_inner()?)
}

/// `report.md`: what was run, the scores, the pictures (`contact`: whether the contact sheet
/// was written) and, for a merge, the shards.
pub fn report_md(e: &EvalFile, contact: bool) -> String {
    let mut s = String::new();
    md_run(&mut s, e);
    if e.groups.is_empty() {
        let _ = writeln!(s, "No item is labelled: predictions only, no scores.");
        return s;
    }
    md_scores(&mut s, e);
    if let Some(g) = e.groups.iter().find(|g| Some(&g.name) == e.headline.as_ref()) {
        md_per_class(&mut s, g);
        md_pictures(&mut s, contact);
    }
    if !e.shards.is_empty() {
        md_shards(&mut s, e);
    }
    let _ = writeln!(
        s,
        "\nPredicted masks: `masks/` (class indices), `colour/` (palette colours), `overlay/` (over the photo)."
    );
    s
}

/// The report's title and what was run: model, manifest, device and speed.
fn md_run(s: &mut String, e: &EvalFile) {
    let t = &e.throughput;
    let rec = &e.model.training_record;
    let _ = writeln!(s, "# unet-eval report\n");
    let _ = writeln!(
        s,
        "Model `{}` ({} UNet, {} px input, {} weights: {} epoch {}), `model.json` sha256 `{}`.  ",
        e.model.dir,
        e.model.arch,
        e.model.input_size,
        e.model.weights,
        rec["phase"].as_str().unwrap_or("?"),
        rec["epoch"].as_u64().map_or("?".into(), |v| (v + 1).to_string()),
        &e.model.model_json_sha256[..16]
    );
    let _ = writeln!(
        s,
        "Manifest `{}` (sha256 `{}`): {} images ({} labelled), split `{}`, outside the centre square: `{}`.  ",
        e.manifest.path,
        &e.manifest.sha256[..16],
        e.items,
        e.labelled,
        e.settings.split,
        match e.settings.outside {
            Outside::Tile => "tile",
            Outside::None => "none",
        }
    );
    let _ = writeln!(
        s,
        "Ran on `{}` in {:.1} s: **{:.2} images/s** overall, {:.2} tiles/s in the network ({} tiles).\n",
        e.settings.device, t.seconds, t.images_per_s, t.network_tiles_per_s, t.tiles
    );
}

/// The scores table: each group at both resolutions, and the training's own record.
fn md_scores(s: &mut String, e: &EvalFile) {
    let _ = writeln!(
        s,
        "## Scores\n\nGlobal sums over each group; means over the classes present (fastai's DiceMulti); `fg` leaves out the background. \
         *Full resolution* scores the prediction mapped back onto the original image; *model resolution* scores the {0}×{0} \
         validation centre crop, as training's validation does.\n",
        e.model.input_size
    );
    let _ = writeln!(
        s,
        "| group | images | resolution | pixel accuracy | mean dice | mean IoU | mean dice fg | mean IoU fg | loss |"
    );
    let _ = writeln!(s, "|---|---:|---|---:|---:|---:|---:|---:|---:|");
    for g in &e.groups {
        for (res, sc) in [("full", &g.full_resolution), ("model", &g.model_resolution)] {
            let _ = writeln!(
                s,
                "| {} | {} | {res} | {} | {} | {} | {} | {} | {} |",
                g.name,
                g.images,
                fmt_short(sc.pixel_accuracy),
                fmt_short(sc.mean_dice),
                fmt_short(sc.mean_iou),
                fmt_short(sc.mean_dice_fg),
                fmt_short(sc.mean_iou_fg),
                fmt_short(sc.loss)
            );
        }
    }
    let rec = &e.model.training_record;
    let f = |k: &str| fmt_short(rec[k].as_f64());
    let _ = writeln!(
        s,
        "| training's record | {} | model | {} | {} | {} | {} | {} | {} |\n",
        e.model.n_valid,
        f("pixel_accuracy"),
        f("mean_dice"),
        f("mean_iou"),
        f("mean_dice_fg"),
        f("mean_iou_fg"),
        f("valid_loss")
    );
}

/// The headline group's per-class table (full resolution).
fn md_per_class(s: &mut String, g: &Group) {
    let _ = writeln!(s, "## Per class ({}, full resolution)\n", g.name);
    let _ = writeln!(s, "| class | true pixels | predicted pixels | dice | IoU |");
    let _ = writeln!(s, "|---|---:|---:|---:|---:|");
    for c in &g.full_resolution.per_class {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} |",
            c.name,
            c.truth_pixels,
            c.pred_pixels,
            fmt_short(c.dice),
            fmt_short(c.iou)
        );
    }
}

/// Links to the confusion picture and tables, and the contact sheet where there is one.
fn md_pictures(s: &mut String, contact: bool) {
    let _ = writeln!(
        s,
        "\n## Pictures\n\n![confusion matrix](confusion.png)\n\nConfusion counts: [confusion.csv](confusion.csv); per-image scores: [per_image.csv](per_image.csv)."
    );
    if contact {
        let _ = writeln!(
            s,
            "\n![worst and best images](contact_sheet.png)\n\nEach row: photo, truth, prediction, errors in red."
        );
    }
}

/// A merge's shard folders, each with its contact sheet.
fn md_shards(s: &mut String, e: &EvalFile) {
    let _ = writeln!(
        s,
        "\n## Shards\n\nMerged from {} shards; the scores above are of all of them (confusion matrices summed). \
         Predicted masks, pictures and each shard's worst and best images stay in the shard folders:\n",
        e.shards.len()
    );
    for sh in &e.shards {
        let sheet = sh
            .contact_sheet
            .as_ref()
            .map_or_else(String::new, |c| format!(" ([contact sheet]({c}))"));
        let _ = writeln!(s, "- {}: `{}`{sheet}", sh.shard, sh.dir);
    }
}

/// The run in a few log lines (info): throughput and each group's headline scores.
pub fn log_summary(e: &EvalFile) {
    let t = &e.throughput;
    log::info!(
        "{} images ({} labelled) in {:.1} s: {:.2} images/s; network {:.2} tiles/s ({} tiles)",
        e.items,
        e.labelled,
        t.seconds,
        t.images_per_s,
        t.network_tiles_per_s,
        t.tiles
    );
    for g in &e.groups {
        for (res, s) in [
            ("full resolution", &g.full_resolution),
            ("model resolution", &g.model_resolution),
        ] {
            log::info!(
                "{} ({} images), {res}: pixel accuracy {}, mean IoU {} (foreground {}), mean dice {} (foreground {})",
                g.name,
                g.images,
                fmt_short(s.pixel_accuracy),
                fmt_short(s.mean_iou),
                fmt_short(s.mean_iou_fg),
                fmt_short(s.mean_dice),
                fmt_short(s.mean_dice_fg)
            );
        }
    }
}

/// A short human summary of a finished evaluation directory (what `make all` prints).
pub fn summary(dir: &Path) -> Result<String> {
    use anyhow::Context as _;
    let p = dir.join("eval.json");
    let text = std::fs::read_to_string(&p).with_context(|| {
        format!(
            "reading {}: is {} a finished unet-eval directory?",
            p.display(),
            dir.display()
        )
    })?;
    let e: serde_json::Value = serde_json::from_str(&text).with_context(|| format!("parsing {}", p.display()))?;
    facepipe_formats::tag::EVAL.check(&p, &e)?;
    let f = |v: &serde_json::Value| fmt_short(v.as_f64());
    let t = &e["throughput"];
    let mut out = format!(
        "evaluation {}: {} images ({} labelled) with the {} weights, {:.2} images/s on {}",
        dir.display(),
        e["items"],
        e["labelled"],
        e["model"]["weights"].as_str().unwrap_or("?"),
        t["images_per_s"].as_f64().unwrap_or(0.0),
        e["settings"]["device"].as_str().unwrap_or("?")
    );
    for g in e["groups"].as_array().into_iter().flatten() {
        for (res, k) in [
            ("full resolution", "full_resolution"),
            ("model resolution", "model_resolution"),
        ] {
            let s = &g[k];
            out.push_str(&format!(
                "\n  {} ({} images), {res}: pixel accuracy {}, mean IoU {} (foreground {}), mean dice {} (foreground {})",
                g["name"].as_str().unwrap_or("?"),
                g["images"],
                f(&s["pixel_accuracy"]),
                f(&s["mean_iou"]),
                f(&s["mean_iou_fg"]),
                f(&s["mean_dice"]),
                f(&s["mean_dice_fg"])
            ));
            if k == "full_resolution" {
                let per: Vec<String> = s["per_class"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|c| c["iou"].is_number())
                    .map(|c| format!("{} {}", c["name"].as_str().unwrap_or("?"), f(&c["iou"])))
                    .collect();
                if !per.is_empty() {
                    out.push_str(&format!("\n    IoU per class: {}", per.join(", ")));
                }
            }
        }
    }
    if dir.join("contact_sheet.png").is_file() {
        out.push_str(&format!(
            "\n  worst and best images: {}; report: {}",
            dir.join("contact_sheet.png").display(),
            dir.join("report.md").display()
        ));
    }
    Ok(out)
}
