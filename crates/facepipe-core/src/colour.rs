//! Colour science: 8-bit sRGB ⇄ linear RGB ⇄ CIE XYZ ⇄ CIE L\*a\*b\*.
//!
//! One implementation serves both the demo-data generator (which writes the true cheek
//! colours) and the measuring stage, and it is tested against published values so that
//! sharing it cannot hide a bug.
//!
//! * sRGB transfer function and primaries: IEC 61966-2-1.
//! * D65 (the sRGB white; what scikit-image's `rgb2lab` uses) and D50 (ICC profile connection
//!   space; Photoshop's Lab), the latter via the Bradford-adapted sRGB matrix.

/// Reference white of the Lab conversion.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum WhitePoint {
    D65,
    D50,
}

type M3 = [[f64; 3]; 3];

/// sRGB (linear) → XYZ, D65 white (IEC 61966-2-1 primaries, as tabulated by B. Lindbloom).
const RGB_TO_XYZ_D65: M3 = [
    [0.412_456_4, 0.357_576_1, 0.180_437_5],
    [0.212_672_9, 0.715_152_2, 0.072_175_0],
    [0.019_333_9, 0.119_192_0, 0.950_304_1],
];

/// sRGB (linear) → XYZ adapted to D50 with the Bradford transform (Lindbloom; ICC).
const RGB_TO_XYZ_D50: M3 = [
    [0.436_074_7, 0.385_064_9, 0.143_080_4],
    [0.222_504_5, 0.716_878_6, 0.060_616_9],
    [0.013_932_2, 0.097_104_5, 0.714_173_3],
];

impl WhitePoint {
    /// Tristimulus values of the white, Y = 1.
    pub fn xyz(self) -> [f64; 3] {
        match self {
            WhitePoint::D65 => [0.950_47, 1.0, 1.088_83],
            WhitePoint::D50 => [0.964_22, 1.0, 0.825_21],
        }
    }

    fn matrix(self) -> &'static M3 {
        match self {
            WhitePoint::D65 => &RGB_TO_XYZ_D65,
            WhitePoint::D50 => &RGB_TO_XYZ_D50,
        }
    }
}

/// sRGB-encoded value in 0..=1 → linear light.
pub fn srgb_to_linear(c: f64) -> f64 {
    if c <= 0.040_45 {
        c / 12.92
    } else {
        ((c + 0.055) / 1.055).powf(2.4)
    }
}

/// Linear light → sRGB-encoded value in 0..=1 (not clamped).
pub fn linear_to_srgb(c: f64) -> f64 {
    if c <= 0.003_130_8 {
        c * 12.92
    } else {
        1.055 * c.powf(1.0 / 2.4) - 0.055
    }
}

fn mul(m: &M3, v: [f64; 3]) -> [f64; 3] {
    [
        m[0][0] * v[0] + m[0][1] * v[1] + m[0][2] * v[2],
        m[1][0] * v[0] + m[1][1] * v[1] + m[1][2] * v[2],
        m[2][0] * v[0] + m[2][1] * v[1] + m[2][2] * v[2],
    ]
}

fn inverse(m: &M3) -> M3 {
    let det = m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
        + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
    let c = |r0: usize, c0: usize, r1: usize, c1: usize| m[r0][c0] * m[r1][c1] - m[r0][c1] * m[r1][c0];
    [
        [c(1, 1, 2, 2) / det, -c(0, 1, 2, 2) / det, c(0, 1, 1, 2) / det],
        [-c(1, 0, 2, 2) / det, c(0, 0, 2, 2) / det, -c(0, 0, 1, 2) / det],
        [c(1, 0, 2, 1) / det, -c(0, 0, 2, 1) / det, c(0, 0, 1, 1) / det],
    ]
}

const DELTA: f64 = 6.0 / 29.0;

fn lab_f(t: f64) -> f64 {
    if t > DELTA * DELTA * DELTA {
        t.cbrt()
    } else {
        t / (3.0 * DELTA * DELTA) + 4.0 / 29.0
    }
}

fn lab_f_inv(t: f64) -> f64 {
    if t > DELTA {
        t * t * t
    } else {
        3.0 * DELTA * DELTA * (t - 4.0 / 29.0)
    }
}

/// Linear RGB (0..=1) → XYZ relative to `white` (Y of white = 1).
pub fn linear_rgb_to_xyz(rgb: [f64; 3], white: WhitePoint) -> [f64; 3] {
    mul(white.matrix(), rgb)
}

/// XYZ → CIE L\*a\*b\*.
pub fn xyz_to_lab(xyz: [f64; 3], white: WhitePoint) -> [f64; 3] {
    let w = white.xyz();
    let (fx, fy, fz) = (lab_f(xyz[0] / w[0]), lab_f(xyz[1] / w[1]), lab_f(xyz[2] / w[2]));
    [116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)]
}

