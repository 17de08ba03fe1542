//! Small PNG charts for the stages' reports: line charts (loss curves, the lr_find sweep),
//! heat maps (confusion matrices, [`heatmap`]) and contact sheets ([`ContactSheet`]),
//! drawn with the public-domain 8×8 bitmap font of `font8x8`, so a chart needs no font file,
//! no system library and no network, and the same data always gives the same bytes.
//!
//! Text is ASCII (other characters are drawn as `?`); coordinates are pixels from the top left.

mod chart;
mod heatmap;
mod sheet;

use std::path::Path;

use image::{Rgb, RgbImage};

pub use chart::{LineChart, Marker, Series, nice_ticks, tick_label};
pub use heatmap::heatmap;
pub use sheet::{ContactSheet, SheetRow, SheetSection};

/// A colour-blind-safe cycle (Okabe–Ito) for series.
pub const COLOURS: [[u8; 3]; 7] = [
    [0, 114, 178],
    [213, 94, 0],
    [0, 158, 115],
    [204, 121, 167],
    [230, 159, 0],
    [86, 180, 233],
    [120, 120, 120],
];

/// Writes an RGB image as PNG (fast compression), atomically: the file is complete or absent.
pub fn save_png(path: &Path, img: &RgbImage) -> anyhow::Result<()> {
    use image::ImageEncoder as _;
    use std::io::Write as _;
    facepipe_core::io::write_atomic_fast(path, |f| {
        let mut buf = std::io::BufWriter::new(f);
        image::codecs::png::PngEncoder::new_with_quality(
            &mut buf,
            image::codecs::png::CompressionType::Fast,
            image::codecs::png::FilterType::Adaptive,
        )
        .write_image(img.as_raw(), img.width(), img.height(), image::ExtendedColorType::Rgb8)?;
        buf.flush()?;
        Ok(())
    })
}

/// `img` scaled to fit a `side`×`side` square (aspect kept, at least 1 px), centred on white:
/// a contact-sheet cell.
pub fn fit_square(img: &RgbImage, side: u32, filter: image::imageops::FilterType) -> RgbImage {
    use image::imageops;
    let (w, h) = img.dimensions();
    let scale = f64::from(side) / f64::from(w.max(h));
    let (tw, th) = (
        ((f64::from(w) * scale).round() as u32).clamp(1, side),
        ((f64::from(h) * scale).round() as u32).clamp(1, side),
    );
    let small = imageops::resize(img, tw, th, filter);
    let mut out = RgbImage::from_pixel(side, side, Rgb([255, 255, 255]));
    imageops::overlay(&mut out, &small, i64::from((side - tw) / 2), i64::from((side - th) / 2));
    out
}

/// Text, frames and axes.
const INK: Rgb<u8> = Rgb([30, 30, 30]);
/// A line chart's grid lines.
const GRID: Rgb<u8> = Rgb([225, 225, 225]);

/// A white canvas with text and line drawing.
pub struct Canvas {
    pub img: RgbImage,
}

impl Canvas {
    pub fn new(width: u32, height: u32) -> Self {
        Canvas {
            img: RgbImage::from_pixel(width, height, Rgb([255, 255, 255])),
        }
    }

    fn put(&mut self, x: i64, y: i64, c: Rgb<u8>) {
        if x >= 0 && y >= 0 && (x as u32) < self.img.width() && (y as u32) < self.img.height() {
            self.img.put_pixel(x as u32, y as u32, c);
        }
    }

    /// Blends `c` over the pixel with weight `a` in [0, 1].
    fn blend(&mut self, x: i64, y: i64, c: Rgb<u8>, a: f64) {
        if x < 0 || y < 0 || x as u32 >= self.img.width() || y as u32 >= self.img.height() {
            return;
        }
        let p = self.img.get_pixel_mut(x as u32, y as u32);
        for k in 0..3 {
            p.0[k] = (f64::from(p.0[k]) * (1.0 - a) + f64::from(c.0[k]) * a).round() as u8;
        }
    }

