//! Line charts (loss curves, the lr_find sweep, scatter plots): axes with "nice" ticks,
//! optionally log-scaled x, a legend and vertical markers.

use image::{Rgb, RgbImage};

use crate::{COLOURS, Canvas, GRID, INK};

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

/// The plotting area of a chart (pixels) and the data range it shows (x as drawn: log10 for
/// a log axis).
struct Frame {
    left: i64,
    top: i64,
    pw: i64,
    ph: i64,
    x0: f64,
    x1: f64,
    y0: f64,
    y1: f64,
    log_x: bool,
}

impl Frame {
    /// `x` as the axis measures it.
    fn tx(&self, x: f64) -> f64 {
        if self.log_x { x.log10() } else { x }
    }

    /// The pixel column of data `x`.
    fn px(&self, x: f64) -> f64 {
        self.left as f64 + (self.tx(x) - self.x0) / (self.x1 - self.x0) * self.pw as f64
    }

    /// The pixel row of data `y`.
    fn py(&self, y: f64) -> f64 {
        self.top as f64 + (1.0 - (y - self.y0) / (self.y1 - self.y0)) * self.ph as f64
    }

    /// Whether an x can be drawn (finite, and positive on a log axis).
    fn shows_x(&self, x: f64) -> bool {
        x.is_finite() && (!self.log_x || x > 0.0)
    }
}

impl LineChart {
    /// Renders the chart to a `width`×`height` image.
    pub fn render(&self, width: u32, height: u32) -> RgbImage {
        let mut cv = Canvas::new(width, height);
        let f = self.frame(width, height);
        self.draw_axes(&mut cv, &f);
        self.draw_markers(&mut cv, &f);
        self.draw_series(&mut cv, &f);
        self.draw_titles(&mut cv, &f, width, height);
        cv.img
    }

    /// The plotting area inside fixed margins, and the data range: every drawable point, y
    /// padded by 5 %, an empty or flat range widened so that nothing divides by zero.
    fn frame(&self, width: u32, height: u32) -> Frame {
        let (left, right, top, bottom) = (78i64, 16i64, 34i64, 46i64);
        let mut f = Frame {
            left,
            top,
            pw: width as i64 - left - right,
            ph: height as i64 - top - bottom,
            x0: f64::INFINITY,
            x1: f64::NEG_INFINITY,
            y0: f64::INFINITY,
            y1: f64::NEG_INFINITY,
            log_x: self.log_x,
        };
        for &(x, y) in self.series.iter().flat_map(|s| s.points.iter()) {
            if y.is_finite() && f.shows_x(x) {
                let tx = f.tx(x);
                (f.x0, f.x1, f.y0, f.y1) = (f.x0.min(tx), f.x1.max(tx), f.y0.min(y), f.y1.max(y));
            }
        }
        if !f.x0.is_finite() {
            (f.x0, f.x1, f.y0, f.y1) = (0.0, 1.0, 0.0, 1.0);
        }
        if f.x1 - f.x0 < 1e-12 {
            (f.x0, f.x1) = (f.x0 - 0.5, f.x1 + 0.5);
        }
        if f.y1 - f.y0 < 1e-12 {
            (f.y0, f.y1) = (f.y0 - 0.5, f.y1 + 0.5);
        }
        let pad = (f.y1 - f.y0) * 0.05;
        (f.y0, f.y1) = (f.y0 - pad, f.y1 + pad);
        f
    }

    /// Grid lines with their tick labels (powers of ten on a log axis), then the frame.
    fn draw_axes(&self, cv: &mut Canvas, f: &Frame) {
        let (left, top, pw, ph) = (f.left, f.top, f.pw, f.ph);
        let xticks: Vec<f64> = if self.log_x {
            ((f.x0.ceil() as i64)..=(f.x1.floor() as i64))
                .map(|e| 10f64.powi(e as i32))
                .collect()
        } else {
            nice_ticks(f.x0, f.x1, 6)
        };
        for &t in &xticks {
            let x = f.px(t).round() as i64;
            cv.rect(x, top, 1, ph as u32, GRID);
            let label = tick_label(t);
            let w = Canvas::text_width(&label, 1) as i64;
            cv.text(x - w / 2, top + ph + 6, &label, 1, INK);
        }
        for t in nice_ticks(f.y0, f.y1, 5) {
            let y = f.py(t).round() as i64;
            cv.rect(left, y, pw as u32, 1, GRID);
            let label = tick_label(t);
            let w = Canvas::text_width(&label, 1) as i64;
            cv.text(left - 6 - w, y - 4, &label, 1, INK);
        }
        cv.rect(left, top, pw as u32, 1, INK);
        cv.rect(left, top + ph, pw as u32 + 1, 1, INK);
        cv.rect(left, top, 1, ph as u32, INK);
        cv.rect(left + pw, top, 1, ph as u32, INK);
    }

    /// Each marker as a dashed vertical line with its label, in the colours after the series'.
    fn draw_markers(&self, cv: &mut Canvas, f: &Frame) {
        let bottom = (f.top + f.ph) as f64;
        for (i, m) in self.markers.iter().enumerate() {
            if !f.shows_x(m.x) {
                continue;
            }
            let x = f.px(m.x);
            let c = Rgb(COLOURS[(i + self.series.len()) % COLOURS.len()]);
            let mut y = f.top as f64;
            while y < bottom {
                cv.line((x, y), (x, (y + 4.0).min(bottom)), c, 1);
                y += 8.0;
            }
            cv.text(x as i64 + 4, f.top + 6 + 12 * i as i64, &m.label, 1, c);
        }
    }

    /// Each series (lines broken at undrawable points, or dots) and its legend entry, top
    /// right inside the frame.
    fn draw_series(&self, cv: &mut Canvas, f: &Frame) {
        for (i, s) in self.series.iter().enumerate() {
            let c = Rgb(COLOURS[i % COLOURS.len()]);
            let mut prev: Option<(f64, f64)> = None;
            for &(x, y) in &s.points {
                if !(y.is_finite() && f.shows_x(x)) {
                    prev = None;
                    continue;
                }
                let p = (f.px(x), f.py(y));
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
            let w = Canvas::text_width(&s.name, 1) as i64;
            let ly = f.top + 8 + 14 * i as i64;
            cv.rect(f.left + f.pw - w - 30, ly + 3, 16, 3, c);
            cv.text(f.left + f.pw - w - 8, ly, &s.name, 1, INK);
        }
    }

    /// The title (double size, centred), the x label below and the y label up the left side.
    fn draw_titles(&self, cv: &mut Canvas, f: &Frame, width: u32, height: u32) {
        let tw = Canvas::text_width(&self.title, 2) as i64;
        cv.text((width as i64 - tw) / 2, 8, &self.title, 2, INK);
        let xw = Canvas::text_width(&self.x_label, 1) as i64;
        cv.text(f.left + (f.pw - xw) / 2, height as i64 - 18, &self.x_label, 1, INK);
        let yw = Canvas::text_width(&self.y_label, 1) as i64;
        cv.text_up(8, f.top + (f.ph + yw) / 2, &self.y_label, INK);
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