/// CIE L\*a\*b\* → XYZ.
pub fn lab_to_xyz(lab: [f64; 3], white: WhitePoint) -> [f64; 3] {
    let w = white.xyz();
    let fy = (lab[0] + 16.0) / 116.0;
    let fx = fy + lab[1] / 500.0;
    let fz = fy - lab[2] / 200.0;
    [w[0] * lab_f_inv(fx), w[1] * lab_f_inv(fy), w[2] * lab_f_inv(fz)]
}

/// sRGB in 0..=1 (gamma-encoded, may be a mean of pixels) → L\*a\*b\*.
pub fn srgb_to_lab(rgb: [f64; 3], white: WhitePoint) -> [f64; 3] {
    let lin = rgb.map(srgb_to_linear);
    xyz_to_lab(linear_rgb_to_xyz(lin, white), white)
}

/// 8-bit sRGB → L\*a\*b\*.
pub fn srgb8_to_lab(rgb: [u8; 3], white: WhitePoint) -> [f64; 3] {
    srgb_to_lab(rgb.map(|c| f64::from(c) / 255.0), white)
}

/// L\*a\*b\* → sRGB in 0..=1 (gamma-encoded; out-of-gamut values are not clamped).
pub fn lab_to_srgb(lab: [f64; 3], white: WhitePoint) -> [f64; 3] {
    let lin = mul(&inverse(white.matrix()), lab_to_xyz(lab, white));
    lin.map(linear_to_srgb)
}

/// CIE76 colour difference ΔE\*ab: the Euclidean distance in L\*a\*b\*.
pub fn delta_e76(a: [f64; 3], b: [f64; 3]) -> f64 {
    ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)).sqrt()
}

/// CIEDE2000 colour difference (kL = kC = kH = 1), as written out by Sharma, Wu and Dalal
/// (2005), including their conventions for hue angles at zero chroma and at 180° apart.
pub fn ciede2000(lab1: [f64; 3], lab2: [f64; 3]) -> f64 {
    let [l1, a1, b1] = lab1;
    let [l2, a2, b2] = lab2;
    let pow7 = |x: f64| x.powi(7);
    let c_bar = ((a1.hypot(b1)) + (a2.hypot(b2))) / 2.0;
    let g = 0.5 * (1.0 - (pow7(c_bar) / (pow7(c_bar) + pow7(25.0))).sqrt());
    let (a1p, a2p) = ((1.0 + g) * a1, (1.0 + g) * a2);
    let (c1p, c2p) = (a1p.hypot(b1), a2p.hypot(b2));
    let hue = |b: f64, a: f64| {
        if a == 0.0 && b == 0.0 {
            0.0
        } else {
            b.atan2(a).to_degrees().rem_euclid(360.0)
        }
    };
    let (h1p, h2p) = (hue(b1, a1p), hue(b2, a2p));
    let dl = l2 - l1;
    let dc = c2p - c1p;
    let dh = if c1p * c2p == 0.0 {
        0.0
    } else {
        match h2p - h1p {
            d if d.abs() <= 180.0 => d,
            d if d > 180.0 => d - 360.0,
            d => d + 360.0,
        }
    };
    let dhh = 2.0 * (c1p * c2p).sqrt() * (dh.to_radians() / 2.0).sin();
    let l_bar = (l1 + l2) / 2.0;
    let c_bar_p = (c1p + c2p) / 2.0;
    let h_bar = if c1p * c2p == 0.0 {
        h1p + h2p
    } else if (h1p - h2p).abs() <= 180.0 {
        (h1p + h2p) / 2.0
    } else if h1p + h2p < 360.0 {
        (h1p + h2p + 360.0) / 2.0
    } else {
        (h1p + h2p - 360.0) / 2.0
    };
    let cos = |deg: f64| deg.to_radians().cos();
    let t = 1.0 - 0.17 * cos(h_bar - 30.0) + 0.24 * cos(2.0 * h_bar) + 0.32 * cos(3.0 * h_bar + 6.0)
        - 0.20 * cos(4.0 * h_bar - 63.0);
    let d_theta = 30.0 * (-((h_bar - 275.0) / 25.0).powi(2)).exp();
    let rc = 2.0 * (pow7(c_bar_p) / (pow7(c_bar_p) + pow7(25.0))).sqrt();
    let sl = 1.0 + 0.015 * (l_bar - 50.0).powi(2) / (20.0 + (l_bar - 50.0).powi(2)).sqrt();
    let sc = 1.0 + 0.045 * c_bar_p;
    let sh = 1.0 + 0.015 * c_bar_p * t;
    let rt = -(2.0 * d_theta).to_radians().sin() * rc;
    let (x, y, z) = (dl / sl, dc / sc, dhh / sh);
    (x * x + y * y + z * z + rt * y * z).sqrt()
}

/// Individual typology angle ITA° = atan((L\* − 50) / b\*) in degrees; `None` for b\* ≤ 0,
/// where the angle is not a skin measure.
pub fn ita(lab: [f64; 3]) -> Option<f64> {
    (lab[2] > 0.0).then(|| ((lab[0] - 50.0) / lab[2]).atan().to_degrees())
}

