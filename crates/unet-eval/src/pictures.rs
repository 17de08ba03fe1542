//! The pictures of an evaluation: predicted masks in colour and over the photo, the
//! confusion heat map and the contact sheet of the worst and best images.

use std::path::Path;

use anyhow::Result;
use facepipe_core::palette::{Class, IGNORE};
use facepipe_plot::{COLOURS, Canvas};
use image::imageops::{self, FilterType};
use image::{GrayImage, Rgb, RgbImage};

use crate::ItemResult;
use crate::eval_file::*;
use crate::tables::fmt_short;

/// Stripes for pixels with no class (ignored or not predicted).
pub(crate) fn hatch(x: u32, y: u32) -> [u8; 3] {
    if ((x + y) / 3).is_multiple_of(2) {
        [90, 90, 90]
    } else {
        [170, 170, 170]
    }
}

/// A class mask in the palette's colours (255 hatched grey).
pub fn colourise(mask: &GrayImage, classes: &[Class]) -> RgbImage {
    RgbImage::from_fn(mask.width(), mask.height(), |x, y| {
        let v = mask.get_pixel(x, y).0[0];
        Rgb(classes.get(usize::from(v)).map_or_else(|| hatch(x, y), |c| c.rgb))
    })
}

/// The prediction blended over the photo (45 % colour); background pixels left as they are.
pub fn overlay(photo: &RgbImage, mask: &GrayImage, classes: &[Class]) -> RgbImage {
    let bg = background(classes);
    RgbImage::from_fn(photo.width(), photo.height(), |x, y| {
        let p = photo.get_pixel(x, y).0;
        let v = usize::from(mask.get_pixel(x, y).0[0]);
        match classes.get(v) {
            Some(c) if Some(v) != bg => Rgb(std::array::from_fn(|k| {
                (f32::from(p[k]) * 0.55 + f32::from(c.rgb[k]) * 0.45).round() as u8
            })),
            _ => Rgb(p),
        }
    })
}

/// Wrong pixels in red over a faded photo; unlabelled or unpredicted pixels hatched.
pub(crate) fn errors(photo: &RgbImage, pred: &GrayImage, truth: &GrayImage) -> RgbImage {
    RgbImage::from_fn(photo.width(), photo.height(), |x, y| {
        let (p, t) = (pred.get_pixel(x, y).0[0], truth.get_pixel(x, y).0[0]);
        if t == IGNORE || p == IGNORE {
            return Rgb(hatch(x, y));
        }
        if p != t {
            return Rgb([230, 20, 20]);
        }
        let g = photo.get_pixel(x, y).0;
        let l = (u32::from(g[0]) * 3 + u32::from(g[1]) * 6 + u32::from(g[2])) / 10;
        Rgb([((255 + l) / 2) as u8; 3])
    })
}

/// The confusion matrix as a heat map: each row as percentages of its true class.
pub fn confusion_png(s: &Scores, classes: &[Class], title: &str) -> RgbImage {
    let n = classes.len() as u32;
    let cell = 34u32;
    let label_w = classes
        .iter()
        .map(|c| Canvas::text_width(&c.name, 1))
        .max()
        .unwrap_or(0)
        + 12;
    let (left, top) = (label_w + 14, label_w + 44);
    let (w, h) = (left + n * cell + 20, top + n * cell + 40);
    let mut cv = Canvas::new(w.max(Canvas::text_width(title, 1) + 20), h);
    let ink = Rgb([30, 30, 30]);
    cv.text(10, 8, title, 1, ink);
    cv.text(
        10,
        22,
        "rows: true class, columns: predicted; cells: % of the row",
        1,
        Rgb([90, 90, 90]),
    );
    let blue = COLOURS[0];
    // grid: cells are drawn one pixel short of their pitch over a light grey square
    cv.rect(
        i64::from(left) - 1,
        i64::from(top) - 1,
        n * cell + 1,
        n * cell + 1,
        Rgb([215, 215, 215]),
    );
    for (i, c) in classes.iter().enumerate() {
        let y = top + i as u32 * cell + cell / 2 - 4;
        cv.text(
            i64::from(left - 6 - Canvas::text_width(&c.name, 1)),
            i64::from(y),
            &c.name,
            1,
            ink,
        );
        let x = left + i as u32 * cell + cell / 2 - 4;
        cv.text_up(i64::from(x), i64::from(top - 6), &c.name, ink);
    }
    for (t, row) in s.confusion.iter().enumerate() {
        let total: u64 = row.iter().sum();
        for (p, &v) in row.iter().enumerate() {
            let f = if total > 0 { v as f64 / total as f64 } else { 0.0 };
            let col = Rgb(std::array::from_fn(|k| {
                (255.0 - (255.0 - f64::from(blue[k])) * f.sqrt()).round() as u8
            }));
            let (x, y) = (left + p as u32 * cell, top + t as u32 * cell);
            cv.rect(i64::from(x), i64::from(y), cell - 1, cell - 1, col);
            if total > 0 && v > 0 {
                // never "0" for some pixels, never "100" for not all
                let label = match f * 100.0 {
                    p if p < 1.0 => "<1".to_string(),
                    p if v < total => format!("{:.0}", p.min(99.0)),
                    _ => "100".to_string(),
                };
                let tw = Canvas::text_width(&label, 1);
                let fg = if f > 0.4 { Rgb([255, 255, 255]) } else { ink };
                cv.text(
                    i64::from(x + (cell - tw) / 2),
                    i64::from(y + cell / 2 - 4),
                    &label,
                    1,
                    fg,
                );
            }
        }
    }
    cv.img
}

