//! The random parameters of one face (skin, hair, beard, glasses, pose, colours), drawn from
//! the seeded generator in a fixed order, and the placement of the face in the image: face
//! units ↔ pixels, the cheek centres, the fWHR, and the light and texture that shade its colours.

use facepipe_core::colour::{self, WhitePoint};
use facepipe_core::rng::SplitMix64;

use super::{BROW_V, CHEEK_U, CHEEK_V, EYE_V, FACE_RV, LIP_RV, LIP_V, NOSE_BOTTOM, Rgb, face_half_width, hash01};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Hair {
    Bald,
    Short,
    Long,
    Fringe,
    Big,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Beard {
    None,
    Moustache,
    Goatee,
    Full,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Glasses {
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
    pub(super) yaw: f64,
    /// Skin colour (CIE L*a*b*, D65) the face was drawn from.
    pub skin_lab: [f64; 3],
    pub(super) skin: Rgb,
    pub(super) light: (f64, f64, f64),
    pub(super) hair: Hair,
    pub(super) hair_rgb: Rgb,
    pub(super) beard: Beard,
    pub(super) glasses: Glasses,
    pub(super) frame_rgb: Rgb,
    pub(super) iris_rgb: Rgb,
    pub(super) mouth_open: f64,
    pub(super) lip_rgb: Rgb,
    pub(super) clothes_rgb: Rgb,
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
    pub(super) fn to_face(&self, x: f64, y: f64) -> (f64, f64) {
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

    pub(super) fn shade(&self, u: f64, v: f64, base: Rgb) -> Rgb {
        let (lx, ly, g) = self.light;
        let r2 = u * u + (v / FACE_RV) * (v / FACE_RV);
        let f = (1.0 + g * (u * lx + v * ly) * 0.5 - 0.18 * r2 * r2).max(0.2) as f32;
        base.map(|c| c * f)
    }

    pub(super) fn texture(&self, px: u32, py: u32, amp: f32) -> f32 {
        1.0 + amp * (hash01(self.noise_seed, px, py) - 0.5)
    }
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
    fn fwhr_is_in_the_human_range() {
        let mut r = SplitMix64::new(9);
        for _ in 0..50 {
            let f = Face::random(&mut r, 0.0, 0.0, 10.0);
            assert!((1.5..2.3).contains(&f.fwhr()), "{}", f.fwhr());
        }
    }
}
