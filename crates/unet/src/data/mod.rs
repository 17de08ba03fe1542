//! Samples for training and validation, prepared the way fastai's `Resize((s, s))` (method
//! Crop) and `Normalize.from_stats(*imagenet_stats)` do: train takes a random square crop of
//! side min(w, h), valid the centre one; the photo is resized with an antialiased bilinear
//! filter, the mask with nearest neighbour; the photo is normalised with ImageNet's statistics.
//!
//! Masks are validated as they are read: a value that is neither a class index nor 255
//! (ignore) is an error naming the file and the value (fastai fails later with an opaque
//! device assert).

use std::path::Path;

pub mod loader;

use anyhow::Result;
use facepipe_core::rng::SplitMix64;
use image::imageops::{self, FilterType};
use image::{GrayImage, RgbImage};

/// ImageNet channel means and standard deviations (torchvision, fastai's `imagenet_stats`).
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// A square crop: top-left corner and side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Crop {
    pub x: u32,
    pub y: u32,
    pub side: u32,
}

/// The crop of a `w`×`h` image: random (uniform position) with `rng`, centred without.
pub fn square_crop(w: u32, h: u32, rng: Option<&mut SplitMix64>) -> Crop {
    let side = w.min(h);
    let (sx, sy) = (w - side, h - side);
    match rng {
        // fastai's `Resize`: `int(random() * (w - side))`, so never the last offset
        Some(r) => Crop {
            x: (r.f64() * f64::from(sx)) as u32,
            y: (r.f64() * f64::from(sy)) as u32,
            side,
        },
        None => Crop {
            x: sx / 2,
            y: sy / 2,
            side,
        },
    }
}

/// Reads a photo as a viewer shows it (EXIF orientation applied), in 8-bit sRGB (an embedded
/// profile applied): [`facepipe_core::photo`].
pub fn read_image(path: &Path) -> Result<RgbImage> {
    facepipe_core::photo::read_rgb8(path)
}

/// Crops and resizes a photo/mask pair to `size`×`size`.
pub fn prepare(image: &RgbImage, mask: Option<&GrayImage>, crop: Crop, size: u32) -> (RgbImage, Option<GrayImage>) {
    let Crop { x, y, side } = crop;
    let img = imageops::resize(
        &imageops::crop_imm(image, x, y, side, side).to_image(),
        size,
        size,
        FilterType::Triangle,
    );
    let m = mask.map(|m| {
        imageops::resize(
            &imageops::crop_imm(m, x, y, side, side).to_image(),
            size,
            size,
            FilterType::Nearest,
        )
    });
    (img, m)
}

/// Channel-first (C, H, W) floats normalised with ImageNet's statistics.
pub fn normalize(img: &RgbImage) -> Vec<f32> {
    normalize_with(img, IMAGENET_MEAN, IMAGENET_STD)
}

/// Channel-first (C, H, W) floats, `(v/255 − mean)/std` per channel.
pub fn normalize_with(img: &RgbImage, mean: [f32; 3], std: [f32; 3]) -> Vec<f32> {
    let (w, h) = img.dimensions();
    let n = (w * h) as usize;
    let mut out = vec![0f32; 3 * n];
    for (i, p) in img.pixels().enumerate() {
        for c in 0..3 {
            out[c * n + i] = (f32::from(p.0[c]) / 255.0 - mean[c]) / std[c];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crops() {
        assert_eq!(square_crop(300, 200, None), Crop { x: 50, y: 0, side: 200 });
        assert_eq!(square_crop(200, 301, None), Crop { x: 0, y: 50, side: 200 });
        let mut r = SplitMix64::new(1);
        let xs: Vec<u32> = (0..200).map(|_| square_crop(300, 200, Some(&mut r)).x).collect();
        // fastai's int(random() * 100): 0..=99, never 100
        assert!(xs.iter().all(|&x| x < 100));
        assert!(xs.contains(&0) || xs.iter().min() < Some(&5));
        assert!(xs.iter().max() > Some(&95));
        assert_eq!(square_crop(64, 64, Some(&mut r)).x, 0);
        let mut a = SplitMix64::new(9);
        let mut b = SplitMix64::new(9);
        assert_eq!(square_crop(640, 480, Some(&mut a)), square_crop(640, 480, Some(&mut b)));
    }

    #[test]
    fn masks_resize_by_nearest_and_photos_smoothly() {
        let img = RgbImage::from_fn(8, 4, |x, _| image::Rgb(if x < 4 { [0, 0, 0] } else { [255, 255, 255] }));
        let mask = GrayImage::from_fn(8, 4, |x, _| image::Luma([if x < 4 { 1 } else { 2 }]));
        let (i, m) = prepare(&img, Some(&mask), square_crop(8, 4, None), 2);
        let m = m.unwrap();
        assert_eq!(m.as_raw(), &[1, 2, 1, 2]);
        // the photo's left half is the black/white border averaged: grey, not a copied pixel
        let v = i.get_pixel(0, 0).0[0];
        assert!(v > 0 && v < 255, "{v}");
    }

    #[test]
    fn normalisation_uses_imagenet_stats() {
        let img = RgbImage::from_pixel(1, 1, image::Rgb([255, 0, 124]));
        let v = normalize(&img);
        assert!((v[0] - (1.0 - 0.485) / 0.229).abs() < 1e-6);
        assert!((v[1] - (0.0 - 0.456) / 0.224).abs() < 1e-6);
        assert!((v[2] - (124.0 / 255.0 - 0.406) / 0.225).abs() < 1e-6);
    }
}
