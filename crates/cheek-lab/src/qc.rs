//! Quality-control pictures: each face with its outline, eyes and both patches, a contact
//! sheet of them (worst agreement first when there is a reference; laid out by
//! [`facepipe_plot::ContactSheet`]), and the scatter plot of measured against reference values.

use std::path::Path;

use anyhow::Result;
use facepipe_plot::{COLOURS, ContactSheet, LineChart, Series, SheetRow, SheetSection};
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
/// Side of a contact-sheet tile in pixels.
const TILE: u32 = 180;
/// The contact sheet's tile columns: a sheet row's caption has a line per tile, led by its
/// column's letter.
const COLUMNS: [&str; 4] = ["a", "b", "c", "d"];
/// Marks on a face picture: the eyes, the subject's left and right patch, and a patch that
/// could not be measured.
const EYE: [u8; 3] = COLOURS[5];
const LEFT: [u8; 3] = COLOURS[2];
const RIGHT: [u8; 3] = COLOURS[1];
const NOT_MEASURED: [u8; 3] = [230, 20, 20];

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

/// A face's values on the contact sheet: per cheek its CIEDE2000 against the reference, else
/// its L*, or `n/m` when it was not measurable.
fn values(row: &FaceRow, de: [Option<f64>; 2]) -> String {
    let side = |c: &crate::measure::CheekResult, d: Option<f64>| match (c.lab, d) {
        (Some(_), Some(d)) => format!("dE00 {d:.1}"),
        (Some(l), None) => format!("L {:.0}", l[0]),
        (None, _) => "n/m".into(),
    };
    format!("L: {}  R: {}", side(&row.left, de[0]), side(&row.right, de[1]))
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
            for (x, y) in [(e[0] as i64 + d, e[1] as i64), (e[0] as i64, e[1] as i64 + d)] {
                if x >= 0 && y >= 0 && (x as usize) < w && (y as usize) < h {
                    img.put_pixel(x as u32, y as u32, Rgb(EYE));
                }
            }
        }
    }
    for (c, col) in [(&row.left, LEFT), (&row.right, RIGHT)] {
        if let Some(b) = c.patch {
            rect(&mut img, b, Rgb(if c.lab.is_some() { col } else { NOT_MEASURED }));
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
    let mut thumbs: Vec<Thumb> = Vec::new();
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
        let photo = facepipe_core::photo::read_rgb8(img)?;
        let mask = facepipe_core::images::decode(mp, "mask")?.to_luma8();
        let keep = roles.face_pixels(mask.as_raw());
        let (labels, _) = components(&keep, mask.width() as usize, mask.height() as usize);
        for (j, row) in rows[k..k + n].iter().enumerate() {
            let pic = face_picture(&photo, &labels, row);
            facepipe_plot::save_png(&dir.join(file_name(row)), &pic)?;
            thumbs.push(Thumb::new(&pic, row, de[k + j]));
        }
        k += n;
    }
    // worst agreement first (faces without a comparison after), then keep a screenful
    thumbs.sort_by(|a, b| b.worst.total_cmp(&a.worst));
    let total = thumbs.len();
    thumbs.truncate(SHEET_MAX);
    if !thumbs.is_empty() {
        let sheet = sheet(&thumbs, total).render();
        facepipe_plot::save_png(&dir.join("contact_sheet.png"), &sheet)?;
    }
    Ok(())
}

/// A face on the contact sheet: how badly it agrees (the sort key), its tile and caption.
struct Thumb {
    /// `INFINITY` when a cheek is not measurable, else the worse cheek's CIEDE2000, or
    /// `NEG_INFINITY` when neither cheek has a reference to compare with.
    worst: f64,
    tile: RgbImage,
    face_id: String,
    values: String,
}

impl Thumb {
    /// `pic` (the face's QC picture) as a sheet tile, with `row`'s caption and sort key.
    fn new(pic: &RgbImage, row: &FaceRow, de: [Option<f64>; 2]) -> Self {
        let worst = if row.left.lab.is_none() || row.right.lab.is_none() {
            f64::INFINITY
        } else {
            de.iter().flatten().fold(f64::NEG_INFINITY, |a, &b| a.max(b))
        };
        Thumb {
            worst,
            tile: facepipe_plot::fit_square(pic, TILE, FilterType::Triangle),
            // a line break in an id would shift the caption lines off their columns
            face_id: row.face_id.replace('\n', " "),
            values: values(row, de),
        }
    }

    /// Which contact-sheet section the face is in (see [`SECTIONS`]).
    fn section(&self) -> usize {
        if self.worst == f64::INFINITY {
            0
        } else if self.worst.is_finite() {
            1
        } else {
            2
        }
    }

