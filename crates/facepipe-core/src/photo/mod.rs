//! The one photo reader every stage uses: a photo as a viewer shows it, in sRGB.
//!
//! * **Orientation.** The EXIF orientation (1–8; phones store portrait photos sideways with 6
//!   or 8) is applied, so every stage, mask and picture sees the photo the right way up, and
//!   its size is the shown one.
//! * **Colour.** Pixels are converted through an embedded ICC profile to sRGB
//!   ([`profile`]); a photo with no profile is taken as sRGB, and [`PhotoInfo::profile`] says
//!   so. 16-bit photos keep 16 bits; converted ones are kept as floats.
//! * **Broken files.** An empty file, a file that is no image, and a JPEG cut off before its
//!   end-of-image marker ([`jpeg`]) are errors naming the file; the JPEG decoder alone would
//!   fill the missing part with grey.
//! * **No colour.** A grayscale photo (stored as grey, or as RGB with every pixel neutral) and
//!   a CMYK JPEG are read as RGB for segmentation, and [`PhotoInfo::colour`] says what they are,
//!   so that colour is not measured from them.
//!
//! Label images are read with [`decode_oriented`]: oriented like their photo, their colours
//! untouched (they are class codes, not colours).

pub mod encode;
pub mod jpeg;
pub mod profile;

use std::io::Cursor;
use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Rgb32FImage, RgbImage, metadata::Orientation};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::images::{check_size, explain, limits};
use profile::Icc;

/// The longest side a photo may have, in short sides: no face photo is thinner, and
/// `unet-eval` would cut a thinner picture into a tile per few pixels (a 4000×1 image: 4000
/// tiles, each scaled up to the model's size). `photos` and `unet-eval` refuse such photos.
pub const MAX_ASPECT: u32 = 10;

/// Whether a `w`×`h` photo is within [`MAX_ASPECT`].
pub fn aspect_ok(w: u32, h: u32) -> bool {
    u64::from(w.max(h)) <= u64::from(MAX_ASPECT) * u64::from(w.min(h))
}

/// What a photo's pixels hold, colour-wise.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Colour {
    Rgb,
    /// Stored as grey, or as RGB with every pixel neutral: no colour to measure.
    Grayscale,
    /// A CMYK JPEG: shown through the decoder's plain conversion, its colours depend on a print
    /// profile facepipe does not apply.
    Cmyk,
}

/// How a photo was read: what the file holds and what was done to show it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PhotoInfo {
    /// `jpeg`, `png`, `tiff`, `bmp`.
    pub format: String,
    /// Size as shown (after orientation).
    pub width: u32,
    pub height: u32,
    /// The EXIF orientation applied (1 = as stored, also when the file has none).
    pub orientation: u8,
    /// The embedded profile, or what was assumed: `sRGB (no profile)`, `Display P3 → sRGB`, ...
    pub profile: String,
    pub colour: Colour,
    /// Bits per channel as stored (8, 16 or 32).
    pub bit_depth: u8,
}

/// A photo's pixels, sRGB-encoded: 8 or 16 bits as stored, or floats after a conversion
/// (where a colour outside sRGB's gamut is clipped to it).
#[derive(Clone, Debug)]
pub enum Pixels {
    Rgb8(RgbImage),
    Rgb16(image::ImageBuffer<image::Rgb<u16>, Vec<u16>>),
    RgbF(Rgb32FImage),
}

impl Pixels {
    pub fn dimensions(&self) -> (u32, u32) {
        match self {
            Pixels::Rgb8(i) => i.dimensions(),
            Pixels::Rgb16(i) => i.dimensions(),
            Pixels::RgbF(i) => i.dimensions(),
        }
    }

    /// The pixel at (x, y), sRGB-encoded in 0..=1.
    pub fn rgb(&self, x: u32, y: u32) -> [f64; 3] {
        match self {
            Pixels::Rgb8(i) => i.get_pixel(x, y).0.map(|v| f64::from(v) / 255.0),
            Pixels::Rgb16(i) => i.get_pixel(x, y).0.map(|v| f64::from(v) / 65535.0),
            Pixels::RgbF(i) => i.get_pixel(x, y).0.map(f64::from),
        }
    }

    /// 8-bit sRGB (rounded): what the network and the pictures take.
    pub fn to_rgb8(&self) -> RgbImage {
        match self {
            Pixels::Rgb8(i) => i.clone(),
            Pixels::Rgb16(i) => DynamicImage::ImageRgb16(i.clone()).to_rgb8(),
            Pixels::RgbF(i) => DynamicImage::ImageRgb32F(i.clone()).to_rgb8(),
        }
    }

    fn into_rgb8(self) -> RgbImage {
        match self {
            Pixels::Rgb8(i) => i,
            other => other.to_rgb8(),
        }
    }
}

