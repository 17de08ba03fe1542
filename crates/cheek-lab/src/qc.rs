//! Quality-control pictures: each face with its outline, eyes and both patches, a contact
//! sheet of them (worst agreement first when there is a reference), and the scatter plot of
//! measured against reference values.

use std::path::Path;

use anyhow::Result;
use facepipe_plot::{COLOURS, Canvas, LineChart, Series};
use image::imageops::{self, FilterType};
use image::{Rgb, RgbImage};

use crate::components::components;
use crate::reference::Row;
use crate::roles::Roles;
use crate::{FaceRow, ItemResult};

/// The ledger in the QC folder.
pub(crate) const MARKER: &str = ".cheek-lab";
/// Faces on the contact sheet.
const SHEET_MAX: usize = 48;

/// A face's picture name: the item id with anything but letters, digits, `-`, `_` and `.`
/// replaced by `_`, and then (when something was replaced) a short hash of the id, so that
/// ids such as `g1/a b` and `g1/a_b` never share a file.
fn file_name(row: &FaceRow) -> String {
    let safe: String = row
        .id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if safe == row.id {
        format!("{safe}_f{}.png", row.face)
    } else {
        let h = facepipe_core::io::sha256_hex(row.id.as_bytes());
        format!("{safe}~{}_f{}.png", &h[..8], row.face)
    }
}

fn rect(img: &mut RgbImage, b: [u32; 4], c: Rgb<u8>) {
    let (w, h) = img.dimensions();
    for t in 0..2u32 {
        for x in b[0]..b[2] {
            for y in [b[1] + t, (b[3].max(1) - 1).saturating_sub(t)] {
                if x < w && y < h {
                    img.put_pixel(x, y, c);
                }
            }
        }
        for y in b[1]..b[3] {
            for x in [b[0] + t, (b[2].max(1) - 1).saturating_sub(t)] {
                if x < w && y < h {
                    img.put_pixel(x, y, c);
                }
            }
        }
    }
}

fn caption(row: &FaceRow, de: [Option<f64>; 2]) -> String {
    let side = |c: &crate::measure::CheekResult, d: Option<f64>| match (c.lab, d) {
        (Some(_), Some(d)) => format!("dE00 {d:.1}"),
        (Some(l), None) => format!("L {:.0}", l[0]),
        (None, _) => "n/m".into(),
    };
    format!(
        "{}\nL: {}  R: {}",
        row.face_id,
        side(&row.left, de[0]),
        side(&row.right, de[1])
    )
}

/// One face's picture: the photo with the face outline (white), the eyes (blue crosses), the
/// subject's left patch (green) and right patch (orange).
fn face_picture(photo: &RgbImage, labels: &[u32], row: &FaceRow) -> RgbImage {
    let mut img = photo.clone();
    let (w, h) = (photo.width() as usize, photo.height() as usize);
    if row.label > 0 {
        for y in 0..h {
            for x in 0..w {
                let i = y * w + x;
                if labels[i] != row.label {
                    continue;
                }
                let edge = [(0i64, 1i64), (1, 0), (0, -1), (-1, 0)].iter().any(|&(dx, dy)| {
                    let (nx, ny) = (x as i64 + dx, y as i64 + dy);
                    nx < 0
                        || ny < 0
                        || nx >= w as i64
                        || ny >= h as i64
                        || labels[ny as usize * w + nx as usize] != row.label
                });
                if edge {
                    img.put_pixel(x as u32, y as u32, Rgb([255, 255, 255]));
                }
            }
        }
    }
    for e in &row.eyes {
        for d in -3i64..=3 {
            for (x, y) in [(e.x as i64 + d, e.y as i64), (e.x as i64, e.y as i64 + d)] {
                if x >= 0 && y >= 0 && (x as usize) < w && (y as usize) < h {
                    img.put_pixel(x as u32, y as u32, Rgb(COLOURS[5]));
                }
            }
        }
    }
    for (c, col) in [(&row.left, COLOURS[2]), (&row.right, COLOURS[1])] {
        if let Some(b) = c.patch {
            rect(&mut img, b, Rgb(if c.lab.is_some() { col } else { [230, 20, 20] }));
        }
    }
    img
}

