//! Embedded ICC profiles: what a profile is, and RGB pixels converted through it to sRGB
//! (moxcms, a pure-Rust colour-management engine; the image crate already depends on it).
//!
//! A profile is judged by what it does, not by its name: it counts as sRGB when it maps a grid
//! of colours to sRGB within 1/1000 of the sRGB value (a v2 profile with a 1024-entry curve, a
//! v4 one with a parametric curve and a UTF-16 description all are), and such photos are left
//! untouched. Any other RGB profile (Display P3, Adobe RGB, ProPhoto, a camera's own) converts
//! the pixels, relative colorimetric, in double precision, to sRGB-encoded values.

use anyhow::{Context, Result, anyhow};
use moxcms::{ColorProfile, DataColorSpace, Layout, ProfileText, RenderingIntent, TransformOptions};

/// What an embedded profile means for the photo's pixels.
pub enum Icc {
    /// sRGB or equivalent: nothing to do.
    Srgb(String),
    /// An RGB profile of another space: convert, with this transform.
    Rgb(std::sync::Arc<moxcms::TransformF64Executor>, String),
    /// A grey, CMYK or other profile (named, with its colour space): not applied to RGB values.
    Other(String, DataColorSpace),
}

/// Parses `icc`; a profile that cannot be read is an error (measuring its photo as if it had
/// none would be silently wrong).
pub fn classify(icc: &[u8]) -> Result<Icc> {
    let p = ColorProfile::new_from_slice(icc).map_err(|e| anyhow!("its ICC profile cannot be read ({e})"))?;
    let name = describe(&p);
    if p.color_space != DataColorSpace::Rgb {
        return Ok(Icc::Other(name, p.color_space));
    }
    let t = transform(&p, &ColorProfile::new_srgb())
        .with_context(|| format!("its ICC profile \"{name}\" cannot be applied"))?;
    // a 6×6×6 grid through the profile, against the values themselves
    let grid: Vec<f64> = (0..216)
        .flat_map(|i| [i / 36, (i / 6) % 6, i % 6].map(|v| f64::from(v) / 5.0))
        .collect();
    let mut out = vec![0f64; grid.len()];
    t.transform(&grid, &mut out)
        .map_err(|e| anyhow!("its ICC profile \"{name}\" cannot be applied ({e})"))?;
    let off = grid.iter().zip(&out).map(|(a, b)| (a - b).abs()).fold(0f64, f64::max);
    Ok(if off <= 1e-3 {
        Icc::Srgb(name)
    } else {
        Icc::Rgb(t, name)
    })
}

/// The transform from `from` to `to` (relative colorimetric, RGB triples of doubles): how a
/// photo's pixels go to sRGB, and how `encode` writes them in another space.
pub fn transform(from: &ColorProfile, to: &ColorProfile) -> Result<std::sync::Arc<moxcms::TransformF64Executor>> {
    let opts = TransformOptions {
        rendering_intent: RenderingIntent::RelativeColorimetric,
        ..TransformOptions::default()
    };
    from.create_transform_f64(Layout::Rgb, to, Layout::Rgb, opts)
        .map_err(|e| anyhow!("{e}"))
}

/// A profile's description (English where it has several), or `unnamed profile`.
pub fn describe(p: &ColorProfile) -> String {
    let text = match &p.description {
        Some(ProfileText::PlainString(s)) => s.clone(),
        Some(ProfileText::Description(d)) => d.ascii_string.clone(),
        Some(ProfileText::Localizable(v)) => v
            .iter()
            .find(|l| l.language == "en")
            .or(v.first())
            .map(|l| l.value.clone())
            .unwrap_or_default(),
        None => String::new(),
    };
    let text = text.trim_matches(|c: char| c == '\0' || c.is_whitespace()).to_string();
    if text.is_empty() {
        "unnamed profile".into()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn srgb_is_recognised_by_what_it_does_whatever_its_name() {
        let mut p = ColorProfile::new_srgb();
        // a v4 UTF-16 description that does not say "sRGB"
        p.description = Some(ProfileText::Localizable(vec![moxcms::LocalizableString::new(
            "de".into(),
            "DE".into(),
            "Standardfarbraum".into(),
        )]));
        let icc = p.encode().unwrap();
        assert!(matches!(classify(&icc).unwrap(), Icc::Srgb(n) if n == "Standardfarbraum"));
        for other in [ColorProfile::new_display_p3(), ColorProfile::new_adobe_rgb()] {
            assert!(matches!(classify(&other.encode().unwrap()).unwrap(), Icc::Rgb(..)));
        }
        let e = format!("{:#}", classify(b"not a profile at all, just bytes").err().unwrap());
        assert!(e.contains("ICC profile cannot be read"), "{e}");
    }
}
