//! Small PNG charts for the stages' reports: line charts (loss curves, the lr_find sweep),
//! drawn with the public-domain 8×8 bitmap font of `font8x8`, so a chart needs no font file,
//! no system library and no network, and the same data always gives the same bytes.
//!
//! Text is ASCII (other characters are drawn as `?`); coordinates are pixels from the top left.

use std::path::Path;

use image::{Rgb, RgbImage};

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

const INK: Rgb<u8> = Rgb([30, 30, 30]);
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

/// A named series of (x, y) points; non-finite points break the line.
#[derive(Clone, Debug)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    /// Draw each point as a dot instead of joining them (a scatter plot).
    pub dots: bool,
}

/// A vertical marker line with a label (e.g. an lr_find suggestion).
#[derive(Clone, Debug)]
pub struct Marker {
    pub x: f64,
    pub label: String,
}

/// A line chart with axes, ticks, a legend and optional log-scaled x.
#[derive(Clone, Debug, Default)]
pub struct LineChart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub log_x: bool,
    pub series: Vec<Series>,
    pub markers: Vec<Marker>,
}

/// "Nice" tick values covering [lo, hi]: about `n` steps of 1, 2 or 5 × 10^k.
pub fn nice_ticks(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    if !(lo.is_finite() && hi.is_finite()) || hi <= lo {
        return vec![lo];
    }
    let raw = (hi - lo) / n.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    (first..=last).map(|k| k as f64 * step).collect()
}