/// Writes `DIR/ID_fN.png` per face and `DIR/contact_sheet.png`.
pub fn write(
    folder: &mut facepipe_core::out::OutDir,
    dir: &Path,
    results: &[ItemResult],
    rows: &[FaceRow],
    de: &[[Option<f64>; 2]],
    roles: &Roles,
) -> Result<()> {
    folder.begin(rows.iter().map(file_name).chain(["contact_sheet.png".to_string()]))?;
    let mut k = 0;
    let mut thumbs: Vec<(f64, RgbImage, String)> = Vec::new();
    for r in results {
        let n = r.rows.len();
        let (Some(img), Some(mp)) = (&r.image, &r.mask) else {
            k += n;
            continue;
        };
        if r.rows.iter().all(|row| row.faces_in_image == 0) {
            k += n;
            continue;
        }
        let photo = facepipe_core::images::decode(img, "image")?.to_rgb8();
        let mask = facepipe_core::images::decode(mp, "mask")?.to_luma8();
        let keep = roles.face_pixels(mask.as_raw());
        let (labels, _) = components(&keep, mask.width() as usize, mask.height() as usize);
        for (j, row) in rows[k..k + n].iter().enumerate() {
            let pic = face_picture(&photo, &labels, row);
            facepipe_plot::save_png(&dir.join(file_name(row)), &pic)?;
            let d = de[k + j];
            // not measurable first, then the worst agreement
            let worst = if row.left.lab.is_none() || row.right.lab.is_none() {
                f64::INFINITY
            } else {
                d.iter().flatten().fold(f64::NEG_INFINITY, |a, &b| a.max(b))
            };
            thumbs.push((
                worst,
                facepipe_plot::fit_square(&pic, 180, FilterType::Triangle),
                caption(row, d),
            ));
        }
        k += n;
    }
    // worst agreement first (faces without a comparison after), then keep a screenful
    thumbs.sort_by(|a, b| b.0.total_cmp(&a.0));
    thumbs.truncate(SHEET_MAX);
    if !thumbs.is_empty() {
        facepipe_plot::save_png(&dir.join("contact_sheet.png"), &sheet(&thumbs))?;
    }
    Ok(())
}

fn sheet(thumbs: &[(f64, RgbImage, String)]) -> RgbImage {
    let (cols, side, gap, cap) = (4u32, 180u32, 8u32, 24u32);
    let rows = (thumbs.len() as u32).div_ceil(cols);
    let width = cols * (side + gap) + gap;
    let mut cv = Canvas::new(width, 40 + rows * (side + cap + gap));
    let ink = Rgb([30, 30, 30]);
    cv.text(
        i64::from(gap),
        8,
        "cheek-lab QC: green = subject's left patch, orange = right, red = n/m",
        1,
        ink,
    );
    cv.text(
        i64::from(gap),
        22,
        "n/m (not measurable) first, then worst CIEDE2000",
        1,
        Rgb([90, 90, 90]),
    );
    for (i, (_, t, c)) in thumbs.iter().enumerate() {
        let (col, row) = (i as u32 % cols, i as u32 / cols);
        let (x, y) = (gap + col * (side + gap), 40 + row * (side + cap + gap));
        imageops::overlay(&mut cv.img, t, i64::from(x), i64::from(y));
        for (k, line) in c.lines().enumerate() {
            // long ids keep their end (the file name)
            let n = line.chars().count();
            let keep = (side / 8) as usize;
            let text: String = line.chars().skip(n.saturating_sub(keep)).collect();
            cv.text(i64::from(x), i64::from(y + side + 3 + 10 * k as u32), &text, 1, ink);
        }
    }
    cv.img
}

/// Measured against reference L*, a*, b*, one panel each, with the identity line.
pub fn scatter(path: &Path, rows: &[FaceRow], refs: &[Option<&Row>]) -> Result<()> {
    let mut pts: [Vec<(f64, f64)>; 3] = Default::default();
    for (row, m) in rows.iter().zip(refs) {
        let Some(m) = m else { continue };
        for (c, rv) in [(&row.left, m.left), (&row.right, m.right)] {
            if let (Some(lab), Some(rv)) = (c.lab, rv) {
                for k in 0..3 {
                    pts[k].push((rv[k], lab[k]));
                }
            }
        }
    }
    let panels: Vec<RgbImage> = ["L*", "a*", "b*"]
        .iter()
        .zip(&pts)
        .map(|(name, p)| {
            let (lo, hi) = p.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &(x, y)| {
                (a.min(x).min(y), b.max(x).max(y))
            });
            let ident = if lo.is_finite() {
                vec![(lo, lo), (hi, hi)]
            } else {
                vec![]
            };
            LineChart {
                title: format!("{name}: measured vs reference"),
                x_label: format!("reference {name}"),
                y_label: format!("cheek-lab {name}"),
                log_x: false,
                series: vec![
                    Series {
                        name: format!("cheeks ({})", p.len()),
                        points: p.clone(),
                        dots: true,
                    },
                    Series {
                        name: "y = x".into(),
                        points: ident,
                        dots: false,
                    },
                ],
                markers: vec![],
            }
            .render(420, 400)
        })
        .collect();
    let mut out = RgbImage::from_pixel(3 * 420, 400, Rgb([255, 255, 255]));
    for (i, p) in panels.iter().enumerate() {
        imageops::overlay(&mut out, p, i as i64 * 420, 0);
    }
    facepipe_plot::save_png(path, &out)
}
