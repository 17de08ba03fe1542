//! Points in image coordinates (x right, y down, pixel centres at +0.5) and the few
//! operations placing a face needs.

use std::ops::{Add, Mul, Sub};

/// A point or a vector in image coordinates.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Point {
    pub x: f64,
    pub y: f64,
}

impl Point {
    pub const fn new(x: f64, y: f64) -> Self {
        Point { x, y }
    }

    /// The centre of pixel `i` (row-major index) of an image `w` pixels wide.
    pub fn pixel_centre(i: usize, w: usize) -> Self {
        Point::new((i % w) as f64 + 0.5, (i / w) as f64 + 0.5)
    }

    pub fn dot(self, o: Point) -> f64 {
        self.x * o.x + self.y * o.y
    }

    /// Euclidean length.
    pub fn length(self) -> f64 {
        self.x.hypot(self.y)
    }

    /// The vector scaled to length 1 (`self` must not be zero).
    pub fn unit(self) -> Point {
        self * (1.0 / self.length())
    }

    /// Halfway between `self` and `o`.
    pub fn midpoint(self, o: Point) -> Point {
        (self + o) * 0.5
    }

    /// A quarter turn clockwise on the screen (y down): x̂ to ŷ, a face's right to its down.
    pub fn turn_down(self) -> Point {
        Point::new(-self.y, self.x)
    }

    /// A quarter turn back (counter-clockwise on the screen): ŷ to x̂.
    pub fn turn_back(self) -> Point {
        Point::new(self.y, -self.x)
    }
}

impl Add for Point {
    type Output = Point;
    fn add(self, o: Point) -> Point {
        Point::new(self.x + o.x, self.y + o.y)
    }
}

impl Sub for Point {
    type Output = Point;
    fn sub(self, o: Point) -> Point {
        Point::new(self.x - o.x, self.y - o.y)
    }
}

impl Mul<f64> for Point {
    type Output = Point;
    fn mul(self, k: f64) -> Point {
        Point::new(self.x * k, self.y * k)
    }
}

/// The mean of points; `None` for none.
pub fn centroid(pts: &[Point]) -> Option<Point> {
    (!pts.is_empty()).then(|| {
        let n = pts.len() as f64;
        let s = pts.iter().fold(Point::default(), |a, p| a + *p);
        Point::new(s.x / n, s.y / n)
    })
}

/// The `q`-quantile of values (nearest rank).
pub fn quantile(mut v: Vec<f64>, q: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[((v.len() - 1) as f64 * q).round() as usize])
}

/// The per-axis median of points (robust to a few far ones, such as glasses' temple arms).
pub fn median(pts: &[Point]) -> Option<Point> {
    let q = |f: fn(&Point) -> f64| quantile(pts.iter().map(f).collect(), 0.5);
    Some(Point::new(q(|p| p.x)?, q(|p| p.y)?))
}