    /// Width in pixels of `text` at `scale`.
    pub fn text_width(text: &str, scale: u32) -> u32 {
        text.chars().count() as u32 * 8 * scale
    }

    /// Draws `text` with its top-left corner at (x, y).
    pub fn text(&mut self, x: i64, y: i64, text: &str, scale: u32, c: Rgb<u8>) {
        for (i, ch) in text.chars().enumerate() {
            let code = if ch.is_ascii() { ch as usize } else { '?' as usize };
            let glyph = font8x8::legacy::BASIC_LEGACY[code];
            let x0 = x + (i as i64) * 8 * i64::from(scale);
            for (row, bits) in glyph.iter().enumerate() {
                for col in 0..8 {
                    if bits & (1 << col) != 0 {
                        for dy in 0..scale {
                            for dx in 0..scale {
                                self.put(x0 + (col * scale + dx) as i64, y + (row as u32 * scale + dy) as i64, c);
                            }
                        }
                    }
                }
            }
        }
    }

    /// Draws `text` rotated a quarter turn anticlockwise (reading upwards), its glyphs' tops
    /// facing left, starting at the bottom (x, y).
    pub fn text_up(&mut self, x: i64, y: i64, text: &str, c: Rgb<u8>) {
        for (i, ch) in text.chars().enumerate() {
            let code = if ch.is_ascii() { ch as usize } else { '?' as usize };
            let glyph = font8x8::legacy::BASIC_LEGACY[code];
            let y0 = y - (i as i64) * 8;
            for (row, bits) in glyph.iter().enumerate() {
                for col in 0..8i64 {
                    if bits & (1 << col) != 0 {
                        self.put(x + row as i64, y0 - col, c);
                    }
                }
            }
        }
    }

    /// An antialiased line (Xiaolin Wu), `width` 1 or more pixels thick.
    pub fn line(&mut self, (x0, y0): (f64, f64), (x1, y1): (f64, f64), c: Rgb<u8>, width: u32) {
        let offsets: Vec<f64> = (0..width).map(|k| k as f64 - (width as f64 - 1.0) / 2.0).collect();
        let steep = (y1 - y0).abs() > (x1 - x0).abs();
        for off in offsets {
            let (mut a0, mut b0, mut a1, mut b1) = if steep {
                (y0, x0 + off, y1, x1 + off)
            } else {
                (x0, y0 + off, x1, y1 + off)
            };
            if a0 > a1 {
                std::mem::swap(&mut a0, &mut a1);
                std::mem::swap(&mut b0, &mut b1);
            }
            let grad = if (a1 - a0).abs() < 1e-12 {
                0.0
            } else {
                (b1 - b0) / (a1 - a0)
            };
            let mut a = a0.round();
            while a <= a1.round() {
                let b = b0 + grad * (a - a0);
                let (bi, frac) = (b.floor(), b - b.floor());
                let (ai, bi) = (a as i64, bi as i64);
                if steep {
                    self.blend(bi, ai, c, 1.0 - frac);
                    self.blend(bi + 1, ai, c, frac);
                } else {
                    self.blend(ai, bi, c, 1.0 - frac);
                    self.blend(ai, bi + 1, c, frac);
                }
                a += 1.0;
            }
        }
    }

    /// A filled axis-aligned rectangle.
    pub fn rect(&mut self, x: i64, y: i64, w: u32, h: u32, c: Rgb<u8>) {
        for yy in y..y + i64::from(h) {
            for xx in x..x + i64::from(w) {
                self.put(xx, yy, c);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_draws_glyph_pixels() {
        let mut c = Canvas::new(40, 12);
        c.text(0, 0, "I", 1, Rgb([0, 0, 0]));
        let dark = c.img.pixels().filter(|p| p.0[0] == 0).count();
        assert!(dark > 8, "{dark}");
        let blank = Canvas::new(40, 12);
        assert_ne!(c.img, blank.img);
    }
}
