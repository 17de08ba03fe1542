//! The page's charts, drawn with `plotters` into SVG strings: the text stays text, so the
//! browser sets it in a real font (°, Δ, L* and all), and the charts scale with the page.

use anyhow::{Result, anyhow};
use plotters::coord::Shift;
use plotters::coord::ranged1d::{Ranged, ValueFormatter};
use plotters::prelude::*;

/// Tableau's 10 categorical colours, then two more: distinct on white and for most colour
/// vision deficiencies.
pub const PALETTE: [(u8, u8, u8); 14] = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
    (0, 0, 0),
    (120, 180, 255),
    (255, 187, 120),
    (152, 223, 138),
];

/// Index [`PALETTE`] entry reserved for a highlighted line (black).
pub const HIGHLIGHT: usize = 10;

pub fn colour(i: usize) -> RGBColor {
    let (r, g, b) = PALETTE[i % PALETTE.len()];
    RGBColor(r, g, b)
}

/// The chart's grid lines and legend frame, shared by every chart on the page.
const GRID_FINE: RGBColor = RGBColor(238, 240, 244);
const GRID_BOLD: RGBColor = RGBColor(220, 224, 230);
const LEGEND_BORDER: RGBColor = RGBColor(200, 204, 212);
/// The column a line chart with many series keeps at its right for their names.
const LEGEND_WIDTH: u32 = 150;

type Lin = plotters::coord::types::RangedCoordf64;
type Log = plotters::coord::combinators::LogCoord<f64>;

/// One line of a chart.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub colour: RGBColor,
    pub points: Vec<(f64, f64)>,
    /// Thin and light: a reference line (a phase boundary, a suggestion), not data.
    pub guide: bool,
}

impl Series {
    pub fn new(name: impl Into<String>, colour: RGBColor, points: Vec<(f64, f64)>) -> Series {
        Series {
            name: name.into(),
            colour,
            points,
            guide: false,
        }
    }

    /// A vertical guide at `x` across the chart, named in the legend.
    pub fn vline(name: impl Into<String>, colour: RGBColor, x: f64) -> Series {
        Series {
            name: name.into(),
            colour,
            points: vec![(x, f64::NAN)],
            guide: true,
        }
    }
}

/// A line chart.
#[derive(Debug, Clone)]
pub struct LineChart {
    pub title: String,
    pub x_desc: String,
    pub y_desc: String,
    pub log_x: bool,
    pub log_y: bool,
    /// The x axis counts (epochs): ticks only at whole numbers.
    pub integer_x: bool,
    pub series: Vec<Series>,
    pub size: (u32, u32),
}

impl LineChart {
    pub fn new(title: &str, x_desc: &str, y_desc: &str) -> LineChart {
        LineChart {
            title: title.into(),
            x_desc: x_desc.into(),
            y_desc: y_desc.into(),
            log_x: false,
            log_y: false,
            integer_x: false,
            series: vec![],
            size: (640, 380),
        }
    }

    /// The chart as an SVG element.
    pub fn to_svg(&self) -> Result<String> {
        let xs = self.values(|p| p.0, |v| usable(v, self.log_x));
        let ys = self.values(|p| p.1, |v| usable(v, self.log_y));
        let (x0, x1) = span(&xs, self.log_x).ok_or_else(|| anyhow!("chart {:?}: no data", self.title))?;
        let (y0, y1) = span(&ys, self.log_y).ok_or_else(|| anyhow!("chart {:?}: no data", self.title))?;
        let mut out = String::new();
        {
            let root = SVGBackend::with_string(&mut out, self.size).into_drawing_area();
            root.fill(&WHITE).map_err(plot_err)?;
            match (self.log_x, self.log_y) {
                (false, false) => self.draw::<Lin, Lin>(&root, x0..x1, y0..y1),
                (true, false) => self.draw::<Log, Lin>(&root, (x0..x1).log_scale(), y0..y1),
                (false, true) => self.draw::<Lin, Log>(&root, x0..x1, (y0..y1).log_scale()),
                (true, true) => self.draw::<Log, Log>(&root, (x0..x1).log_scale(), (y0..y1).log_scale()),
            }?;
            root.present().map_err(plot_err)?;
        }
        Ok(responsive(out))
    }

