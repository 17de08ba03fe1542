//! Where the faces and cheeks are, from a class-index mask alone.
//!
//! * **Faces**: connected components (8-neighbour) of the face-region classes (skin, eyes,
//!   nose, lips, brows, teeth, facial hair, glasses; not hair, not ears), largest first;
//!   components below [`Placement::min_face_px`] are noise.
//! * **Axes**: the two largest eye blobs of a face give its horizontal axis x̂ (image left to
//!   image right eye) and the inter-eye distance; ŷ ⟂ x̂ points down the face. With one eye
//!   visible, the nose→lips line gives ŷ and the eye's distance from that line half the
//!   inter-eye distance; only that eye's cheek is placed. With no eye visible but glasses
//!   (sunglasses hide the eyes), the glasses' pixels on each side of the nose→lips line stand
//!   in for the eyes (their median, which the temple arms barely move).
//! * **Cheek centre**: below each eye, beside the nose: [`Placement::cheek_out`] inter-eye
//!   distances out from the face's midline, and [`Placement::cheek_down`] of the way from eye
//!   level to mouth level (the lips' centroid), or, with no lips visible,
//!   [`Placement::cheek_down_nose`] of the way to the bottom of the nose. The defaults put the
//!   patch under the outer half of the eye, level with the lower nose, above the mouth corners,
//!   on the malar skin a person measuring by hand would choose.
//! * **Face width** (bizygomatic): the face region's extent along x̂ through the point halfway
//!   between eye level and the bottom of the nose. **fWHR** = that width over the distance from
//!   the brows' centroid to the top of the upper lip, both along ŷ.
//!
//! "Left" is the subject's left, on the image's right.

use crate::components::components;
use crate::geometry::{Point, centroid, median, quantile};
use crate::roles::Roles;

/// Tunable geometry (all relative to the face's own size): `--cheek-out`, `--cheek-down`.
#[derive(clap::Args, Clone, Debug)]
pub struct Placement {
    /// Cheek centre out from the face's midline, in inter-eye distances.
    #[arg(long, default_value_t = 0.66, value_name = "X", value_parser = facepipe_core::cli::finite_f64)]
    pub cheek_out: f64,
    /// Cheek centre down from eye level, as a share of the way to the mouth (the lips' centre).
    #[arg(long, default_value_t = 0.5, value_name = "X", value_parser = facepipe_core::cli::finite_f64)]
    pub cheek_down: f64,
    /// Smallest face component, pixels.
    #[arg(skip = 400_usize)]
    pub min_face_px: usize,
}

impl Placement {
    /// With the lips hidden: the cheek centre's share of the way from eye level to the bottom
    /// of the nose, the same point as [`Placement::cheek_down`] gives (0.8 at its default).
    pub fn cheek_down_nose(&self) -> f64 {
        0.8 * self.cheek_down / 0.5
    }
}

impl Default for Placement {
    /// The flags' defaults.
    fn default() -> Self {
        facepipe_core::cli::arg_defaults()
    }
}

/// One cheek's placement, or why there is none.
#[derive(Clone, Debug, PartialEq)]
pub enum Cheek {
    At(Point),
    Missing(String),
}

/// A face found in a mask.
#[derive(Clone, Debug)]
pub struct Face {
    /// Pixel indices (y·w + x) of the face region, in this component.
    pub pixels: Vec<u32>,
    /// Component label in the label image (1-based).
    pub label: u32,
    pub eye_distance: Option<f64>,
    /// Bizygomatic width in pixels.
    pub width: Option<f64>,
    pub fwhr: Result<f64, String>,
    /// Subject's left (image right) and right cheek centres.
    pub left: Cheek,
    pub right: Cheek,
    /// Eye centroids found (for the QC pictures).
    pub eyes: Vec<Point>,
    /// The eyes were placed from the glasses.
    pub eyes_from_glasses: bool,
}

