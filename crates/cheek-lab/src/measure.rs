//! A cheek patch's colour: the mean of its skin pixels, in CIE L\*a\*b\*.

use facepipe_core::colour::{self, WhitePoint};
use facepipe_core::photo::Pixels;

use crate::geometry::Point;

pub use facepipe_formats::cheeks::{Averaging, CheekResult};

/// The axis-aligned square of side `side` centred at `c`, clipped to the image (the demo's
/// truth uses the same rounding).
pub fn patch_box(c: Point, side: u32, w: u32, h: u32) -> [u32; 4] {
    let half = f64::from(side) / 2.0;
    let (sx, sy) = ((c.x - half).round(), (c.y - half).round());
    let clip = |v: f64, max: u32| v.clamp(0.0, f64::from(max)) as u32;
    [
        clip(sx, w),
        clip(sy, h),
        clip(sx + f64::from(side), w),
        clip(sy + f64::from(side), h),
    ]
}

/// Which pixels of a photo count: those of class `skin` in the class mask that belong to face
/// `label` of the label image.
#[derive(Clone, Copy, Debug)]
pub struct SkinOf<'a> {
    /// The photo as shown, in sRGB ([`facepipe_core::photo`]).
    pub photo: &'a Pixels,
    pub mask: &'a [u8],
    pub labels: &'a [u32],
    pub label: u32,
    pub skin: u8,
}

/// How a patch is measured: `--min-skin`, `--white`, `--averaging`.
#[derive(Clone, Copy, Debug)]
pub struct Method {
    /// Smallest share of the patch's area that must be skin.
    pub min_skin: f64,
    pub white: WhitePoint,
    pub averaging: Averaging,
}

/// Measures the patch of side `side` at `c`: only the skin pixels of `of` count, and at least
/// `how.min_skin` of the patch's area must be such pixels.
pub fn measure(of: &SkinOf, c: Point, side: u32, how: &Method) -> CheekResult {
    let (w, h) = of.photo.dimensions();
    if side == 0 {
        return CheekResult::missing("no face size to scale the patch by");
    }
    let b = patch_box(c, side, w, h);
    let mut rgb_sum = [0f64; 3];
    let mut labs: Vec<[f64; 3]> = Vec::new();
    for y in b[1]..b[3] {
        for x in b[0]..b[2] {
            let i = (y * w + x) as usize;
            if of.mask[i] == of.skin && of.labels[i] == of.label {
                let p = of.photo.rgb(x, y);
                for k in 0..3 {
                    rgb_sum[k] += p[k];
                }
                labs.push(colour::srgb_to_lab(p, how.white));
            }
        }
    }
    let n = labs.len();
    let area = f64::from(side) * f64::from(side);
    if (n as f64) < how.min_skin * area {
        let mut r = CheekResult::missing(&format!(
            "too little skin in the patch ({:.0} % < {:.0} %: hair, glasses, beard or the face's edge)",
            100.0 * n as f64 / area,
            100.0 * how.min_skin
        ));
        r.pixels = n as u32;
        r.patch = Some(b);
        return r;
    }
    let (lab, sd) = average(&labs, rgb_sum, how);
    CheekResult {
        status: "ok".into(),
        reason: String::new(),
        lab: Some(lab),
        sd: Some(sd),
        pixels: n as u32,
        patch: Some(b),
        ita: colour::ita(lab),
    }
}

/// The patch's L*a*b* by `how.averaging` from its skin pixels' L*a*b* and summed sRGB (0..=1), and the
/// pixels' standard deviation (population) of each of L*, a*, b*.
fn average(labs: &[[f64; 3]], rgb_sum: [f64; 3], how: &Method) -> ([f64; 3], [f64; 3]) {
    let nf = labs.len() as f64;
    let mean_lab = {
        let mut s = [0f64; 3];
        for l in labs {
            for k in 0..3 {
                s[k] += l[k];
            }
        }
        s.map(|v| v / nf)
    };
    let lab = match how.averaging {
        Averaging::MeanRgb => colour::srgb_to_lab(rgb_sum.map(|v| v / nf), how.white),
        Averaging::MeanLab => mean_lab,
    };
    let mut var = [0f64; 3];
    for l in labs {
        for k in 0..3 {
            var[k] += (l[k] - mean_lab[k]).powi(2);
        }
    }
    (lab, var.map(|v| (v / nf).sqrt()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn averages_only_skin_of_the_face_and_says_when_there_is_too_little() {
        // 10×10: left half skin (class 8) of face 1 in two colours, right half hair
        let photo = Pixels::Rgb8(image::RgbImage::from_fn(10, 10, |x, y| {
            image::Rgb(if x < 5 {
                [200, 150, 120 + (y % 2) as u8 * 20]
            } else {
                [20, 20, 20]
            })
        }));
        let mask: Vec<u8> = (0..100).map(|i| if i % 10 < 5 { 8 } else { 4 }).collect();
        let labels = vec![1u32; 100];
        let face = SkinOf {
            photo: &photo,
            mask: &mask,
            labels: &labels,
            label: 1,
            skin: 8,
        };
        let how = |min_skin: f64, white: WhitePoint, averaging: Averaging| Method {
            min_skin,
            white,
            averaging,
        };
        let centre = Point::new(5.0, 5.0);
        let r = measure(&face, centre, 10, &how(0.5, WhitePoint::D65, Averaging::MeanRgb));
        assert_eq!((r.status.as_ref(), r.pixels, r.patch), ("ok", 50, Some([0, 0, 10, 10])));
        let want = colour::srgb_to_lab([200.0 / 255.0, 150.0 / 255.0, 130.0 / 255.0], WhitePoint::D65);
        let lab = r.lab.unwrap();
        assert!((0..3).all(|k| (lab[k] - want[k]).abs() < 1e-9), "{lab:?} vs {want:?}");
        assert!(r.sd.unwrap()[2] > 1.0, "b* varies between the rows");
        // mean of Lab differs slightly from Lab of the mean (non-linear conversion)
        let m = measure(&face, centre, 10, &how(0.5, WhitePoint::D65, Averaging::MeanLab));
        let d = colour::delta_e76(m.lab.unwrap(), lab);
        assert!(d > 0.0 && d < 0.5, "{d}");
        // D50 (Photoshop) gives another Lab for the same pixels
        let d50 = measure(&face, centre, 10, &how(0.5, WhitePoint::D50, Averaging::MeanRgb));
        assert!(colour::delta_e76(d50.lab.unwrap(), lab) > 0.5);
        // more than half skin needed: 60 % fails
        let r = measure(&face, centre, 10, &how(0.6, WhitePoint::D65, Averaging::MeanRgb));
        assert_eq!((r.status.as_ref(), r.pixels), ("not_measurable", 50));
        assert!(r.reason.contains("50 % < 60 %"), "{}", r.reason);
        // skin of another face does not count
        let other = vec![2u32; 100];
        let elsewhere = SkinOf { labels: &other, ..face };
        let r = measure(&elsewhere, centre, 10, &how(0.5, WhitePoint::D65, Averaging::MeanRgb));
        assert_eq!(r.pixels, 0);
    }

    #[test]
    fn patches_are_clipped_to_the_image() {
        assert_eq!(patch_box(Point::new(50.0, 50.0), 10, 100, 100), [45, 45, 55, 55]);
        assert_eq!(patch_box(Point::new(2.0, 98.0), 10, 100, 100), [0, 93, 7, 100]);
    }
}