    fn values(&self, pick: impl Fn(&(f64, f64)) -> f64, keep: impl Fn(f64) -> bool) -> Vec<f64> {
        self.series
            .iter()
            .flat_map(|s| s.points.iter().map(&pick))
            .filter(|v| keep(*v))
            .collect()
    }

    fn draw<X, Y>(&self, root: &DrawingArea<SVGBackend, Shift>, x: impl Into<X>, y: impl Into<Y>) -> Result<()>
    where
        X: Ranged<ValueType = f64> + ValueFormatter<f64>,
        Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
    {
        let (x, y): (X, Y) = (x.into(), y.into());
        let (ylo, yhi) = (y.range().start, y.range().end);
        // Many lines: their legend goes in a column right of the plot, where it hides none.
        let outside = self.series.len() > 4;
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, ("sans-serif", 17))
            .margin(10)
            .margin_right(if outside { LEGEND_WIDTH + 10 } else { 10 })
            .x_label_area_size(42)
            .y_label_area_size(70)
            .build_cartesian_2d(x, y)
            .map_err(plot_err)?;
        let fmt = |v: &f64| tick(*v);
        let whole = |v: &f64| {
            if v.fract().abs() < 1e-9 {
                tick(*v)
            } else {
                String::new()
            }
        };
        let x_fmt: &dyn Fn(&f64) -> String = if self.integer_x { &whole } else { &fmt };
        chart
            .configure_mesh()
            .x_desc(&self.x_desc)
            .y_desc(&self.y_desc)
            .x_label_formatter(x_fmt)
            .y_label_formatter(&fmt)
            .label_style(("sans-serif", 13))
            .axis_desc_style(("sans-serif", 14))
            .light_line_style(GRID_FINE)
            .bold_line_style(GRID_BOLD)
            .draw()
            .map_err(plot_err)?;
        for s in &self.series {
            let style = if s.guide {
                ShapeStyle::from(s.colour.mix(0.7)).stroke_width(1)
            } else {
                ShapeStyle::from(s.colour).stroke_width(2)
            };
            let points: Vec<(f64, f64)> = if s.guide {
                s.points.iter().flat_map(|p| [(p.0, ylo), (p.0, yhi)]).collect()
            } else {
                s.points
                    .iter()
                    .copied()
                    .filter(|p| usable(p.0, self.log_x) && usable(p.1, self.log_y))
                    .collect()
            };
            let single = points.len() == 1;
            let drawn = if single {
                chart.draw_series(points.iter().map(|p| Circle::new(*p, 3, style.filled())))
            } else {
                chart.draw_series(LineSeries::new(points, style))
            }
            .map_err(plot_err)?;
            drawn
                .label(&s.name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
        }
        if outside {
            return self.legend_column(root);
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .label_font(("sans-serif", 13))
            .background_style(WHITE.mix(0.85))
            .border_style(LEGEND_BORDER)
            .draw()
            .map_err(plot_err)?;
        Ok(())
    }

    /// The series' names in a column at the right edge of the chart.
    fn legend_column(&self, root: &DrawingArea<SVGBackend, Shift>) -> Result<()> {
        let x = (self.size.0 - LEGEND_WIDTH) as i32;
        for (k, s) in self.series.iter().enumerate() {
            let y = 44 + 19 * k as i32;
            let width = if s.guide { 1 } else { 2 };
            root.draw(&PathElement::new(
                vec![(x, y), (x + 18, y)],
                s.colour.stroke_width(width),
            ))
            .map_err(plot_err)?;
            root.draw(&Text::new(
                s.name.clone(),
                (x + 24, y - 7),
                ("sans-serif", 13).into_font().color(&BLACK),
            ))
            .map_err(plot_err)?;
        }
        Ok(())
    }
}

/// A named set of points of the agreement chart: (reference, measured) for each channel.
pub type PointGroup = (String, RGBColor, Vec<[(f64, f64); 3]>);

/// Measured against reference, one panel per channel, with the line of perfect agreement.
#[derive(Debug, Clone)]
pub struct Agreement {
    pub title: String,
    /// Channel names ("L*", "a*", "b*").
    pub channels: [String; 3],
    pub groups: Vec<PointGroup>,
}

impl Agreement {
    pub fn to_svg(&self) -> Result<String> {
        let mut out = String::new();
        {
            let root = SVGBackend::with_string(&mut out, (1020, 360)).into_drawing_area();
            root.fill(&WHITE).map_err(plot_err)?;
            let root = root.titled(&self.title, ("sans-serif", 17)).map_err(plot_err)?;
            for (c, area) in root.split_evenly((1, 3)).iter().enumerate() {
                self.panel(area, c)?;
            }
            root.present().map_err(plot_err)?;
        }
        Ok(responsive(out))
    }