/// A `w`×`h` class mask with its face labels, and the settings: what every step of placing a
/// face reads.
struct Scene<'a> {
    mask: &'a [u8],
    labels: &'a [u32],
    w: usize,
    h: usize,
    roles: &'a Roles,
    place: &'a Placement,
}

/// What a face's frame and measures are taken from.
struct Landmarks {
    nose: Vec<Point>,
    lips: Vec<Point>,
    brows: Vec<Point>,
    nose_centre: Option<Point>,
    lips_centre: Option<Point>,
    /// Eyes, largest first: (pixels, centre); the glasses' halves when no eye is visible.
    eyes: Vec<(usize, Point)>,
    eyes_from_glasses: bool,
}

/// A face's frame: the point midway between the eyes, x̂ toward the image-right eye, ŷ down
/// the face, the inter-eye distance, and with one eye visible whether it is the image-right one.
struct Frame {
    mid: Point,
    x: Point,
    y: Point,
    eye_distance: f64,
    one_eye_right: Option<bool>,
}

/// Distances below eye level, along ŷ, of what the cheeks and the fWHR are placed by.
struct Levels {
    nose_bottom: Option<f64>,
    lips: Option<f64>,
    lip_top: Option<f64>,
    brows: Option<f64>,
}

/// Finds the faces of a `w`×`h` class mask and places their cheeks.
pub fn find_faces(mask: &[u8], w: usize, h: usize, roles: &Roles, place: &Placement) -> (Vec<u32>, Vec<Face>) {
    let (labels, comps) = components(&roles.face_pixels(mask), w, h);
    let scene = Scene {
        mask,
        labels: &labels,
        w,
        h,
        roles,
        place,
    };
    let faces = comps
        .into_iter()
        .enumerate()
        .take_while(|(_, px)| px.len() >= place.min_face_px)
        .map(|(k, px)| face_of(&scene, k as u32 + 1, px))
        .collect();
    (labels, faces)
}

/// Face `id` (its `pixels`): its frame, width, fWHR and cheeks, or why they are missing.
fn face_of(s: &Scene, id: u32, pixels: Vec<u32>) -> Face {
    let lm = landmarks(s, id, &pixels);
    let (eye_distance, width, fwhr, (left, right)) = match frame(&lm) {
        Err(why) => (
            None,
            None,
            Err(why.to_string()),
            (Cheek::Missing(why.into()), Cheek::Missing(why.into())),
        ),
        Ok(f) => {
            let lv = levels(&lm, &f);
            let width = lv.nose_bottom.map(|nb| face_width(s, id, &f, nb));
            (Some(f.eye_distance), width, fwhr(width, &lv), cheeks(&f, &lv, s.place))
        }
    };
    Face {
        pixels,
        label: id,
        eye_distance,
        width,
        fwhr,
        left,
        right,
        eyes: lm.eyes.iter().take(2).map(|b| b.1).collect(),
        eyes_from_glasses: lm.eyes_from_glasses,
    }
}

/// The pixel centres of class `c` among `px`.
fn class_points(s: &Scene, px: &[u32], c: u8) -> Vec<Point> {
    px.iter()
        .filter(|&&i| s.mask[i as usize] == c)
        .map(|&i| Point::pixel_centre(i as usize, s.w))
        .collect()
}

/// The nose, lips, brows and eyes of face `id`.
fn landmarks(s: &Scene, id: u32, px: &[u32]) -> Landmarks {
    let (nose, lips, brows) = (
        class_points(s, px, s.roles.nose),
        class_points(s, px, s.roles.lips),
        class_points(s, px, s.roles.brows),
    );
    let (nose_centre, lips_centre) = (centroid(&nose), centroid(&lips));
    let mut eyes = eye_blobs(s, id, px);
    // specks (a few pixels of a misclassified border) are not eyes
    let biggest = eyes.first().map_or(0, |b| b.0);
    eyes.retain(|b| b.0 * 5 >= biggest && b.0 >= 4);
    let glasses = if eyes.is_empty() {
        glasses_eyes(s, px, nose_centre, lips_centre)
    } else {
        None
    };
    let eyes_from_glasses = glasses.is_some();
    Landmarks {
        nose,
        lips,
        brows,
        nose_centre,
        lips_centre,
        eyes: glasses.unwrap_or(eyes),
        eyes_from_glasses,
    }
}

