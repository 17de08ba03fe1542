//! The dataset: items and split, class balance, off-palette pixels, and what every stage did.

use facepipe_core::Split;
use facepipe_core::manifest::Loaded;

use crate::html::{Cell, Page, count};

pub fn write(page: &mut Page, manifest: Option<&Loaded>) {
    page.section("dataset", "Dataset");
    let Some(loaded) = manifest else {
        page.note("No manifest given (--manifest).");
        return;
    };
    let m = &loaded.manifest;
    page.p(&format!(
        "From {} ({} bytes, sha256 {}).",
        loaded.input.path, loaded.input.bytes, loaded.input.sha256
    ));
    let n = |s: Option<Split>| m.items.iter().filter(|i| i.split == s).count();
    let off: u64 = m.items.iter().filter_map(|i| i.off_palette).sum();
    let pixels: u64 = m
        .items
        .iter()
        .filter_map(|i| Some(i.width? as u64 * i.height? as u64))
        .sum();
    let mut cards = vec![
        (m.items.len().to_string(), "items".to_string()),
        (n(Some(Split::Train)).to_string(), "train".into()),
        (n(Some(Split::Valid)).to_string(), "valid".into()),
        (m.classes.len().to_string(), "classes".into()),
    ];
    if n(None) > 0 {
        cards.push((n(None).to_string(), "in no split".into()));
    }
    if pixels > 0 {
        cards.push((
            format!("{} ({:.3} %)", count(off), 100.0 * off as f64 / pixels as f64),
            "off-palette label pixels".into(),
        ));
    }
    page.cards(&cards);
    balance(page, loaded);
}

/// Each class's share of the labelled pixels, as a table with a bar per class.
fn balance(page: &mut Page, loaded: &Loaded) {
    let classes = &loaded.manifest.classes;
    page.h3("Class balance");
    let total: u64 = classes.iter().filter_map(|c| c.pixels).sum();
    if total == 0 {
        page.note("The manifest holds no pixel counts per class (rgb2class writes them).");
        return;
    }
    let rows: Vec<Vec<Cell>> = classes
        .iter()
        .map(|c| {
            let px = c.pixels.unwrap_or(0);
            let share = 100.0 * px as f64 / total as f64;
            let bar = Cell {
                html: format!(
                    "<div style=\"width:{:.2}px;height:10px;background:#1f77b4\"></div>",
                    (share * 3.0).max(1.0)
                ),
                class: Some("l"),
                background: None,
            };
            vec![
                Cell::text(&c.id.to_string()),
                Cell::class_name(&c.name, c.rgb),
                Cell::text(&count(px)),
                Cell::text(&format!("{share:.2} %")),
                bar,
            ]
        })
        .collect();
    page.table_cells(&["id", "class", "pixels", "share", ""], &rows, 2);
}
