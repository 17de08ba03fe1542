//! Which part of a face lies at an image sample, and so its class and colour: glasses, facial
//! hair, brows and eyes, mouth, nose, hairline and skin inside the face outline, then long
//! hair, ears, the hair cap, neck and clothes behind it, tried front to back.

use super::face::{Beard, Glasses, Hair};
use super::{BROW_V, EYE_U, EYE_V, Face, LIP_RV, LIP_V, NOSE_BOTTOM, NOSE_TOP, Rgb, class, ell, in_ellipse_face};

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

impl Face {
    /// Class and colour of the front-most part of this face at image sample (x, y), if any.
    /// `px, py` is the pixel (for texture noise).
    ///
    /// The parts are tried front to back: glasses, facial hair, the features inside the face
    /// outline (which always end on skin), then what lies behind the face.
    pub(super) fn sample(&self, x: f64, y: f64, px: u32, py: u32) -> Option<(u8, Rgb)> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use facepipe_core::rng::SplitMix64;

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
}