/// Eye blobs (connected eye pixels) inside face `id`, largest first: (area, centroid).
fn eye_blobs(s: &Scene, id: u32, px: &[u32]) -> Vec<(usize, Point)> {
    let w = s.w;
    let (mut x0, mut y0, mut x1, mut y1) = (usize::MAX, usize::MAX, 0, 0);
    for &i in px {
        let (x, y) = (i as usize % w, i as usize / w);
        (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x), y1.max(y));
    }
    let (bw, bh) = (x1 - x0 + 1, y1 - y0 + 1);
    let keep: Vec<bool> = (0..bw * bh)
        .map(|k| {
            let (x, y) = (x0 + k % bw, y0 + k / bw);
            let i = y * w + x;
            s.mask[i] == s.roles.eyes && s.labels[i] == id
        })
        .collect();
    let (_, blobs) = components(&keep, bw, bh);
    blobs
        .into_iter()
        .map(|b| {
            let pts: Vec<Point> = b
                .iter()
                .map(|&k| Point::new((x0 + k as usize % bw) as f64 + 0.5, (y0 + k as usize / bw) as f64 + 0.5))
                .collect();
            (b.len(), centroid(&pts).expect("non-empty"))
        })
        .collect()
}

/// With no eye visible (sunglasses): the glasses' pixels above the nose's centre, on each side
/// of the nose→lips line, stand in for the eyes (each side's median, which the temple arms
/// barely move). `None` without glasses, nose and lips, or with under 4 pixels a side.
fn glasses_eyes(s: &Scene, px: &[u32], nose: Option<Point>, lips: Option<Point>) -> Option<Vec<(usize, Point)>> {
    let (g, n, l) = (s.roles.glasses?, nose?, lips?);
    if (l - n).length() <= 1.0 {
        return None;
    }
    let y = (l - n).unit();
    let x = y.turn_back();
    let (mut left, mut right): (Vec<Point>, Vec<Point>) = (vec![], vec![]);
    for p in class_points(s, px, g) {
        // lenses are above the nose's centre
        if (p - n).dot(y) < 0.0 {
            if (p - n).dot(x) > 0.0 {
                right.push(p)
            } else {
                left.push(p)
            }
        }
    }
    if left.len() < 4 || right.len() < 4 {
        return None;
    }
    Some(vec![(left.len(), median(&left)?), (right.len(), median(&right)?)])
}

/// The face's frame from its eyes (with one eye, the nose→lips line gives ŷ and the eye's
/// distance from that line half the inter-eye distance), or why there is none.
fn frame(lm: &Landmarks) -> Result<Frame, &'static str> {
    match lm.eyes.len() {
        0 => Err("no eye visible"),
        1 => match (lm.nose_centre, lm.lips_centre) {
            (Some(n), Some(l)) if (l - n).length() > 1.0 => {
                let y = (l - n).unit();
                let x = y.turn_back();
                let e = lm.eyes[0].1;
                let off = (e - n).dot(x);
                Ok(Frame {
                    mid: e - x * off,
                    x,
                    y,
                    eye_distance: 2.0 * off.abs(),
                    // the visible eye is on the image's right when it is right of the nose line
                    one_eye_right: Some(off > 0.0),
                })
            }
            _ => Err("one eye visible and no nose and lips to orient the face by"),
        },
        2 => {
            let (a, b) = (lm.eyes[0].1, lm.eyes[1].1);
            let (l, r) = if a.x <= b.x { (a, b) } else { (b, a) };
            let d = (r - l).length();
            let x = (r - l) * (1.0 / d.max(1e-9));
            Ok(Frame {
                mid: l.midpoint(r),
                x,
                y: x.turn_down(),
                eye_distance: d,
                one_eye_right: None,
            })
        }
        _ => Err("more than two eyes in one face region (overlapping faces?)"),
    }
}