/// A photo as shown, with how it was read.
#[derive(Clone, Debug)]
pub struct Photo {
    pub pixels: Pixels,
    pub info: PhotoInfo,
}

/// A file's bytes and format, refused with a reason when they are no whole image.
struct Raw {
    bytes: Vec<u8>,
    format: ImageFormat,
    /// Components of a JPEG's frame.
    components: Option<u8>,
}

fn raw(path: &Path, what: &str) -> Result<Raw> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {what} {}", path.display()))?;
    raw_of(bytes, path, what)
}

/// [`raw`] on a file's bytes already read (`path` names it).
fn raw_of(bytes: Vec<u8>, path: &Path, what: &str) -> Result<Raw> {
    let shown = path.display();
    if bytes.is_empty() {
        bail!("{what} {shown} is empty (0 bytes)");
    }
    let format = image::guess_format(&bytes).map_err(|_| {
        anyhow!("{what} {shown} is not an image facepipe reads (JPEG, PNG, TIFF or BMP): its first bytes are no known image header")
    })?;
    let components = if format == ImageFormat::Jpeg {
        let facts = jpeg::scan(&bytes).map_err(|e| anyhow!("{what} {shown} is a broken JPEG: {e}"))?;
        Some(facts.components)
    } else {
        None
    };
    Ok(Raw {
        bytes,
        format,
        components,
    })
}

/// Decodes within the limits; returns the stored pixels, the orientation and the ICC profile.
fn decode(raw: &Raw, path: &Path, what: &str) -> Result<(DynamicImage, Orientation, Option<Vec<u8>>)> {
    let shown = path.display();
    let mut r = ImageReader::with_format(Cursor::new(&raw.bytes[..]), raw.format);
    r.limits(limits());
    let mut dec = r
        .into_decoder()
        .map_err(explain)
        .with_context(|| format!("cannot decode {what} {shown}"))?;
    check_size(&dec).with_context(|| format!("{what} {shown}"))?;
    // a broken EXIF block is no reason to refuse the pixels: shown as stored
    let orientation = dec.orientation().unwrap_or(Orientation::NoTransforms);
    let icc = dec.icc_profile().ok().flatten();
    let img = DynamicImage::from_decoder(dec)
        .map_err(explain)
        .with_context(|| format!("cannot decode {what} {shown}"))?;
    Ok((img, orientation, icc))
}

fn format_name(f: ImageFormat) -> String {
    f.extensions_str().first().map_or("image", |e| e).to_string()
}

/// Reads a photo as shown, in sRGB (see the module's notes).
pub fn read(path: &Path) -> Result<Photo> {
    from_raw(raw(path, "image")?, path)
}

/// [`read`] on a photo file's bytes, already read (`path` names it in errors).
pub fn read_bytes(bytes: Vec<u8>, path: &Path) -> Result<Photo> {
    from_raw(raw_of(bytes, path, "image")?, path)
}

fn from_raw(raw: Raw, path: &Path) -> Result<Photo> {
    let (img, orientation, icc) = decode(&raw, path, "image")?;
    let bit_depth = img.color().bytes_per_pixel() / img.color().channel_count() * 8;
    let stored_grey = !img.color().has_color();
    let managed = colour_managed(img, icc.as_deref()).with_context(|| format!("image {}", path.display()))?;
    let mut pixels = managed.pixels;
    orient(&mut pixels, orientation);
    let colour = if raw.components == Some(4) {
        Colour::Cmyk
    } else if stored_grey || managed.neutral {
        Colour::Grayscale
    } else {
        Colour::Rgb
    };
    let (width, height) = pixels.dimensions();
    Ok(Photo {
        pixels,
        info: PhotoInfo {
            format: format_name(raw.format),
            width,
            height,
            orientation: orientation.to_exif(),
            profile: managed.profile,
            colour,
            bit_depth,
        },
    })
}

/// Reads a photo as shown, in 8-bit sRGB: what the network and the pictures take.
pub fn read_rgb8(path: &Path) -> Result<RgbImage> {
    Ok(read(path)?.pixels.into_rgb8())
}

/// An image's size as shown (after its EXIF orientation), from its header.
pub fn shown_size(path: &Path, what: &str) -> Result<(u32, u32)> {
    let mut dec = crate::images::decoder(path, what)?;
    let (w, h) = dec.dimensions();
    let o = dec.orientation().unwrap_or(Orientation::NoTransforms);
    Ok(if swaps_sides(o) { (h, w) } else { (w, h) })
}

