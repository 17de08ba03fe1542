//! The pictures of an evaluation: predicted masks in colour and over the photo, the
//! confusion heat map and the contact sheet of the worst and best images (drawn by
//! [`facepipe_plot`]; what is mask-specific, the palette's colours, is here).

use std::path::Path;

use anyhow::Result;
use facepipe_core::palette::{Class, IGNORE};
use facepipe_plot::{ContactSheet, SheetRow, SheetSection};
use image::imageops::FilterType;
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
    let labels: Vec<&str> = classes.iter().map(|c| c.name.as_str()).collect();
    facepipe_plot::heatmap(
        title,
        "rows: true class, columns: predicted; cells: % of the row",
        &labels,
        &s.confusion,
    )
}

/// Writes `confusion.png`: the headline group's full-resolution confusion matrix (a run's
/// and a merge's alike).
pub(crate) fn write_confusion_png(out_dir: &Path, headline: &Group, classes: &[Class]) -> Result<()> {
    let title = format!(
        "confusion matrix: {} ({} images), full resolution",
        headline.name, headline.images
    );
    facepipe_plot::save_png(
        &out_dir.join("confusion.png"),
        &confusion_png(&headline.full_resolution, classes, &title),
    )
}

/// Side of a contact-sheet tile in pixels.
const SHEET_SIDE: u32 = 150;

/// One labelled item's row of the contact sheet: photo | truth | prediction | errors, under
/// its id and scores.
fn sheet_row(r: &ItemResult, out_dir: &Path, classes: &[Class]) -> Result<SheetRow> {
    let photo = unet::data::read_image(&r.image)?;
    let pred = facepipe_core::images::decode(&out_dir.join(&r.pred_mask), "predicted mask")?.to_luma8();
    let truth = facepipe_core::mask::read(r.mask.as_deref().expect("labelled"), classes.len())?;
    let c = r.full.as_ref().expect("labelled");
    let caption = format!(
        "{}  mean IoU {}  acc {}",
        r.id,
        fmt_short(rank_score(c, classes)),
        fmt_short(c.pixel_accuracy())
    );
    let fit = |img: &RgbImage, filter| facepipe_plot::fit_square(img, SHEET_SIDE, filter);
    Ok(SheetRow {
        caption,
        tiles: vec![
            fit(&photo, FilterType::Triangle),
            fit(&colourise(&truth, classes), FilterType::Nearest),
            fit(&colourise(&pred, classes), FilterType::Nearest),
            fit(&errors(&photo, &pred, &truth), FilterType::Nearest),
        ],
    })
}

/// The headline group's labelled items, worst first (by [`rank_score`], then id).
fn ranked<'a>(results: &'a [ItemResult], classes: &[Class], headline: &str, any_split: bool) -> Vec<&'a ItemResult> {
    let mut ranked: Vec<(f64, &ItemResult)> = results
        .iter()
        .filter(|r| group_name(r, any_split) == headline)
        .filter_map(|r| r.full.as_ref().and_then(|c| rank_score(c, classes)).map(|s| (s, r)))
        .collect();
    ranked.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.id.cmp(&b.1.id)));
    ranked.into_iter().map(|x| x.1).collect()
}

/// Writes `contact_sheet.png`: the headline group's `contact` worst images, then as many of
/// the best (never one twice), each as photo | truth | prediction | errors, with the palette
/// as a legend. Returns whether it was written (not when `contact` is 0 or nothing is ranked).
pub(crate) fn write_contact_sheet(
    out_dir: &Path,
    results: &[ItemResult],
    classes: &[Class],
    headline: &Group,
    scope: &Scope,
) -> Result<bool> {
    let ranked = ranked(results, classes, &headline.name, scope.any_split);
    if scope.contact == 0 || ranked.is_empty() {
        return Ok(false);
    }
    let worst = &ranked[..scope.contact.min(ranked.len())];
    let n_best = scope.contact.min(ranked.len() - worst.len());
    let best: Vec<&ItemResult> = ranked.iter().rev().take(n_best).copied().collect();
    let rows = |list: &[&ItemResult]| -> Result<Vec<SheetRow>> {
        list.iter().map(|r| sheet_row(r, out_dir, classes)).collect()
    };
    let mut sections = vec![SheetSection {
        title: format!("worst {} of {} ({})", worst.len(), ranked.len(), headline.name),
        rows: rows(worst)?,
    }];
    if !best.is_empty() {
        sections.push(SheetSection {
            title: format!("best {}", best.len()),
            rows: rows(&best)?,
        });
    }
    let sheet = ContactSheet {
        title: "unet-eval contact sheet".into(),
        columns: ["photo", "truth", "prediction", "errors (red)"]
            .map(String::from)
            .to_vec(),
        side: SHEET_SIDE,
        sections,
        legend: classes.iter().map(|c| (c.name.clone(), c.rgb)).collect(),
    };
    facepipe_plot::save_png(&out_dir.join("contact_sheet.png"), &sheet.render())?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use facepipe_core::metrics::Confusion;

    use crate::test_classes as classes;

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