/// Where the nose bottom, the lips, the upper lip's top and the brows are below eye level.
fn levels(lm: &Landmarks, f: &Frame) -> Levels {
    let along = |p: Point| (p - f.mid).dot(f.y);
    let proj = |pts: &[Point]| -> Vec<f64> { pts.iter().map(|&p| along(p)).collect() };
    Levels {
        nose_bottom: quantile(proj(&lm.nose), 0.98).filter(|&d| d > 0.0),
        lips: lm.lips_centre.map(along).filter(|&d| d > 0.0),
        lip_top: quantile(proj(&lm.lips), 0.02).filter(|&d| d > 0.0),
        brows: centroid(&lm.brows).map(along),
    }
}

/// The bizygomatic width: face `id`'s extent along x̂ through the point halfway between eye
/// level and the bottom of the nose (gaps under 3 px bridged).
fn face_width(s: &Scene, id: u32, f: &Frame, nose_bottom: f64) -> f64 {
    let (w, h) = (s.w, s.h);
    let o = f.mid + f.y * (nose_bottom / 2.0);
    let inside = |p: Point| -> bool {
        let (x, y) = (p.x.floor(), p.y.floor());
        if x < 0.0 || y < 0.0 || x >= w as f64 || y >= h as f64 {
            return false;
        }
        s.labels[y as usize * w + x as usize] == id
    };
    let reach = |sign: f64| -> f64 {
        let (mut t, mut last, mut gap) = (0.0, 0.0, 0.0);
        while gap < 3.0 && t < (w + h) as f64 {
            if inside(o + f.x * (sign * t)) {
                last = t;
                gap = 0.0;
            } else {
                gap += 0.5;
            }
            t += 0.5;
        }
        last
    };
    reach(1.0) + reach(-1.0) + 1.0
}

/// fWHR: the width over the height from the brows' centroid to the top of the upper lip.
fn fwhr(width: Option<f64>, lv: &Levels) -> Result<f64, String> {
    match (width, lv.brows, lv.lip_top) {
        (None, ..) => Err("no nose visible (face width is measured at mid-nose height)".into()),
        (_, None, _) => Err("no eyebrows visible".into()),
        (_, _, None) => Err("no lips visible".into()),
        (Some(wd), Some(b), Some(t)) if t > b => Ok(wd / (t - b)),
        _ => Err("eyebrows not above the upper lip".into()),
    }
}

/// The subject's left and right cheek centres: out from the midline by `cheek_out` eye
/// distances, down by `cheek_down` of the way to the lips (or `cheek_down_nose` of the way to
/// the bottom of the nose); a cheek whose eye is hidden is missing.
fn cheeks(f: &Frame, lv: &Levels, place: &Placement) -> (Cheek, Cheek) {
    let level = match (lv.lips, lv.nose_bottom) {
        (Some(l), _) => place.cheek_down * l,
        (None, Some(n)) => place.cheek_down_nose() * n,
        _ => {
            let why = Cheek::Missing("no lips or nose visible to place the cheek by".into());
            return (why.clone(), why);
        }
    };
    let centre = |sign: f64| Cheek::At(f.mid + f.x * (sign * place.cheek_out * f.eye_distance) + f.y * level);
    match f.one_eye_right {
        None => (centre(1.0), centre(-1.0)),
        Some(true) => (centre(1.0), Cheek::Missing("right eye not visible".into())),
        Some(false) => (Cheek::Missing("left eye not visible".into()), centre(-1.0)),
    }
}

#[cfg(test)]
mod tests;
