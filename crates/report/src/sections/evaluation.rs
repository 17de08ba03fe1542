//! The evaluation: headline scores, per-class dice and IoU, the confusion matrix, the contact
//! sheet.

use crate::html::{Cell, Page, count, num};
use facepipe_formats::eval::{EvalFile, Group, Scores};

use crate::inputs::Eval;

/// The group the evaluation leads with (`headline`, else the first).
pub fn headline(info: &EvalFile) -> Option<&Group> {
    info.headline
        .as_deref()
        .and_then(|h| info.groups.iter().find(|g| g.name == h))
        .or(info.groups.first())
}

pub fn write(page: &mut Page, eval: Option<&Eval>) {
    page.section("evaluation", "Evaluation");
    let Some(e) = eval else {
        page.note("No unet-eval directory given (--eval).");
        return;
    };
    let i = &e.info;
    page.p(&format!(
        "From {}: the {} model ({}², {} weights) on {} items, {} with labels; settings {}.",
        e.dir.display(),
        i.model.arch,
        i.model.input_size,
        i.model.weights,
        i.items,
        i.labelled,
        serde_json::to_string(&i.settings).unwrap_or_default()
    ));
    page.p(&format!("Throughput: {:.1} images/s.", i.throughput.images_per_s));
    if i.groups.is_empty() {
        page.note("No labelled items: nothing was scored.");
    }
    for g in &i.groups {
        let s = &g.full_resolution;
        page.h3(&format!("{} ({} images)", g.name, g.images));
        page.cards(&[
            (num(s.pixel_accuracy), "pixel accuracy".into()),
            (num(s.mean_iou), "mean IoU".into()),
            (num(s.mean_iou_fg), "foreground mean IoU".into()),
            (num(s.mean_dice_fg), "foreground mean dice".into()),
        ]);
        per_class(page, i, g);
    }
    if let Some(g) = headline(i) {
        confusion(page, i, &g.name, &g.full_resolution);
    }
    match e.contact_sheet() {
        Some(p) => page.png(
            &p,
            "contact sheet",
            "Images, true and predicted masks (unet-eval's contact sheet).",
        ),
        None => page.note("No contact_sheet.png in the evaluation directory."),
    }
}

fn per_class(page: &mut Page, info: &EvalFile, g: &Group) {
    let model = &g.model_resolution;
    let rows: Vec<Vec<Cell>> = g
        .full_resolution
        .per_class
        .iter()
        .enumerate()
        .map(|(k, c)| {
            let rgb = info.classes.get(k).map(|c| c.rgb).unwrap_or([255, 255, 255]);
            let at_model = model.per_class.get(k).and_then(|c| c.iou);
            vec![
                Cell::class_name(&c.name, rgb),
                Cell::text(&count(c.truth_pixels)),
                Cell::text(&count(c.pred_pixels)),
                Cell::text(&num(c.dice)),
                Cell::text(&num(c.iou)),
                Cell::text(&num(at_model)),
            ]
        })
        .collect();
    page.table_cells(
        &[
            "class",
            "true pixels",
            "predicted pixels",
            "dice",
            "IoU",
            "IoU at model resolution",
        ],
        &rows,
        1,
    );
}

/// The confusion matrix as a table: each row (true class) in % of its pixels, shaded.
fn confusion(page: &mut Page, info: &EvalFile, group: &str, s: &Scores) {
    page.h3(&format!("Confusion matrix ({group}, full resolution)"));
    let names: Vec<String> = s.per_class.iter().map(|c| c.name.clone()).collect();
    let mut head: Vec<&str> = vec!["true \\ predicted"];
    head.extend(names.iter().map(String::as_str));
    let rows: Vec<Vec<Cell>> = s
        .confusion
        .iter()
        .enumerate()
        .map(|(t, row)| {
            let total: u64 = row.iter().sum();
            let rgb = info.classes.get(t).map(|c| c.rgb).unwrap_or([255, 255, 255]);
            let mut cells = vec![Cell::class_name(names.get(t).map(String::as_str).unwrap_or("?"), rgb)];
            for &n in row {
                let share = if total > 0 { n as f64 / total as f64 } else { 0.0 };
                let shade = (255.0 - 200.0 * share).round() as u8;
                let text = if n == 0 {
                    String::new()
                } else {
                    format!("{:.1}", 100.0 * share)
                };
                cells.push(Cell::shaded(&text, [shade, shade, 255]));
            }
            cells
        })
        .collect();
    page.table_cells(&head, &rows, 1);
    page.p("Each row: where the pixels of that true class went, in % of them.");
}