    fn panel(&self, area: &DrawingArea<SVGBackend, Shift>, c: usize) -> Result<()> {
        let vals: Vec<f64> = self
            .groups
            .iter()
            .flat_map(|g| g.2.iter().flat_map(|p| [p[c].0, p[c].1]))
            .filter(|v| usable(*v, false))
            .collect();
        let (lo, hi) = span(&vals, false).ok_or_else(|| anyhow!("{}: no cheek with a reference", self.title))?;
        let name = &self.channels[c];
        let mut chart = ChartBuilder::on(area)
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(52)
            .build_cartesian_2d(lo..hi, lo..hi)
            .map_err(plot_err)?;
        let (xd, yd) = (format!("reference {name}"), format!("measured {name}"));
        let fmt = |v: &f64| tick(*v);
        chart
            .configure_mesh()
            .x_desc(xd)
            .y_desc(yd)
            .x_labels(6)
            .y_labels(6)
            .x_label_formatter(&fmt)
            .y_label_formatter(&fmt)
            .label_style(("sans-serif", 12))
            .axis_desc_style(("sans-serif", 14))
            .light_line_style(GRID_FINE)
            .bold_line_style(GRID_BOLD)
            .draw()
            .map_err(plot_err)?;
        let grey = RGBColor(150, 150, 150);
        chart
            .draw_series(LineSeries::new([(lo, lo), (hi, hi)], grey.stroke_width(1)))
            .map_err(plot_err)?
            .label("measured = reference")
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], grey));
        for (gname, col, pts) in &self.groups {
            let col = *col;
            chart
                .draw_series(
                    pts.iter()
                        .filter(|p| usable(p[c].0, false) && usable(p[c].1, false))
                        .map(|p| Circle::new(p[c], 2, col.mix(0.75).filled())),
                )
                .map_err(plot_err)?
                .label(gname.as_str())
                .legend(move |(x, y)| Circle::new((x + 9, y), 3, col.filled()));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .label_font(("sans-serif", 12))
            .background_style(WHITE.mix(0.85))
            .border_style(LEGEND_BORDER)
            .draw()
            .map_err(plot_err)?;
        Ok(())
    }
}

fn plot_err<E: std::error::Error + Send + Sync>(e: DrawingAreaErrorKind<E>) -> anyhow::Error {
    anyhow!("drawing a chart: {e}")
}

/// Beyond this magnitude (or below its inverse, on a log axis) a value is not drawn: a diverged
/// loss of 1e308 would make the axis span overflow (plotters then never finishes its ticks).
const DRAWABLE: f64 = 1e100;

/// Whether `v` can be placed on an axis (linear, or `log`).
fn usable(v: f64, log: bool) -> bool {
    v.is_finite() && v.abs() <= DRAWABLE && (!log || v >= 1.0 / DRAWABLE)
}

/// The range of `vals`, padded by 5 % (a factor for log axes); a single value gets room around it.
fn span(vals: &[f64], log: bool) -> Option<(f64, f64)> {
    let lo = vals.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = vals.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !lo.is_finite() || !hi.is_finite() {
        return None;
    }
    Some(if log {
        let (lo, hi) = if hi > lo { (lo, hi) } else { (lo / 2.0, hi * 2.0) };
        let pad = (hi / lo).powf(0.05);
        (lo / pad, hi * pad)
    } else {
        let d = if hi > lo {
            (hi - lo) * 0.05
        } else {
            lo.abs().max(1.0) * 0.5
        };
        (lo - d, hi + d)
    })
}

