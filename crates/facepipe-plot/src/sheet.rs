//! A contact sheet: rows of square tiles under a caption each, grouped into titled sections,
//! with a heading over each column and a colour legend at the bottom.

use image::imageops;
use image::{Rgb, RgbImage};

use crate::{COLOURS, Canvas, INK};

/// Space between tiles and around the edges.
const GAP: u32 = 8;
/// Height of a row's caption line.
const CAPTION_H: u32 = 14;
/// Height of a section's title line.
const HEAD_H: u32 = 22;
/// Where the first section starts: below the title and the column headings.
const BODY_TOP: u32 = 44;
/// Legend entries per line, and the height of a line.
const LEGEND_COLS: u32 = 4;
const LEGEND_H: u32 = 14;
/// The column headings' grey.
const HEADING: Rgb<u8> = Rgb([90, 90, 90]);

/// One row of a contact sheet: a caption over `side`×`side` tiles (see [`crate::fit_square`]).
/// A caption may take several lines, split at `\n` (e.g. one line per tile).
#[derive(Clone, Debug)]
pub struct SheetRow {
    pub caption: String,
    pub tiles: Vec<RgbImage>,
}

/// A titled group of rows (e.g. "worst 6 of 40").
#[derive(Clone, Debug)]
pub struct SheetSection {
    pub title: String,
    pub rows: Vec<SheetRow>,
}

/// A contact sheet: one tile column per heading, each `side` pixels square; caption lines
/// longer than the sheet is wide are cut (see [`ContactSheet::caption_chars`]). The legend names colours (e.g. a palette's classes).
#[derive(Clone, Debug)]
pub struct ContactSheet {
    pub title: String,
    pub columns: Vec<String>,
    pub side: u32,
    pub sections: Vec<SheetSection>,
    pub legend: Vec<(String, [u8; 3])>,
}

impl ContactSheet {
    /// The sheet's width: the tile columns and the gaps around them.
    fn width(&self) -> u32 {
        let cols = self.columns.len() as u32;
        cols * self.side + (cols + 1) * GAP
    }

    /// How many characters of a caption line fit across the sheet; the rest is cut.
    pub fn caption_chars(&self) -> usize {
        (self.width().saturating_sub(2 * GAP) / 8) as usize
    }

    /// A row's height: its caption lines, its tiles and the gap below.
    fn row_height(&self, row: &SheetRow) -> u32 {
        caption_lines(row).count() as u32 * CAPTION_H + self.side + GAP
    }

    /// The sheet's height: title, headings, every section and row, and the legend.
    fn height(&self) -> u32 {
        let rows: u32 = self
            .sections
            .iter()
            .flat_map(|s| &s.rows)
            .map(|r| self.row_height(r))
            .sum();
        let legend_rows = (self.legend.len() as u32).div_ceil(LEGEND_COLS);
        BODY_TOP + self.sections.len() as u32 * HEAD_H + rows + legend_rows * LEGEND_H + 20
    }

    /// Left edge of tile column `k`.
    fn column_x(&self, k: usize) -> u32 {
        GAP + k as u32 * (self.side + GAP)
    }

    /// Draws the sheet.
    pub fn render(&self) -> RgbImage {
        let mut cv = Canvas::new(self.width(), self.height());
        cv.text(i64::from(GAP), 8, &self.title, 1, INK);
        for (k, name) in self.columns.iter().enumerate() {
            cv.text(i64::from(self.column_x(k)), 26, name, 1, HEADING);
        }
        let mut y = BODY_TOP;
        for section in &self.sections {
            y = self.draw_section(&mut cv, section, y);
        }
        self.draw_legend(&mut cv, y);
        cv.img
    }

    /// Draws a section from `y` down; returns where the next one starts.
    fn draw_section(&self, cv: &mut Canvas, section: &SheetSection, mut y: u32) -> u32 {
        cv.text(i64::from(GAP), i64::from(y + 6), &section.title, 1, Rgb(COLOURS[1]));
        y += HEAD_H;
        let max_chars = self.caption_chars();
        for row in &section.rows {
            for line in caption_lines(row) {
                let line: String = line.chars().take(max_chars).collect();
                cv.text(i64::from(GAP), i64::from(y), &line, 1, INK);
                y += CAPTION_H;
            }
            for (k, tile) in row.tiles.iter().enumerate() {
                imageops::overlay(&mut cv.img, tile, i64::from(self.column_x(k)), i64::from(y));
            }
            y += self.side + GAP;
        }
        y
    }