/// Decodes an image with its EXIF orientation applied and its values untouched (no colour
/// management): for label images, whose colours are class codes.
pub fn decode_oriented(path: &Path, what: &str) -> Result<DynamicImage> {
    let raw = raw(path, what)?;
    let (mut img, o, _) = decode(&raw, path, what)?;
    img.apply_orientation(o);
    Ok(img)
}

/// Whether an orientation turns the picture a quarter (width and height swap).
pub fn swaps_sides(o: Orientation) -> bool {
    matches!(
        o,
        Orientation::Rotate90 | Orientation::Rotate270 | Orientation::Rotate90FlipH | Orientation::Rotate270FlipH
    )
}

fn orient(p: &mut Pixels, o: Orientation) {
    if o == Orientation::NoTransforms {
        return;
    }
    let mut d = match std::mem::replace(p, Pixels::Rgb8(RgbImage::new(0, 0))) {
        Pixels::Rgb8(i) => DynamicImage::ImageRgb8(i),
        Pixels::Rgb16(i) => DynamicImage::ImageRgb16(i),
        Pixels::RgbF(i) => DynamicImage::ImageRgb32F(i),
    };
    d.apply_orientation(o);
    *p = match d {
        DynamicImage::ImageRgb8(i) => Pixels::Rgb8(i),
        DynamicImage::ImageRgb16(i) => Pixels::Rgb16(i),
        other => Pixels::RgbF(other.into_rgb32f()),
    };
}

/// Every pixel neutral (R = G = B): a grayscale photo saved as RGB.
fn neutral(p: &Pixels) -> bool {
    match p {
        Pixels::Rgb8(i) => i.pixels().all(|q| q[0] == q[1] && q[1] == q[2]),
        Pixels::Rgb16(i) => i.pixels().all(|q| q[0] == q[1] && q[1] == q[2]),
        Pixels::RgbF(i) => i.pixels().all(|q| q[0] == q[1] && q[1] == q[2]),
    }
}

/// A photo's pixels in sRGB, what was done to them, and whether they were neutral (R = G = B
/// everywhere) as stored: judged before a conversion, whose rounding would tint a grey photo.
struct Managed {
    pixels: Pixels,
    profile: String,
    neutral: bool,
}

/// The stored pixels as sRGB: RGB through a non-sRGB RGB profile is converted; grey is
/// replicated; alpha is dropped.
fn colour_managed(img: DynamicImage, icc: Option<&[u8]>) -> Result<Managed> {
    use DynamicImage as D;
    let sixteen = matches!(
        img,
        D::ImageLuma16(_) | D::ImageLumaA16(_) | D::ImageRgb16(_) | D::ImageRgba16(_)
    );
    let float = matches!(img, D::ImageRgb32F(_) | D::ImageRgba32F(_));
    let stored = if float {
        Pixels::RgbF(img.into_rgb32f())
    } else if sixteen {
        Pixels::Rgb16(img.into_rgb16())
    } else {
        Pixels::Rgb8(img.into_rgb8())
    };
    let neutral = neutral(&stored);
    let (pixels, profile) = match icc.map(profile::classify).transpose()? {
        None => (stored, "sRGB (no profile)".to_string()),
        Some(Icc::Srgb(name)) => (stored, name),
        Some(Icc::Other(name, space)) => (stored, format!("{name} ({} profile, not applied)", space_name(space))),
        Some(Icc::Rgb(t, name)) => (Pixels::RgbF(convert(&stored, t.as_ref())?), format!("{name} → sRGB")),
    };
    Ok(Managed {
        pixels,
        profile,
        neutral,
    })
}

/// A profile's colour space in words.
fn space_name(s: moxcms::DataColorSpace) -> &'static str {
    use moxcms::DataColorSpace as S;
    match s {
        S::Gray => "grey",
        S::Cmyk => "CMYK",
        S::Lab => "L*a*b*",
        S::Xyz => "XYZ",
        S::Rgb => "RGB",
        _ => "another colour space's",
    }
}

/// Every pixel through `t`, a row at a time (in parallel over rows).
fn convert(p: &Pixels, t: &moxcms::TransformF64Executor) -> Result<Rgb32FImage> {
    let (w, h) = p.dimensions();
    let mut out = Rgb32FImage::new(w, h);
    let row_len = w as usize * 3;
    if row_len == 0 {
        return Ok(out);
    }
    out.par_chunks_mut(row_len).enumerate().try_for_each(|(y, row)| {
        let src: Vec<f64> = (0..w).flat_map(|x| p.rgb(x, y as u32)).collect();
        let mut dst = vec![0f64; src.len()];
        t.transform(&src, &mut dst)
            .map_err(|e| anyhow!("its ICC profile cannot be applied ({e})"))?;
        for (o, v) in row.iter_mut().zip(dst) {
            *o = v.clamp(0.0, 1.0) as f32;
        }
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests;