/// An axis tick: short, exponent form for very small or large values.
fn tick(v: f64) -> String {
    let a = v.abs();
    if a != 0.0 && !(1e-3..1e5).contains(&a) {
        let s = format!("{v:.0e}");
        s.replace("e-", "e\u{2212}")
    } else if a >= 100.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// Lets the chart shrink with the page (keeps its aspect ratio).
fn responsive(svg: String) -> String {
    svg.replacen("<svg ", "<svg style=\"max-width:100%;height:auto\" ", 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text_of(svg: &str) -> Vec<String> {
        svg.split("<text")
            .skip(1)
            .filter_map(|t| {
                t.split_once('>')
                    .and_then(|(_, r)| r.split_once("</text>"))
                    .map(|(t, _)| t.trim().to_string())
            })
            .collect()
    }

    #[test]
    fn a_line_chart_keeps_its_text_as_text_with_unicode() {
        let mut c = LineChart::new("ΔE2000 per epoch", "epoch", "L* (°)");
        c.series.push(Series::new(
            "train",
            colour(0),
            vec![(0.0, 1.0), (1.0, 0.5), (2.0, 0.25)],
        ));
        c.series.push(Series::vline("best", colour(3), 2.0));
        let svg = c.to_svg().unwrap();
        assert!(
            svg.starts_with("<svg style=\"max-width:100%;height:auto\" "),
            "{}",
            &svg[..80]
        );
        let texts = text_of(&svg);
        for want in ["ΔE2000 per epoch", "epoch", "L* (°)", "train", "best"] {
            assert!(texts.iter().any(|t| t == want), "{want:?} not among {texts:?}");
        }
        assert!(svg.contains("<polyline"), "the series is a line");
    }

    #[test]
    fn log_axes_drop_values_they_cannot_show() {
        let mut c = LineChart::new("lr_find", "learning rate", "loss");
        c.log_x = true;
        c.series.push(Series::new(
            "loss",
            colour(0),
            vec![(0.0, 3.0), (1e-5, 2.0), (1e-3, 1.0), (1e-1, f64::NAN)],
        ));
        let svg = c.to_svg().unwrap();
        assert!(
            text_of(&svg).iter().any(|t| t.contains('e')),
            "exponent ticks on a log axis"
        );
        c.series[0].points = vec![(0.0, f64::NAN)];
        assert!(c.to_svg().unwrap_err().to_string().contains("no data"));
    }

    #[test]
    fn values_beyond_any_axis_are_left_out_not_drawn_forever() {
        let mut c = LineChart::new("diverged", "epoch", "loss");
        c.series.push(Series::new(
            "valid",
            colour(0),
            vec![(1.0, -1e308), (2.0, 1e308), (3.0, 2.0), (4.0, 1.0)],
        ));
        let svg = c.to_svg().unwrap();
        assert!(
            text_of(&svg).iter().any(|t| t == "2"),
            "the axis spans the drawable values"
        );
        c.log_y = true;
        c.series[0].points = vec![(1.0, 1e-200), (2.0, 1e200), (3.0, 0.5), (4.0, 0.1)];
        c.to_svg().unwrap();
    }

    #[test]
    fn spans_pad_and_ticks_are_short() {
        assert_eq!(span(&[1.0, 3.0], false), Some((0.9, 3.1)));
        assert_eq!(span(&[2.0], false), Some((1.0, 3.0)));
        assert_eq!(span(&[], false), None);
        let (lo, hi) = span(&[1e-4, 1e-2], true).unwrap();
        assert!((lo - 1e-4 / 100f64.powf(0.05)).abs() < 1e-12 && hi > 1e-2);
        assert_eq!(tick(0.25), "0.25");
        assert_eq!(tick(3.0), "3");
        assert_eq!(tick(1e-5), "1e\u{2212}5");
        assert_eq!(tick(150.5), "150");
        assert_eq!(tick(0.99999999), "1");
    }

    #[test]
    fn the_agreement_chart_has_three_panels_and_every_point() {
        let a = Agreement {
            title: "cheeks".into(),
            channels: ["L*".into(), "a*".into(), "b*".into()],
            groups: vec![
                (
                    "left".into(),
                    colour(0),
                    vec![[(60.0, 61.0), (10.0, 11.0), (20.0, 19.0)]; 3],
                ),
                (
                    "right".into(),
                    colour(1),
                    vec![[(50.0, 50.5), (12.0, 12.0), (22.0, 23.0)]; 2],
                ),
            ],
        };
        let svg = a.to_svg().unwrap();
        assert_eq!(
            svg.matches("<circle").count(),
            3 * (3 + 2) + 3 * 2,
            "points plus legend dots"
        );
        for want in ["reference L*", "measured b*", "left", "right"] {
            assert!(text_of(&svg).iter().any(|t| t == want), "{want:?}");
        }
    }
}