/// A short label for a tick value.
pub fn tick_label(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let a = v.abs();
    if !(1e-3..1e5).contains(&a) {
        let e = a.log10().floor() as i32;
        let m = v / 10f64.powi(e);
        if (m - m.round()).abs() < 1e-9 {
            format!("{}e{e}", m.round())
        } else {
            format!("{m:.1}e{e}")
        }
    } else {
        let s = format!("{v:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

impl LineChart {
    /// Renders the chart to a `width`×`height` image.
    pub fn render(&self, width: u32, height: u32) -> RgbImage {
        let mut cv = Canvas::new(width, height);
        let (left, right, top, bottom) = (78i64, 16i64, 34i64, 46i64);
        let (pw, ph) = (width as i64 - left - right, height as i64 - top - bottom);
        let tx = |x: f64| if self.log_x { x.log10() } else { x };
        let pts = || {
            self.series
                .iter()
                .flat_map(|s| s.points.iter())
                .filter(|(x, y)| x.is_finite() && y.is_finite() && (!self.log_x || *x > 0.0))
        };
        let (mut x0, mut x1, mut y0, mut y1) = (f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, f64::NEG_INFINITY);
        for &(x, y) in pts() {
            x0 = x0.min(tx(x));
            x1 = x1.max(tx(x));
            y0 = y0.min(y);
            y1 = y1.max(y);
        }
        if !x0.is_finite() {
            (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
        }
        if x1 - x0 < 1e-12 {
            (x0, x1) = (x0 - 0.5, x1 + 0.5);
        }
        if y1 - y0 < 1e-12 {
            (y0, y1) = (y0 - 0.5, y1 + 0.5);
        }
        let pad = (y1 - y0) * 0.05;
        let (y0, y1) = (y0 - pad, y1 + pad);
        let px = |x: f64| left as f64 + (tx(x) - x0) / (x1 - x0) * pw as f64;
        let py = |y: f64| top as f64 + (1.0 - (y - y0) / (y1 - y0)) * ph as f64;

        // grid and ticks
        let xticks: Vec<f64> = if self.log_x {
            ((x0.ceil() as i64)..=(x1.floor() as i64))
                .map(|e| 10f64.powi(e as i32))
                .collect()
        } else {
            nice_ticks(x0, x1, 6)
        };
        for &t in &xticks {
            let x = px(t).round() as i64;
            cv.rect(x, top, 1, ph as u32, GRID);
            let label = tick_label(t);
            let w = Canvas::text_width(&label, 1) as i64;
            cv.text(x - w / 2, top + ph + 6, &label, 1, INK);
        }
        for t in nice_ticks(y0, y1, 5) {
            let y = py(t).round() as i64;
            cv.rect(left, y, pw as u32, 1, GRID);
            let label = tick_label(t);
            let w = Canvas::text_width(&label, 1) as i64;
            cv.text(left - 6 - w, y - 4, &label, 1, INK);
        }
        // frame
        cv.rect(left, top, pw as u32, 1, INK);
        cv.rect(left, top + ph, pw as u32 + 1, 1, INK);
        cv.rect(left, top, 1, ph as u32, INK);
        cv.rect(left + pw, top, 1, ph as u32, INK);
        // markers
        for (i, m) in self.markers.iter().enumerate() {
            if !m.x.is_finite() || (self.log_x && m.x <= 0.0) {
                continue;
            }
            let x = px(m.x);
            let c = Rgb(COLOURS[(i + self.series.len()) % COLOURS.len()]);
            let mut y = top as f64;
            while y < (top + ph) as f64 {
                cv.line((x, y), (x, (y + 4.0).min((top + ph) as f64)), c, 1);
                y += 8.0;
            }
            cv.text(x as i64 + 4, top + 6 + 12 * i as i64, &m.label, 1, c);
        }
        // series
        for (i, s) in self.series.iter().enumerate() {
            let c = Rgb(COLOURS[i % COLOURS.len()]);
            let mut prev: Option<(f64, f64)> = None;
            for &(x, y) in &s.points {
                if !(x.is_finite() && y.is_finite()) || (self.log_x && x <= 0.0) {
                    prev = None;
                    continue;
                }
                let p = (px(x), py(y));
                if s.dots {
                    cv.rect(p.0 as i64 - 1, p.1 as i64 - 1, 3, 3, c);
                    continue;
                }
                match prev {
                    Some(q) => cv.line(q, p, c, 2),
                    None if s.points.len() == 1 => cv.rect(p.0 as i64 - 2, p.1 as i64 - 2, 5, 5, c),
                    None => {}
                }
                prev = Some(p);
            }
            // legend, top right inside the frame
            let w = Canvas::text_width(&s.name, 1) as i64;
            let ly = top + 8 + 14 * i as i64;
            cv.rect(left + pw - w - 30, ly + 3, 16, 3, c);
            cv.text(left + pw - w - 8, ly, &s.name, 1, INK);
        }
        // titles
        let tw = Canvas::text_width(&self.title, 2) as i64;
        cv.text((width as i64 - tw) / 2, 8, &self.title, 2, INK);
        let xw = Canvas::text_width(&self.x_label, 1) as i64;
        cv.text(left + (pw - xw) / 2, height as i64 - 18, &self.x_label, 1, INK);
        let yw = Canvas::text_width(&self.y_label, 1) as i64;
        cv.text_up(8, top + (ph + yw) / 2, &self.y_label, INK);
        cv.img
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        assert_eq!(
            nice_ticks(0.0, 1.0, 5),
            vec![0.0, 0.2, 0.4, 0.6000000000000001, 0.8, 1.0]
        );
        let t = nice_ticks(0.13, 2.7, 5);
        assert_eq!(t, vec![1.0, 2.0]);
        assert!(t.iter().all(|v| (0.13..=2.7).contains(v)));
        assert_eq!(tick_label(1e-5), "1e-5");
        assert_eq!(tick_label(0.25), "0.25");
        assert_eq!(tick_label(3.0), "3");
    }

    #[test]
    fn text_draws_glyph_pixels() {
        let mut c = Canvas::new(40, 12);
        c.text(0, 0, "I", 1, Rgb([0, 0, 0]));
        let dark = c.img.pixels().filter(|p| p.0[0] == 0).count();
        assert!(dark > 8, "{dark}");
        let blank = Canvas::new(40, 12);
        assert_ne!(c.img, blank.img);
    }

    #[test]
    fn a_line_chart_draws_each_series_in_its_colour() {
        let chart = LineChart {
            title: "loss".into(),
            x_label: "epoch".into(),
            y_label: "loss".into(),
            log_x: false,
            series: vec![
                Series {
                    name: "train".into(),
                    points: vec![(0.0, 2.0), (1.0, 1.0), (2.0, 0.5)],
                    dots: false,
                },
                Series {
                    name: "valid".into(),
                    points: vec![(0.0, 2.2), (1.0, 1.4), (2.0, f64::NAN)],
                    dots: false,
                },
            ],
            markers: vec![],
        };
        let img = chart.render(400, 300);
        let near =
            |p: &Rgb<u8>, c: &[u8; 3]| (0..3).map(|k| (i32::from(p.0[k]) - i32::from(c[k])).abs()).sum::<i32>() < 40;
        for c in &COLOURS[..2] {
            let n = img.pixels().filter(|p| near(p, c)).count();
            assert!(n > 50, "colour {c:?} drawn {n} times");
        }
        assert_eq!(img, chart.render(400, 300), "deterministic");
        // log x with a marker
        let lr = LineChart {
            log_x: true,
            series: vec![Series {
                name: "loss".into(),
                points: (0..100).map(|i| (1e-7 * 10f64.powf(i as f64 * 0.08), 2.0)).collect(),
                dots: false,
            }],
            markers: vec![Marker {
                x: 1e-3,
                label: "valley".into(),
            }],
            ..chart
        };
        let img = lr.render(400, 300);
        assert!(
            img.pixels().filter(|p| near(p, &COLOURS[1])).count() > 40,
            "marker drawn"
        );
    }
}
