//! A small analytic renderer of synthetic faces and their Mut1ny-palette label masks.
//!
//! Every face is a set of shapes in face units: `u` across (the face ellipse spans -1..1 before
//! the width factor), `v` down (forehead top about -1.3, chin +1.3). A sample point in the image
//! is mapped into each face's units and the front-most shape it falls in decides its class and
//! its colour. Each pixel is 2×2 supersampled: the photo is the mean of its four samples (soft
//! edges, like a photo), the label is the class colour, or with anti-aliasing on the mean of the
//! class colours where the samples disagree (like resized real masks).
//!
//! The parts: [`face`] draws the random parameters of one face from the seeded generator and
//! places it in the image; [`parts`] decides, per sample, which part of a face (and so which
//! class and colour) lies there; [`scene`] draws the background and the faces of one photo and
//! supersamples it into the photo and label pixels. This file holds the palette classes, the
//! face-unit geometry the parts share, and the small shape and noise helpers.

mod face;
mod parts;
mod scene;

pub use face::Face;
pub use scene::{Rendered, Scene};

/// Class indices in the Mut1ny palette.
pub mod class {
    pub const BACKGROUND: u8 = 0;
    pub const LIPS: u8 = 1;
    pub const EYES: u8 = 2;
    pub const NOSE: u8 = 3;
    pub const HAIR: u8 = 4;
    pub const EARS: u8 = 5;
    pub const EYEBROWS: u8 = 6;
    pub const TEETH: u8 = 7;
    pub const SKIN: u8 = 8;
    pub const FACIAL_HAIR: u8 = 9;
    pub const SPECS: u8 = 10;
}

/// Geometry shared with the truth computation: where the cheeks are, in face units.
pub const CHEEK_U: f64 = 0.5;
pub const CHEEK_V: f64 = 0.22;
const EYE_V: f64 = -0.2;
const EYE_U: f64 = 0.38;
const BROW_V: f64 = -0.45;
const LIP_V: f64 = 0.64;
const LIP_RV: f64 = 0.085;
const NOSE_TOP: f64 = -0.2;
const NOSE_BOTTOM: f64 = 0.32;
const FACE_RV: f64 = 1.3;

type Rgb = [f32; 3];

/// Half-width (in face units) of the face outline at height v: an ellipse whose lower half
/// narrows towards the jaw.
fn face_half_width(v: f64) -> f64 {
    let t = v / FACE_RV;
    if t.abs() >= 1.0 {
        return 0.0;
    }
    let base = (1.0 - t * t).sqrt();
    if v > 0.0 { base * (1.0 - 0.12 * t) } else { base }
}

fn in_ellipse_face(u: f64, v: f64) -> bool {
    u.abs() <= face_half_width(v)
}

/// Normalised ellipse distance: ≤ 1 inside.
fn ell(u: f64, v: f64, cu: f64, cv: f64, ru: f64, rv: f64) -> f64 {
    let (a, b) = ((u - cu) / ru, (v - cv) / rv);
    a * a + b * b
}

/// Deterministic per-pixel noise in [0, 1).
fn hash01(seed: u64, x: u32, y: u32) -> f32 {
    let mut z = seed ^ (u64::from(x) << 32 | u64::from(y)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 40) as f32 / (1u64 << 24) as f32
}
