//! Photos written as phones and cameras write them: stored sideways with an EXIF orientation,
//! in Display P3 or Adobe RGB with the profile embedded. `demo-faces --phone` uses it to make
//! a folder of photos to measure, and the tests to check that [`super::read`] undoes each.

use anyhow::{Result, anyhow};
use image::{DynamicImage, ImageEncoder, metadata::Orientation};
use moxcms::{ColorProfile, DescriptionString, ProfileText};

/// A colour space a photo can be stored in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Space {
    Srgb,
    DisplayP3,
    AdobeRgb,
}

/// The ICC version a profile is written as: v4 (UTF-16 description) or v2 (ASCII `desc`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IccVersion {
    V2,
    V4,
}

impl Space {
    fn profile(self) -> ColorProfile {
        match self {
            Space::Srgb => ColorProfile::new_srgb(),
            Space::DisplayP3 => ColorProfile::new_display_p3(),
            Space::AdobeRgb => ColorProfile::new_adobe_rgb(),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Space::Srgb => "sRGB IEC61966-2.1",
            Space::DisplayP3 => "Display P3",
            Space::AdobeRgb => "Adobe RGB (1998)",
        }
    }

    /// The space's ICC profile, as `version`.
    pub fn icc(self, version: IccVersion) -> Result<Vec<u8>> {
        let mut p = self.profile();
        if version == IccVersion::V2 {
            p.description = Some(ProfileText::Description(DescriptionString {
                ascii_string: self.name().into(),
                unicode_language_code: 0,
                unicode_string: String::new(),
                script_code_code: 0,
                mac_string: String::new(),
            }));
            p.cicp = None;
        } else {
            p.description = Some(ProfileText::Localizable(vec![moxcms::LocalizableString::new(
                "en".into(),
                "US".into(),
                self.name().into(),
            )]));
        }
        let mut icc = p
            .encode()
            .map_err(|e| anyhow!("encoding the {} profile: {e}", self.name()))?;
        if version == IccVersion::V2 {
            icc[8..12].copy_from_slice(&0x0210_0000u32.to_be_bytes());
        }
        Ok(icc)
    }

    /// sRGB-encoded values (0..=1, RGB triples) converted to this space's encoded values.
    pub fn from_srgb(self, rgb: &[f64]) -> Result<Vec<f64>> {
        if self == Space::Srgb {
            return Ok(rgb.to_vec());
        }
        let t = super::profile::transform(&ColorProfile::new_srgb(), &self.profile())?;
        let mut out = vec![0f64; rgb.len()];
        t.transform(rgb, &mut out).map_err(|e| anyhow!("{e}"))?;
        Ok(out)
    }
}

/// An EXIF block (a little-endian TIFF structure, as the JPEG and PNG encoders take it)
/// holding only the orientation tag.
pub fn exif_orientation(o: u8) -> Vec<u8> {
    let mut e = b"II*\0".to_vec();
    e.extend(8u32.to_le_bytes()); // first IFD right after the header
    e.extend(1u16.to_le_bytes()); // one entry
    e.extend(0x0112u16.to_le_bytes()); // Orientation
    e.extend(3u16.to_le_bytes()); // SHORT
    e.extend(1u32.to_le_bytes()); // one value
    e.extend(u32::from(o).to_le_bytes()); // the value, left-aligned in the 4 bytes
    e.extend(0u32.to_le_bytes()); // no next IFD
    e
}

/// The pixels to store so that a viewer applying EXIF orientation `o` shows `shown`.
pub fn stored_for(shown: &DynamicImage, o: u8) -> DynamicImage {
    // 6 and 8 undo each other; every other orientation undoes itself
    let inverse = match o {
        6 => 8,
        8 => 6,
        other => other,
    };
    let mut img = shown.clone();
    img.apply_orientation(Orientation::from_exif(inverse).unwrap_or(Orientation::NoTransforms));
    img
}