/// One row of the contact sheet.
pub(crate) struct SheetRow {
    label: String,
    panels: [RgbImage; 4],
}

pub(crate) fn sheet_row(r: &ItemResult, out_dir: &Path, classes: &[Class], mask: &Path, side: u32) -> Result<SheetRow> {
    let photo = unet::data::read_image(&r.image)?;
    let pred = facepipe_core::images::decode(&out_dir.join(&r.pred_mask), "predicted mask")?.to_luma8();
    let truth = facepipe_core::mask::read(mask, classes.len())?;
    let c = r.full.as_ref().expect("labelled");
    let label = format!(
        "{}  mean IoU {}  acc {}",
        r.id,
        fmt_short(rank_score(c, classes)),
        fmt_short(c.pixel_accuracy())
    );
    Ok(SheetRow {
        label,
        panels: [
            facepipe_plot::fit_square(&photo, side, FilterType::Triangle),
            facepipe_plot::fit_square(&colourise(&truth, classes), side, FilterType::Nearest),
            facepipe_plot::fit_square(&colourise(&pred, classes), side, FilterType::Nearest),
            facepipe_plot::fit_square(&errors(&photo, &pred, &truth), side, FilterType::Nearest),
        ],
    })
}

/// The contact sheet: worst images first, then the best, each as photo | truth | prediction |
/// errors, with the palette as a legend.
pub(crate) fn contact_sheet(sections: &[(String, Vec<SheetRow>)], classes: &[Class], side: u32) -> RgbImage {
    let (gap, label_h, head_h) = (8u32, 14u32, 22u32);
    let rows: u32 = sections.iter().map(|(_, r)| r.len() as u32).sum();
    let legend_rows = (classes.len() as u32).div_ceil(4);
    let width = 4 * side + 5 * gap;
    let height = 30 + 14 + sections.len() as u32 * head_h + rows * (side + label_h + gap) + legend_rows * 14 + 20;
    let mut cv = Canvas::new(width, height);
    let ink = Rgb([30, 30, 30]);
    cv.text(i64::from(gap), 8, "unet-eval contact sheet", 1, ink);
    for (k, name) in ["photo", "truth", "prediction", "errors (red)"].iter().enumerate() {
        cv.text(i64::from(gap + k as u32 * (side + gap)), 26, name, 1, Rgb([90, 90, 90]));
    }
    let mut y = 44u32;
    for (title, list) in sections {
        cv.text(i64::from(gap), i64::from(y + 6), title, 1, Rgb(COLOURS[1]));
        y += head_h;
        for row in list {
            let max_chars = (width - 2 * gap) / 8;
            let label: String = row.label.chars().take(max_chars as usize).collect();
            cv.text(i64::from(gap), i64::from(y), &label, 1, ink);
            y += label_h;
            for (k, p) in row.panels.iter().enumerate() {
                imageops::overlay(&mut cv.img, p, i64::from(gap + k as u32 * (side + gap)), i64::from(y));
            }
            y += side + gap;
        }
    }
    for (i, c) in classes.iter().enumerate() {
        let (col, row) = (i as u32 % 4, i as u32 / 4);
        let (x, yy) = (gap + col * (width - gap) / 4, y + 4 + row * 14);
        cv.rect(i64::from(x), i64::from(yy), 10, 10, Rgb(c.rgb));
        let name: String = c.name.chars().take(((width / 4 - 18) / 8) as usize).collect();
        cv.text(i64::from(x + 14), i64::from(yy + 1), &name, 1, ink);
    }
    cv.img
}

#[cfg(test)]
mod tests {
    use super::*;
    use facepipe_core::metrics::Confusion;

    fn classes() -> Vec<Class> {
        vec![
            Class::new(0, "background", [0, 0, 0]),
            Class::new(1, "skin", [1, 1, 1]),
            Class::new(2, "eyes", [2, 2, 2]),
        ]
    }

    #[test]
    fn pictures_use_the_palette() {
        let mask = GrayImage::from_raw(3, 1, vec![0, 2, 255]).unwrap();
        let c = colourise(&mask, &classes());
        assert_eq!((c.get_pixel(0, 0).0, c.get_pixel(1, 0).0), ([0, 0, 0], [2, 2, 2]));
        assert!(c.get_pixel(2, 0).0[0] >= 90, "no class: hatched grey");
        let photo = RgbImage::from_pixel(3, 1, Rgb([200, 100, 0]));
        let o = overlay(&photo, &mask, &classes());
        assert_eq!(o.get_pixel(0, 0).0, [200, 100, 0], "background left clear");
        assert_eq!(o.get_pixel(1, 0).0, [111, 56, 1]);
        let heat = confusion_png(
            &Scores::from_confusion(&Confusion::new(3), &classes(), None),
            &classes(),
            "t",
        );
        assert!(heat.width() > 100 && heat.height() > 100);
    }
}