    /// The face's caption line under column `col`, cut to `max` characters by dropping the
    /// start of a long id (its end names the file).
    fn caption(&self, col: &str, max: usize) -> String {
        let fixed = col.len() + 4 + self.values.chars().count();
        let n = self.face_id.chars().count();
        let keep = max.saturating_sub(fixed);
        let id: String = self.face_id.chars().skip(n.saturating_sub(keep)).collect();
        format!("{col}  {id}  {}", self.values)
    }
}

/// The contact sheet's sections, in the order the faces are sorted.
const SECTIONS: [&str; 3] = [
    "not measurable (n/m)",
    "worst CIEDE2000 first",
    "no reference to compare with",
];

/// The contact sheet of `thumbs` (sorted, at most [`SHEET_MAX`] of `total` faces): a section
/// per kind of face, four faces to a row, with the patch colours as its legend.
fn sheet(thumbs: &[Thumb], total: usize) -> ContactSheet {
    let mut title = "cheek-lab QC: green = subject's left patch, orange = right, red = n/m".to_string();
    if total > thumbs.len() {
        title += &format!(" ({} of {total} faces)", thumbs.len());
    }
    let legend = [
        ("subject's left patch", LEFT),
        ("subject's right patch", RIGHT),
        ("patch not measurable", NOT_MEASURED),
        ("eyes", EYE),
    ];
    let mut sheet = ContactSheet {
        title,
        columns: COLUMNS.map(String::from).to_vec(),
        side: TILE,
        sections: vec![],
        legend: legend.map(|(name, rgb)| (name.to_string(), rgb)).to_vec(),
    };
    let max = sheet.caption_chars();
    sheet.sections = thumbs
        .chunk_by(|a, b| a.section() == b.section())
        .map(|faces| SheetSection {
            title: format!("{}: {}", SECTIONS[faces[0].section()], faces.len()),
            rows: faces.chunks(COLUMNS.len()).map(|r| sheet_row(r, max)).collect(),
        })
        .collect();
    sheet
}

/// A contact-sheet row of up to four faces: a caption line per face over their tiles.
fn sheet_row(faces: &[Thumb], max: usize) -> SheetRow {
    let lines: Vec<String> = faces.iter().zip(COLUMNS).map(|(t, col)| t.caption(col, max)).collect();
    SheetRow {
        caption: lines.join("\n"),
        tiles: faces.iter().map(|t| t.tile.clone()).collect(),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn thumb(worst: f64, face_id: &str) -> Thumb {
        Thumb {
            worst,
            tile: RgbImage::from_pixel(TILE, TILE, Rgb([1, 2, 3])),
            face_id: face_id.into(),
            values: "L: n/m  R: dE00 0.8".into(),
        }
    }

    #[test]
    fn a_long_id_keeps_its_end_on_the_sheet() {
        let t = thumb(1.0, "group/long-folder-name/photo#0");
        assert_eq!(
            t.caption("b", 80),
            "b  group/long-folder-name/photo#0  L: n/m  R: dE00 0.8"
        );
        let cut = t.caption("b", 40);
        assert_eq!(cut, "b  der-name/photo#0  L: n/m  R: dE00 0.8");
        assert_eq!(cut.len(), 40);
    }

    #[test]
    fn faces_are_grouped_into_sections_four_to_a_row() {
        let mut faces = vec![thumb(f64::INFINITY, "nm#0")];
        faces.extend((0..5).map(|i| thumb(5.0 - f64::from(i), &format!("f{i}#0"))));
        faces.push(thumb(f64::NEG_INFINITY, "noref#0"));
        let s = sheet(&faces, 60);
        assert!(s.title.ends_with("(7 of 60 faces)"), "{}", s.title);
        let titles: Vec<&str> = s.sections.iter().map(|x| x.title.as_str()).collect();
        assert_eq!(
            titles,
            [
                "not measurable (n/m): 1",
                "worst CIEDE2000 first: 5",
                "no reference to compare with: 1"
            ]
        );
        let rows = &s.sections[1].rows;
        assert_eq!((rows.len(), rows[0].tiles.len(), rows[1].tiles.len()), (2, 4, 1));
        assert_eq!(rows[0].caption.lines().next(), Some("a  f0#0  L: n/m  R: dE00 0.8"));
        assert_eq!(rows[0].caption.lines().nth(3), Some("d  f3#0  L: n/m  R: dE00 0.8"));
        assert_eq!(rows[1].caption, "a  f4#0  L: n/m  R: dE00 0.8");
        assert_eq!(s.render().width(), 4 * TILE + 5 * 8);
    }
}