/// `shown` (8-bit sRGB) converted to `space` and rounded to 8 bits.
pub fn converted8(shown: &image::RgbImage, space: Space) -> Result<image::RgbImage> {
    let src: Vec<f64> = shown.as_raw().iter().map(|&v| f64::from(v) / 255.0).collect();
    let out = space.from_srgb(&src)?;
    let raw = out
        .iter()
        .map(|v| (v * 255.0).round().clamp(0.0, 255.0) as u8)
        .collect();
    Ok(image::RgbImage::from_raw(shown.width(), shown.height(), raw).expect("same size"))
}

/// How a phone photo is written.
#[derive(Clone, Copy, Debug)]
pub struct Phone {
    pub orientation: u8,
    pub space: Space,
    /// Embed the space's profile (`None` writes none: a photo taken as sRGB).
    pub icc: Option<IccVersion>,
    /// JPEG quality (1–100).
    pub quality: u8,
}

/// How `demo-faces --phone` writes photo `i`: the eight EXIF orientations in turn (6, the
/// portrait phone photo's, first), and the colour spaces in turn: sRGB without a
/// profile, Display P3 (v4 profile), sRGB with a v4 profile, Adobe RGB (v2 profile). JPEG
/// quality 92.
pub fn phone_of(i: u32) -> Phone {
    let (space, icc) = match i % 4 {
        0 => (Space::Srgb, None),
        1 => (Space::DisplayP3, Some(IccVersion::V4)),
        2 => (Space::Srgb, Some(IccVersion::V4)),
        _ => (Space::AdobeRgb, Some(IccVersion::V2)),
    };
    Phone {
        orientation: [6, 1, 8, 3, 4, 2, 5, 7][i as usize % 8],
        space,
        icc,
        quality: 92,
    }
}

/// `shown` (8-bit sRGB, the right way up) as a phone writes it: converted to `p.space`, stored
/// so that EXIF orientation `p.orientation` shows it upright, as a JPEG.
pub fn phone_jpeg(shown: &image::RgbImage, p: Phone) -> Result<Vec<u8>> {
    let stored = stored_for(&DynamicImage::ImageRgb8(converted8(shown, p.space)?), p.orientation).into_rgb8();
    let mut out = Vec::new();
    let mut enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, p.quality);
    set_meta(&mut enc, p)?;
    enc.write_image(
        stored.as_raw(),
        stored.width(),
        stored.height(),
        image::ExtendedColorType::Rgb8,
    )?;
    Ok(out)
}

/// As [`phone_jpeg`], as a PNG (lossless; 8 or 16 bits as `shown` has them, converted in
/// double precision).
pub fn phone_png(shown: &DynamicImage, p: Phone) -> Result<Vec<u8>> {
    let img = match shown {
        DynamicImage::ImageRgb16(i) => {
            let src: Vec<f64> = i.as_raw().iter().map(|&v| f64::from(v) / 65535.0).collect();
            let raw = (p.space.from_srgb(&src)?.iter())
                .map(|v| (v * 65535.0).round().clamp(0.0, 65535.0) as u16)
                .collect();
            DynamicImage::ImageRgb16(image::ImageBuffer::from_raw(i.width(), i.height(), raw).expect("same size"))
        }
        other => DynamicImage::ImageRgb8(converted8(&other.to_rgb8(), p.space)?),
    };
    let stored = stored_for(&img, p.orientation);
    let mut out = Vec::new();
    let mut enc = image::codecs::png::PngEncoder::new(&mut out);
    set_meta(&mut enc, p)?;
    stored.write_with_encoder(enc)?;
    Ok(out)
}

fn set_meta(enc: &mut impl ImageEncoder, p: Phone) -> Result<()> {
    if p.orientation != 1 {
        enc.set_exif_metadata(exif_orientation(p.orientation))
            .map_err(|e| anyhow!("{e}"))?;
    }
    if let Some(v) = p.icc {
        enc.set_icc_profile(p.space.icc(v)?).map_err(|e| anyhow!("{e}"))?;
    }
    Ok(())
}
