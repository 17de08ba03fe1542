//! A small analytic renderer of synthetic faces and their Mut1ny-palette label masks.
//!
//! Every face is a set of shapes in face units: `u` across (the face ellipse spans -1..1 before
//! the width factor), `v` down (forehead top about -1.3, chin +1.3). A sample point in the image
//! is mapped into each face's units and the front-most shape it falls in decides its class and
//! its colour. Each pixel is 2×2 supersampled: the photo is the mean of its four samples (soft
//! edges, like a photo), the label is the class colour, or with anti-aliasing on the mean of the
//! class colours where the samples disagree (like resized real masks).

use facepipe_core::colour::{self, WhitePoint};
use facepipe_core::rng::SplitMix64;

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

/// One image sample in a face's units, as the part tests of [`Face::sample`] see it.
#[derive(Clone, Copy, Debug)]
struct At {
    /// Across the face (the outline and what lies behind it).
    u: f64,
    /// Down the face.
    v: f64,
    /// `u` shifted with the head turn (the inner features).
    fu: f64,
    /// The pixel, for texture noise.
    px: u32,
    py: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Hair {
    Bald,
    Short,
    Long,
    Fringe,
    Big,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Beard {
    None,
    Moustache,
    Goatee,
    Full,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Glasses {
    None,
    Clear,
    Sun,
}

/// Everything random about one face.
#[derive(Clone, Debug)]
pub struct Face {
    pub cx: f64,
    pub cy: f64,
    /// Pixels per face unit (half the face width before `wx`).
    pub s: f64,
    /// Rotation in radians (positive = clockwise on screen).
    pub theta: f64,
    /// Face width factor.
    pub wx: f64,
    /// Horizontal shift of the inner features (a slight head turn).
    yaw: f64,
    /// Skin colour (CIE L*a*b*, D65) the face was drawn from.
    pub skin_lab: [f64; 3],
    skin: Rgb,
    light: (f64, f64, f64),
    hair: Hair,
    hair_rgb: Rgb,
    beard: Beard,
    glasses: Glasses,
    frame_rgb: Rgb,
    iris_rgb: Rgb,
    mouth_open: f64,
    lip_rgb: Rgb,
    clothes_rgb: Rgb,
    noise_seed: u64,
    pub sex: &'static str,
    pub age: u32,
}

fn lab_to_rgb8f(lab: [f64; 3]) -> Rgb {
    colour::lab_to_srgb(lab, WhitePoint::D65).map(|c| (c.clamp(0.0, 1.0) * 255.0) as f32)
}

fn pick<T: Copy>(r: &mut SplitMix64, xs: &[T]) -> T {
    xs[r.below(xs.len() as u64) as usize]
}

impl Face {
    /// A random face of half-width `s` px centred at (cx, cy).
    pub fn random(r: &mut SplitMix64, cx: f64, cy: f64, s: f64) -> Face {
        // Skin tones spread over the range reported for human skin in CIE L*a*b*.
        let l = r.range(32.0, 78.0);
        let a = r.range(7.0, 19.0) + (60.0 - l) * 0.06;
        let b = r.range(12.0, 28.0);
        let skin_lab = [l, a, b];
        let sex = if r.chance(0.5) { "female" } else { "male" };
        let hair = if sex == "female" {
            pick(r, &[Hair::Long, Hair::Long, Hair::Fringe, Hair::Big, Hair::Short])
        } else {
            pick(
                r,
                &[
                    Hair::Short,
                    Hair::Short,
                    Hair::Bald,
                    Hair::Fringe,
                    Hair::Big,
                    Hair::Long,
                ],
            )
        };
        let beard = if sex == "male" && r.chance(0.45) {
            pick(r, &[Beard::Moustache, Beard::Goatee, Beard::Full])
        } else {
            Beard::None
        };
        let glasses = if r.chance(0.25) {
            pick(r, &[Glasses::Clear, Glasses::Clear, Glasses::Sun])
        } else {
            Glasses::None
        };
        let hair_rgb = pick(
            r,
            &[
                [20.0, 16.0, 14.0],
                [60.0, 38.0, 24.0],
                [110.0, 72.0, 40.0],
                [200.0, 165.0, 100.0],
                [150.0, 60.0, 30.0],
                [150.0, 150.0, 150.0],
            ],
        );
        let ang = r.range(0.0, std::f64::consts::TAU);
        Face {
            cx,
            cy,
            s,
            theta: r.range(-0.26, 0.26),
            wx: r.range(0.86, 1.0),
            yaw: r.range(-0.12, 0.12),
            skin_lab,
            skin: lab_to_rgb8f(skin_lab),
            light: (ang.cos(), ang.sin(), r.range(0.05, 0.3)),
            hair,
            hair_rgb,
            beard,
            glasses,
            frame_rgb: pick(r, &[[20.0, 20.0, 20.0], [120.0, 80.0, 40.0], [180.0, 180.0, 190.0]]),
            iris_rgb: pick(
                r,
                &[
                    [70.0, 45.0, 25.0],
                    [40.0, 25.0, 15.0],
                    [70.0, 110.0, 150.0],
                    [80.0, 110.0, 70.0],
                ],
            ),
            mouth_open: if r.chance(0.3) { r.range(0.5, 1.0) } else { 0.0 },
            lip_rgb: lab_to_rgb8f([l * 0.85, a + 14.0, b * 0.8]),
            clothes_rgb: [
                r.range(20.0, 230.0) as f32,
                r.range(20.0, 230.0) as f32,
                r.range(20.0, 230.0) as f32,
            ],
            noise_seed: r.next_u64(),
            sex,
            age: 18 + r.below(60) as u32,
        }
    }

    /// Image point → face units.
    fn to_face(&self, x: f64, y: f64) -> (f64, f64) {
        let (dx, dy) = (x - self.cx, y - self.cy);
        let (sn, cs) = self.theta.sin_cos();
        let u = (cs * dx + sn * dy) / (self.s * self.wx);
        let v = (-sn * dx + cs * dy) / self.s;
        (u, v)
    }

    /// Face units → image point.
    pub fn to_image(&self, u: f64, v: f64) -> (f64, f64) {
        let (sn, cs) = self.theta.sin_cos();
        let (a, b) = (u * self.s * self.wx, v * self.s);
        (self.cx + cs * a - sn * b, self.cy + sn * a + cs * b)
    }

    /// Centre of the subject's left (`left = true`, image right) or right cheek, in pixels.
    pub fn cheek_centre(&self, left: bool) -> (f64, f64) {
        let u = if left { CHEEK_U } else { -CHEEK_U } + self.yaw;
        self.to_image(u, CHEEK_V)
    }

    /// Facial width-to-height ratio by construction: face width at the height midway between
    /// the eyes and the base of the nose, over the distance from the brows to the upper lip.
    pub fn fwhr(&self) -> f64 {
        let v = (EYE_V + NOSE_BOTTOM) / 2.0;
        2.0 * face_half_width(v) * self.wx / (LIP_V - LIP_RV - BROW_V)
    }

    fn shade(&self, u: f64, v: f64, base: Rgb) -> Rgb {
        let (lx, ly, g) = self.light;
        let r2 = u * u + (v / FACE_RV) * (v / FACE_RV);
        let f = (1.0 + g * (u * lx + v * ly) * 0.5 - 0.18 * r2 * r2).max(0.2) as f32;
        base.map(|c| c * f)
    }

    fn texture(&self, px: u32, py: u32, amp: f32) -> f32 {
        1.0 + amp * (hash01(self.noise_seed, px, py) - 0.5)
    }

    /// Class and colour of the front-most part of this face at image sample (x, y), if any.
    /// `px, py` is the pixel (for texture noise).
    ///
    /// The parts are tried front to back: glasses, facial hair, the features inside the face
    /// outline (which always end on skin), then what lies behind the face.
    fn sample(&self, x: f64, y: f64, px: u32, py: u32) -> Option<(u8, Rgb)> {
        let (u, v) = self.to_face(x, y);
        if !(-2.6..=2.6).contains(&u) || !(-1.9..=3.8).contains(&v) {
            return None;
        }
        // inner features shift with the head turn
        let at = At {
            u,
            v,
            fu: u - self.yaw,
            px,
            py,
        };
        let in_face = in_ellipse_face(u, v);
        if let Some(hit) = self.glasses_at(at) {
            return Some(hit);
        }
        if (in_face || v > 0.9) && self.facial_hair_at(at, in_face) {
            let c = self.hair_rgb.map(|c| c * self.texture(px, py, 0.5));
            return Some((class::FACIAL_HAIR, c));
        }
        if in_face {
            return Some(self.inside_face_at(at));
        }
        self.behind_face_at(at)
    }

    /// Skin colour at a sample: shaded by the light, with a little texture noise.
    fn skin_at(&self, at: At) -> Rgb {
        self.shade(at.u, at.v, self.skin)
            .map(|c| c * self.texture(at.px, at.py, 0.06))
    }

    /// Lenses, frames, temples and bridge of the glasses (front-most of all).
    fn glasses_at(&self, at: At) -> Option<(u8, Rgb)> {
        if self.glasses == Glasses::None {
            return None;
        }
        let At { fu, v, .. } = at;
        for side in [-1.0, 1.0] {
            let e = ell(fu, v, side * EYE_U, EYE_V, 0.25, 0.16);
            let lens = e <= 1.0;
            let frame = lens && e >= 0.72;
            if frame || (lens && self.glasses == Glasses::Sun) {
                let c = if frame { self.frame_rgb } else { [25.0, 28.0, 32.0] };
                return Some((class::SPECS, c));
            }
            let temple = side * fu > EYE_U + 0.24 && side * fu < 1.02 && (v - EYE_V + 0.04).abs() < 0.025;
            if temple {
                return Some((class::SPECS, self.frame_rgb));
            }
        }
        if fu.abs() < 0.14 && (v - EYE_V + 0.05).abs() < 0.025 {
            return Some((class::SPECS, self.frame_rgb));
        }
        None
    }

    /// Whether this face's beard or moustache covers the sample.
    fn facial_hair_at(&self, at: At, in_face: bool) -> bool {
        let At { u, v, fu, .. } = at;
        match self.beard {
            Beard::None => false,
            Beard::Moustache => ell(fu, v, 0.0, LIP_V - 0.14, 0.3, 0.06) <= 1.0,
            Beard::Goatee => {
                ell(fu, v, 0.0, 1.05, 0.24, 0.25) <= 1.0 || ell(fu, v, 0.0, LIP_V - 0.14, 0.28, 0.05) <= 1.0
            }
            Beard::Full => {
                let chin = ell(u, v, 0.0, 0.12, 1.02, 1.36) <= 1.0 && v > 0.42;
                let sides = in_face && u.abs() > 0.78 && v > -0.1;
                (chin || sides) && ell(fu, v, 0.0, LIP_V, 0.3, LIP_RV + 0.01) > 1.0
            }
        }
    }

    /// Inside the face outline: brows, eyes, mouth, nose, the hairline, or else skin.
    fn inside_face_at(&self, at: At) -> (u8, Rgb) {
        if let Some(hit) = self
            .brows_or_eyes_at(at)
            .or_else(|| self.mouth_at(at))
            .or_else(|| self.nose_at(at))
        {
            return hit;
        }
        // Fringe / hairline over the forehead.
        if let Some(line) = self.hairline(at.u)
            && at.v < line
        {
            return (class::HAIR, self.hair_colour(at.u, at.v, at.px, at.py));
        }
        (class::SKIN, self.skin_at(at))
    }

    /// Eyebrows (slightly arched, tilted ellipses), then the eyes: sclera, iris, pupil.
    fn brows_or_eyes_at(&self, at: At) -> Option<(u8, Rgb)> {
        let At { v, fu, px, py, .. } = at;
        for side in [-1.0f64, 1.0] {
            let du = fu - side * EYE_U;
            let dv = v - BROW_V + 0.12 * (du / 0.2) * (du / 0.2) * 0.3 - side * du * 0.1;
            if (du / 0.21).powi(2) + (dv / 0.042).powi(2) <= 1.0 {
                return Some((
                    class::EYEBROWS,
                    self.hair_rgb.map(|c| c * 0.8 * self.texture(px, py, 0.3)),
                ));
            }
        }
        for side in [-1.0, 1.0] {
            if ell(fu, v, side * EYE_U, EYE_V, 0.155, 0.07) <= 1.0 {
                let d = ((fu - side * EYE_U).powi(2) + (v - EYE_V).powi(2)).sqrt();
                let c = if d < 0.028 {
                    [15.0, 12.0, 12.0]
                } else if d < 0.062 {
                    self.iris_rgb
                } else {
                    [225.0, 220.0, 215.0]
                };
                return Some((class::EYES, c));
            }
        }
        None
    }

    /// Mouth: teeth inside open lips, then the lips.
    fn mouth_at(&self, at: At) -> Option<(u8, Rgb)> {
        let At { u, v, fu, px, py } = at;
        if self.mouth_open > 0.0 && ell(fu, v, 0.0, LIP_V, 0.18, 0.035 * self.mouth_open) <= 1.0 {
            return Some((
                class::TEETH,
                [235.0, 232.0, 220.0].map(|c| c * self.texture(px, py, 0.05)),
            ));
        }
        let lip_w = 0.27 + 0.02 * self.wx;
        if ell(fu, v, 0.0, LIP_V, lip_w, LIP_RV * (1.0 + 0.4 * self.mouth_open)) <= 1.0 {
            return Some((
                class::LIPS,
                self.shade(u, v, self.lip_rgb).map(|c| c * self.texture(px, py, 0.05)),
            ));
        }
        None
    }

    /// Nose: a widening ridge and the nostril wings, shaded on the side away from the light.
    fn nose_at(&self, at: At) -> Option<(u8, Rgb)> {
        let At { v, fu, .. } = at;
        if !(NOSE_TOP..=NOSE_BOTTOM).contains(&v) {
            return None;
        }
        let t = (v - NOSE_TOP) / (NOSE_BOTTOM - NOSE_TOP);
        let half = 0.06 + 0.1 * t.powf(1.5);
        let wing = ell(fu, v, 0.0, NOSE_BOTTOM - 0.06, 0.19, 0.07) <= 1.0;
        if !(fu.abs() <= half || wing) {
            return None;
        }
        let nostril = ell(fu.abs(), v, 0.08, NOSE_BOTTOM - 0.04, 0.04, 0.022) <= 1.0;
        let side_shade = if fu * self.light.0 < 0.0 { 0.9 } else { 1.04 };
        let c = if nostril {
            self.skin_at(at).map(|c| c * 0.45)
        } else {
            self.skin_at(at).map(|c| c * side_shade)
        };
        Some((class::NOSE, c))
    }

    /// Behind the face: long hair over the ears, ears, the back of the hair, neck, clothes.
    fn behind_face_at(&self, at: At) -> Option<(u8, Rgb)> {
        let At { u, v, px, py, .. } = at;
        let long_side =
            self.hair == Hair::Long && u.abs() > 0.7 && u.abs() < 1.38 && v > -0.6 && v < 1.7 - 0.3 * (u.abs() - 0.7);
        if long_side {
            return Some((class::HAIR, self.hair_colour(u, v, px, py)));
        }
        for side in [-1.0, 1.0] {
            if ell(u, v, side * 1.0, -0.05, 0.14, 0.26) <= 1.0 {
                let c = self
                    .shade(u, v, self.skin)
                    .map(|c| c * 0.92 * self.texture(px, py, 0.05));
                return Some((class::EARS, c));
            }
        }
        if self.hair_cap(u, v) {
            return Some((class::HAIR, self.hair_colour(u, v, px, py)));
        }
        if u.abs() < 0.5 && v > 0.7 && v < 2.3 {
            let c = self.skin.map(|c| c * 0.78 * self.texture(px, py, 0.05));
            return Some((class::BACKGROUND, c));
        }
        if ell(u, v, 0.0, 2.9, 2.3, 1.1) <= 1.0 {
            return Some((
                class::BACKGROUND,
                self.clothes_rgb.map(|c| c * self.texture(px, py, 0.1)),
            ));
        }
        None
    }

    /// Where the hair starts on the forehead, if the hairstyle covers it.
    fn hairline(&self, u: f64) -> Option<f64> {
        match self.hair {
            Hair::Bald => None,
            Hair::Fringe => Some(-0.62 + 0.1 * u * u),
            Hair::Short | Hair::Long | Hair::Big => Some(-0.82 + 0.45 * u * u),
        }
    }

    /// The part of the hair outside the face ellipse.
    fn hair_cap(&self, u: f64, v: f64) -> bool {
        match self.hair {
            Hair::Bald => false,
            Hair::Short | Hair::Fringe => ell(u, v, 0.0, -0.12, 1.1, 1.42) <= 1.0 && v < 0.1,
            Hair::Long => ell(u, v, 0.0, -0.1, 1.18, 1.45) <= 1.0 && v < 0.3,
            Hair::Big => ell(u, v, 0.0, -0.35, 1.55, 1.45) <= 1.0 && v < 0.5,
        }
    }

    fn hair_colour(&self, u: f64, v: f64, px: u32, py: u32) -> Rgb {
        let streak = 1.0 + 0.12 * ((u * 23.0 + v * 3.0).sin() as f32);
        self.shade(u * 0.5, v * 0.5, self.hair_rgb)
            .map(|c| c * streak * self.texture(px, py, 0.25))
    }
}

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

#[derive(Clone, Debug)]
enum Background {
    Solid(Rgb),
    Gradient(Rgb, Rgb, bool),
    Blocks(Vec<(f64, f64, f64, f64, Rgb)>, Rgb),
}

impl Background {
    fn random(r: &mut SplitMix64, w: f64, h: f64) -> Self {
        let col = |r: &mut SplitMix64| {
            [
                r.range(10.0, 245.0) as f32,
                r.range(10.0, 245.0) as f32,
                r.range(10.0, 245.0) as f32,
            ]
        };
        match r.below(3) {
            0 => Background::Solid(col(r)),
            1 => Background::Gradient(col(r), col(r), r.chance(0.5)),
            _ => {
                let base = col(r);
                let blocks = (0..2 + r.below(5))
                    .map(|_| {
                        let (x, y) = (r.range(0.0, w), r.range(0.0, h));
                        (
                            x,
                            y,
                            x + r.range(w * 0.1, w * 0.6),
                            y + r.range(h * 0.1, h * 0.6),
                            col(r),
                        )
                    })
                    .collect();
                Background::Blocks(blocks, base)
            }
        }
    }

    fn at(&self, x: f64, y: f64, w: f64, h: f64) -> Rgb {
        match self {
            Background::Solid(c) => *c,
            Background::Gradient(a, b, vertical) => {
                let t = if *vertical { y / h } else { x / w } as f32;
                [0, 1, 2].map(|i| a[i] * (1.0 - t) + b[i] * t)
            }
            Background::Blocks(blocks, base) => blocks
                .iter()
                .rev()
                .find(|(x0, y0, x1, y1, _)| x >= *x0 && x < *x1 && y >= *y0 && y < *y1)
                .map_or(*base, |b| b.4),
        }
    }
}

/// One synthetic photo: background and faces, back to front.
#[derive(Clone, Debug)]
pub struct Scene {
    pub width: u32,
    pub height: u32,
    background: Background,
    /// Back to front; the last is the front-most.
    pub faces: Vec<Face>,
    noise_seed: u64,
}

impl Scene {
    pub fn random(r: &mut SplitMix64, width: u32, height: u32, two_faces: f64) -> Scene {
        let (w, h) = (f64::from(width), f64::from(height));
        let m = w.min(h);
        let background = Background::random(r, w, h);
        let mut faces = Vec::new();
        if r.chance(two_faces) {
            // Two smaller faces side by side, one further back.
            let s1 = m * r.range(0.13, 0.17);
            let s2 = s1 * r.range(0.75, 0.95);
            let left_first = r.chance(0.5);
            let (x1, x2) = if left_first { (0.32, 0.7) } else { (0.68, 0.3) };
            let y2 = h * r.range(0.38, 0.48);
            faces.push(Face::random(r, w * x2, y2, s2));
            let y1 = h * r.range(0.40, 0.50);
            faces.push(Face::random(r, w * x1, y1, s1));
        } else {
            let s = m * r.range(0.2, 0.28);
            let (x, y) = (w / 2.0 + r.range(-0.12, 0.12) * w, h * r.range(0.42, 0.52));
            faces.push(Face::random(r, x, y, s));
        }
        Scene {
            width,
            height,
            background,
            faces,
            noise_seed: r.next_u64(),
        }
    }

    /// Class, colour and face index (or `u8::MAX` for background) at an image sample.
    fn sample(&self, x: f64, y: f64, px: u32, py: u32) -> (u8, Rgb, u8) {
        for (k, f) in self.faces.iter().enumerate().rev() {
            if let Some((c, rgb)) = f.sample(x, y, px, py) {
                return (c, rgb, k as u8);
            }
        }
        let (w, h) = (f64::from(self.width), f64::from(self.height));
        (class::BACKGROUND, self.background.at(x, y, w, h), u8::MAX)
    }

    /// Renders the photo (RGB8), the label (RGB8 in `palette`), and per pixel the face that owns
    /// it fully (all four samples skin-or-other of that face; `u8::MAX` otherwise) and whether all
    /// four samples are face skin.
    pub fn render(&self, palette: &[[u8; 3]], aa_labels: bool) -> Rendered {
        let (w, h) = (self.width as usize, self.height as usize);
        let mut photo = vec![0u8; w * h * 3];
        let mut label = vec![0u8; w * h * 3];
        let mut skin_of = vec![u8::MAX; w * h];
        const OFF: [(f64, f64); 4] = [(0.25, 0.25), (0.75, 0.25), (0.25, 0.75), (0.75, 0.75)];
        for py in 0..h {
            for px in 0..w {
                let mut acc = [0f32; 3];
                let mut classes = [0u8; 4];
                let mut owners = [0u8; 4];
                for (i, (ox, oy)) in OFF.iter().enumerate() {
                    let (c, rgb, k) = self.sample(px as f64 + ox, py as f64 + oy, px as u32, py as u32);
                    classes[i] = c;
                    owners[i] = k;
                    for j in 0..3 {
                        acc[j] += rgb[j];
                    }
                }
                let n = hash01(self.noise_seed, px as u32, py as u32) * 4.0 - 2.0; // sensor noise
                let o = (py * w + px) * 3;
                for j in 0..3 {
                    photo[o + j] = (acc[j] / 4.0 + n).round().clamp(0.0, 255.0) as u8;
                }
                let uniform = classes.iter().all(|&c| c == classes[0]);
                let rgb = if uniform {
                    palette[usize::from(classes[0])]
                } else if aa_labels {
                    let mut s = [0u32; 3];
                    for &c in &classes {
                        for j in 0..3 {
                            s[j] += u32::from(palette[usize::from(c)][j]);
                        }
                    }
                    s.map(|v| ((v + 2) / 4) as u8)
                } else {
                    palette[usize::from(majority(&classes))]
                };
                label[o..o + 3].copy_from_slice(&rgb);
                if uniform && classes[0] == class::SKIN && owners.iter().all(|&k| k == owners[0]) {
                    skin_of[py * w + px] = owners[0];
                }
            }
        }
        Rendered { photo, label, skin_of }
    }
}

/// Pixel buffers of a rendered scene.
#[derive(Debug)]
pub struct Rendered {
    pub photo: Vec<u8>,
    pub label: Vec<u8>,
    /// Per pixel: index of the face whose skin fully covers it, or `u8::MAX`.
    pub skin_of: Vec<u8>,
}

fn majority(c: &[u8; 4]) -> u8 {
    let mut best = (0, c[0]);
    for &x in c {
        let n = c.iter().filter(|&&y| y == x).count();
        if n > best.0 {
            best = (n, x);
        }
    }
    best.1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn face_transform_round_trips() {
        let mut r = SplitMix64::new(3);
        let f = Face::random(&mut r, 100.0, 120.0, 50.0);
        let (x, y) = f.to_image(0.3, -0.4);
        let (u, v) = f.to_face(x, y);
        assert!((u - 0.3).abs() < 1e-9 && (v + 0.4).abs() < 1e-9);
    }

    #[test]
    fn cheeks_are_on_skin_for_a_plain_face() {
        let mut r = SplitMix64::new(5);
        let mut f = Face::random(&mut r, 64.0, 64.0, 30.0);
        f.beard = Beard::None;
        f.glasses = Glasses::None;
        for left in [true, false] {
            let (x, y) = f.cheek_centre(left);
            let (c, _) = f.sample(x, y, 0, 0).unwrap();
            assert_eq!(c, class::SKIN);
        }
        // subject's left cheek is on the image's right
        assert!(f.cheek_centre(true).0 > f.cheek_centre(false).0 || f.theta.abs() > 1.0);
    }

    #[test]
    fn fwhr_is_in_the_human_range() {
        let mut r = SplitMix64::new(9);
        for _ in 0..50 {
            let f = Face::random(&mut r, 0.0, 0.0, 10.0);
            assert!((1.5..2.3).contains(&f.fwhr()), "{}", f.fwhr());
        }
    }
}