    /// The legend below `y`: a swatch and a (cut) name per entry, four to a line.
    fn draw_legend(&self, cv: &mut Canvas, y: u32) {
        let width = self.width();
        let max_chars = ((width / LEGEND_COLS).saturating_sub(18) / 8) as usize;
        for (i, (name, rgb)) in self.legend.iter().enumerate() {
            let (col, row) = (i as u32 % LEGEND_COLS, i as u32 / LEGEND_COLS);
            let (x, yy) = (
                GAP + col * width.saturating_sub(GAP) / LEGEND_COLS,
                y + 4 + row * LEGEND_H,
            );
            cv.rect(i64::from(x), i64::from(yy), 10, 10, Rgb(*rgb));
            let name: String = name.chars().take(max_chars).collect();
            cv.text(i64::from(x + 14), i64::from(yy + 1), &name, 1, INK);
        }
    }
}

/// A row's caption lines (one, possibly empty, when it has no `\n`).
fn caption_lines(row: &SheetRow) -> std::str::Split<'_, char> {
    row.caption.split('\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tile(side: u32, rgb: [u8; 3]) -> RgbImage {
        RgbImage::from_pixel(side, side, Rgb(rgb))
    }

    fn sheet() -> ContactSheet {
        let row = |c: &str, rgb| SheetRow {
            caption: c.into(),
            tiles: vec![tile(20, rgb), tile(20, [0, 200, 0])],
        };
        ContactSheet {
            title: "sheet".into(),
            columns: vec!["left".into(), "right".into()],
            side: 20,
            sections: vec![
                SheetSection {
                    title: "worst".into(),
                    rows: vec![row("a", [200, 0, 0]), row("b", [0, 0, 200])],
                },
                SheetSection {
                    title: "best".into(),
                    rows: vec![row(&"c".repeat(100), [7, 7, 7])],
                },
            ],
            legend: (0..5).map(|i| (format!("class {i}"), [i * 40, 10, 10])).collect(),
        }
    }

    #[test]
    fn the_sheet_is_sized_by_its_columns_rows_and_legend() {
        let img = sheet().render();
        // 2 tiles of 20 and 3 gaps; 44 + 2 sections + 3 rows + 2 legend lines + 20
        assert_eq!(
            img.dimensions(),
            (2 * 20 + 3 * 8, 44 + 2 * 22 + 3 * (20 + 14 + 8) + 2 * 14 + 20)
        );
    }

    #[test]
    fn tiles_sit_in_their_columns_below_their_captions() {
        let img = sheet().render();
        // first section: title at 44, first row's caption at 66, its tiles at 80
        assert_eq!(img.get_pixel(8, 80).0, [200, 0, 0]);
        assert_eq!(img.get_pixel(8 + 19, 80 + 19).0, [200, 0, 0]);
        assert_eq!(img.get_pixel(8 + 28, 80).0, [0, 200, 0], "second column");
        assert_eq!(img.get_pixel(8 + 20, 80).0, [255, 255, 255], "the gap");
        // second row: 80 + 20 + 8 + 14
        assert_eq!(img.get_pixel(8, 122).0, [0, 0, 200]);
        // second section's row, after its title line
        assert_eq!(img.get_pixel(8, 122 + 28 + 22 + 14).0, [7, 7, 7]);
    }

    #[test]
    fn a_caption_of_several_lines_takes_a_line_each() {
        let mut s = sheet();
        let one_line = s.render().height();
        s.sections[0].rows[0].caption = "a\nb\nc".into();
        let img = s.render();
        assert_eq!(img.height(), one_line + 2 * 14);
        // the first row's captions at 66, 80 and 94, its tiles below them at 108
        let inked = |y0: u32| (y0..y0 + 8).any(|y| (8..16).any(|x| img.get_pixel(x, y).0 == INK.0));
        assert!(inked(66) && inked(80) && inked(94), "one line each");
        assert_eq!(img.get_pixel(8, 107).0, [255, 255, 255]);
        assert_eq!(img.get_pixel(8, 108).0, [200, 0, 0]);
        assert_eq!(
            img.get_pixel(8, 108 + 20 + 8 + 14).0,
            [0, 0, 200],
            "the next row moves down"
        );
        assert_eq!(s.caption_chars(), (64 - 16) / 8);
    }

    #[test]
    fn the_legend_shows_each_colour_and_headings_are_grey() {
        let s = sheet();
        let img = s.render();
        // the legend starts 4 below the last row: its tiles at 186, then 20 + 8
        let top = 122 + 28 + 22 + 14 + 20 + 8 + 4;
        assert_eq!(img.get_pixel(8, top).0, [0, 10, 10]);
        let x1 = 8 + (s.width() - 8) / 4;
        assert_eq!(img.get_pixel(x1 + 9, top + 9).0, [40, 10, 10]);
        assert_eq!(img.get_pixel(8, top + 14).0, [160, 10, 10], "fifth entry: second line");
        let grey = (26..34)
            .flat_map(|y| (8..40).map(move |x| (x, y)))
            .any(|(x, y)| img.get_pixel(x, y).0 == HEADING.0);
        assert!(grey, "column headings drawn");
    }
}