/// The skin category of an ITA° (Chardon et al. 1991; Del Bino et al. 2006): very light
/// > 55°, light > 41°, intermediate > 28°, tan > 10°, brown > −30°, dark below.
pub fn ita_category(ita: f64) -> &'static str {
    match ita {
        x if x > 55.0 => "very light",
        x if x > 41.0 => "light",
        x if x > 28.0 => "intermediate",
        x if x > 10.0 => "tan",
        x if x > -30.0 => "brown",
        _ => "dark",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: [f64; 3], b: [f64; 3], tol: f64) {
        for i in 0..3 {
            assert!((a[i] - b[i]).abs() < tol, "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn white_and_black() {
        close(srgb8_to_lab([255, 255, 255], WhitePoint::D65), [100.0, 0.0, 0.0], 1e-3);
        close(srgb8_to_lab([255, 255, 255], WhitePoint::D50), [100.0, 0.0, 0.0], 1e-3);
        close(srgb8_to_lab([0, 0, 0], WhitePoint::D65), [0.0, 0.0, 0.0], 1e-9);
    }

    #[test]
    fn primaries_match_published_values() {
        // D65: scikit-image rgb2lab / Lindbloom's calculator.
        close(
            srgb8_to_lab([255, 0, 0], WhitePoint::D65),
            [53.2408, 80.0925, 67.2032],
            0.01,
        );
        close(
            srgb8_to_lab([0, 255, 0], WhitePoint::D65),
            [87.7347, -86.1827, 83.1793],
            0.01,
        );
        close(
            srgb8_to_lab([0, 0, 255], WhitePoint::D65),
            [32.2970, 79.1875, -107.8602],
            0.01,
        );
        // D50 (Bradford), Lindbloom's calculator.
        close(
            srgb8_to_lab([255, 0, 0], WhitePoint::D50),
            [54.2917, 80.8125, 69.8851],
            0.01,
        );
        close(
            srgb8_to_lab([0, 0, 255], WhitePoint::D50),
            [29.5676, 68.2986, -112.0294],
            0.01,
        );
    }

    #[test]
    fn skin_tones_match_scikit_image() {
        // skimage.color.rgb2lab 0.25 on uint8 inputs (D65, 2° observer).
        close(
            srgb8_to_lab([224, 172, 105], WhitePoint::D65),
            [73.7885, 11.2767, 41.5337],
            0.01,
        );
        close(
            srgb8_to_lab([141, 85, 36], WhitePoint::D65),
            [41.6711, 18.9050, 37.2399],
            0.01,
        );
        close(
            srgb8_to_lab([255, 219, 172], WhitePoint::D65),
            [89.3483, 5.9264, 27.7704],
            0.01,
        );
        // colour-science 0.4: sRGB → XYZ (Bradford to D50) → Lab (D50).
        close(
            srgb8_to_lab([224, 172, 105], WhitePoint::D50),
            [74.1989, 14.0131, 41.8941],
            0.02,
        );
        close(
            srgb8_to_lab([141, 85, 36], WhitePoint::D50),
            [42.0692, 20.7782, 37.6696],
            0.02,
        );
    }

    #[test]
    fn lab_round_trip() {
        for lab in [[50.0, 10.0, 20.0], [70.0, 12.0, 18.0], [30.0, 5.0, 10.0]] {
            for w in [WhitePoint::D65, WhitePoint::D50] {
                close(srgb_to_lab(lab_to_srgb(lab, w), w), lab, 1e-9);
            }
        }
    }

    #[test]
    fn ciede2000_matches_sharma_wu_dalal() {
        let data = include_str!("../tests/data/ciede2000_sharma2005.txt");
        let mut n = 0;
        for line in data.lines().filter(|l| !l.starts_with('#')) {
            let v: Vec<f64> = line.split_whitespace().map(|x| x.parse().unwrap()).collect();
            let (a, b) = ([v[0], v[1], v[2]], [v[3], v[4], v[5]]);
            let d = ciede2000(a, b);
            assert!((d - v[6]).abs() < 5e-5, "pair {}: {d} vs {}", n + 1, v[6]);
            assert!((ciede2000(b, a) - d).abs() < 1e-9, "pair {} is not symmetric", n + 1);
            n += 1;
        }
        assert_eq!(n, 34);
        assert_eq!(ciede2000([50.0, 10.0, 20.0], [50.0, 10.0, 20.0]), 0.0);
    }

    #[test]
    fn cie76_and_ita() {
        assert_eq!(delta_e76([50.0, 0.0, 0.0], [53.0, 4.0, 0.0]), 5.0);
        assert!((ita([60.0, 12.0, 10.0]).unwrap() - 45.0).abs() < 1e-12);
        assert_eq!(ita([40.0, 12.0, 10.0]).map(ita_category), Some("dark"));
        assert_eq!(ita([50.0, 12.0, 15.0]), Some(0.0));
        assert_eq!(ita([60.0, 12.0, -1.0]), None);
        assert_eq!(ita_category(56.0), "very light");
        assert_eq!(ita_category(30.0), "intermediate");
        assert_eq!(ita_category(-10.0), "brown");
    }
}
