//! A square matrix of counts as a heat map (a confusion matrix): each row shaded as shares of
//! its own total, with the share printed in every non-empty cell.

use image::{Rgb, RgbImage};

use crate::{COLOURS, Canvas, INK};

/// Side of one cell in pixels (the pitch; cells are drawn one pixel short of it).
const CELL: u32 = 34;
/// The note's grey.
const NOTE: Rgb<u8> = Rgb([90, 90, 90]);
/// The grid's grey, seen between the cells.
const GRID: Rgb<u8> = Rgb([215, 215, 215]);

/// Where the matrix lies on the canvas.
struct Layout {
    left: u32,
    top: u32,
}

/// Draws `counts` (row `t`, column `p`) as a heat map under `title` and a one-line `note`,
/// each row as percentages of its total: white for none, the first of [`COLOURS`] for all.
/// `labels` name the rows (left) and the columns (above, reading upwards); the grid has
/// `labels.len()` rows and columns.
pub fn heatmap(title: &str, note: &str, labels: &[&str], counts: &[Vec<u64>]) -> RgbImage {
    let n = labels.len() as u32;
    let label_w = labels.iter().map(|l| Canvas::text_width(l, 1)).max().unwrap_or(0) + 12;
    let at = Layout {
        left: label_w + 14,
        top: label_w + 44,
    };
    let (w, h) = (at.left + n * CELL + 20, at.top + n * CELL + 40);
    let mut cv = Canvas::new(w.max(Canvas::text_width(title, 1) + 20), h);
    cv.text(10, 8, title, 1, INK);
    cv.text(10, 22, note, 1, NOTE);
    // grid: cells are drawn one pixel short of their pitch over a light grey square
    cv.rect(
        i64::from(at.left) - 1,
        i64::from(at.top) - 1,
        n * CELL + 1,
        n * CELL + 1,
        GRID,
    );
    draw_labels(&mut cv, &at, labels);
    for (t, row) in counts.iter().enumerate() {
        draw_row(&mut cv, &at, t as u32, row);
    }
    cv.img
}

/// The row labels, right-aligned left of the grid, and the column labels above it.
fn draw_labels(cv: &mut Canvas, at: &Layout, labels: &[&str]) {
    for (i, name) in labels.iter().enumerate() {
        let y = at.top + i as u32 * CELL + CELL / 2 - 4;
        cv.text(
            i64::from(at.left - 6 - Canvas::text_width(name, 1)),
            i64::from(y),
            name,
            1,
            INK,
        );
        let x = at.left + i as u32 * CELL + CELL / 2 - 4;
        cv.text_up(i64::from(x), i64::from(at.top - 6), name, INK);
    }
}

/// Row `t`'s cells, shaded by their share of the row, with the share in the non-empty ones.
fn draw_row(cv: &mut Canvas, at: &Layout, t: u32, row: &[u64]) {
    let total: u64 = row.iter().sum();
    for (p, &v) in row.iter().enumerate() {
        let f = if total > 0 { v as f64 / total as f64 } else { 0.0 };
        let (x, y) = (at.left + p as u32 * CELL, at.top + t * CELL);
        cv.rect(i64::from(x), i64::from(y), CELL - 1, CELL - 1, shade(f));
        if total > 0 && v > 0 {
            let label = share_label(v, total, f);
            let tw = Canvas::text_width(&label, 1);
            let fg = if f > 0.4 { Rgb([255, 255, 255]) } else { INK };
            cv.text(
                i64::from(x + (CELL - tw) / 2),
                i64::from(y + CELL / 2 - 4),
                &label,
                1,
                fg,
            );
        }
    }
}

/// A cell's colour for share `f` of its row: white to the first series colour, by √f so
/// that small shares still show.
fn shade(f: f64) -> Rgb<u8> {
    let blue = COLOURS[0];
    Rgb(std::array::from_fn(|k| {
        (255.0 - (255.0 - f64::from(blue[k])) * f.sqrt()).round() as u8
    }))
}

/// A cell's percentage: never "0" for some counts, never "100" for not all of the row.
fn share_label(v: u64, total: u64, f: f64) -> String {
    match f * 100.0 {
        p if p < 1.0 => "<1".to_string(),
        p if v < total => format!("{:.0}", p.min(99.0)),
        _ => "100".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_map_is_sized_by_its_labels_and_shades_rows_by_their_shares() {
        let labels = ["a", "bb"];
        let img = heatmap("t", "note", &labels, &[vec![3, 1], vec![0, 0]]);
        // label_w = 2·8 + 12 = 28: left 42, top 72; 2 cells of 34
        assert_eq!(img.dimensions(), (42 + 68 + 20, 72 + 68 + 40));
        // the first cell holds 3/4 of its row: √0.75 of the way to the first colour
        let want = shade(0.75).0;
        assert_eq!(img.get_pixel(42 + 1, 72 + 1).0, want);
        assert_eq!(want, [34, 133, 188]);
        // an empty row stays white; the grid shows between cells
        assert_eq!(img.get_pixel(42 + 1, 72 + 34 + 1).0, [255, 255, 255]);
        assert_eq!(img.get_pixel(42 + 33, 72 + 1).0, GRID.0);
        // a long title widens the picture
        let wide = heatmap(&"x".repeat(40), "", &labels, &[]);
        assert_eq!(wide.width(), 40 * 8 + 20);
    }

    #[test]
    fn shares_are_labelled_without_false_zeros_or_hundreds() {
        assert_eq!(share_label(1, 1000, 0.001), "<1");
        assert_eq!(share_label(999, 1000, 0.999), "99");
        assert_eq!(share_label(5, 5, 1.0), "100");
        assert_eq!(share_label(1, 4, 0.25), "25");
        assert_eq!(shade(0.0).0, [255, 255, 255]);
        assert_eq!(shade(1.0).0, COLOURS[0]);
    }

    #[test]
    fn cells_print_their_share_in_white_on_dark_cells() {
        let img = heatmap("t", "", &["a"], &[vec![7]]);
        // one full cell: dark blue with white "100" in it
        // label_w = 8 + 12: left 34, top 64
        let cell: Vec<[u8; 3]> = (64..64 + 33)
            .flat_map(|y| (34..34 + 33).map(move |x| (x, y)))
            .map(|(x, y)| img.get_pixel(x, y).0)
            .collect();
        assert!(cell.contains(&[255, 255, 255]), "the label is drawn in white");
        assert!(cell.contains(&COLOURS[0]), "the cell is the full colour");
    }
}
