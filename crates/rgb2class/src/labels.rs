//! Reading RGB label images: any format the image crate decodes, and 8-bit RGB PNGs
//! streamed row by row without holding the decoded image.

use anyhow::{Context, Result, bail};
use std::fs;
use std::io::BufReader;
use std::path::Path;

/// Decodes a label image to packed 8-bit RGB, accepting what can be read without guessing.
///
/// * RGB8: as is. Palette PNGs arrive expanded to RGB(A).
/// * RGBA: accepted when every pixel is opaque (alpha ignored), refused otherwise.
/// * 16-bit RGB(A): scaled to 8 bits.
/// * Grayscale: accepted only when the palette is all grays; otherwise it is most likely
///   already a class-index mask, and is refused with that hint.
/// * Floating point: refused.
pub fn decode_label(path: &Path, all_gray_palette: bool) -> Result<(u32, u32, Vec<u8>)> {
    // turned as its EXIF orientation says, like its photo; its colours are codes, never
    // colour-managed
    let img = facepipe_core::photo::decode_oriented(path, "label")?;
    decode_label_image(img, path, all_gray_palette)
}

/// [`decode_label`] on an image already decoded (`path` names it in errors).
pub fn decode_label_image(
    img: image::DynamicImage,
    path: &Path,
    all_gray_palette: bool,
) -> Result<(u32, u32, Vec<u8>)> {
    use image::DynamicImage as D;
    let (w, h) = (img.width(), img.height());
    let opaque8 = |a: &image::RgbaImage| a.pixels().all(|p| p.0[3] == 255);
    let rgb = match img {
        D::ImageRgb8(b) => b.into_raw(),
        D::ImageRgba8(b) => {
            if !opaque8(&b) {
                bail!(
                    "label {} has transparent pixels; a label's classes must be given by colour alone",
                    path.display()
                );
            }
            D::ImageRgba8(b).into_rgb8().into_raw()
        }
        D::ImageRgb16(_) => img.into_rgb8().into_raw(),
        D::ImageRgba16(ref b) => {
            if !b.pixels().all(|p| p.0[3] == u16::MAX) {
                bail!(
                    "label {} has transparent pixels; a label's classes must be given by colour alone",
                    path.display()
                );
            }
            img.into_rgb8().into_raw()
        }
        D::ImageLuma8(_) | D::ImageLuma16(_) | D::ImageLumaA8(_) | D::ImageLumaA16(_) => {
            if !all_gray_palette {
                bail!(
                    "label {} is a grayscale image but the palette has colours: it may already be a \
                     class-index mask (put it in the item's `mask` field instead of `label_rgb`)",
                    path.display()
                );
            }
            img.into_rgb8().into_raw()
        }
        other => bail!(
            "label {} has an unsupported pixel format ({:?})",
            path.display(),
            other.color()
        ),
    };
    Ok((w, h, rgb))
}

/// Decodes a non-interlaced 8-bit RGB PNG (the usual label, with no EXIF orientation) row by row, handing each row to
/// `on_row(y, height, rgb)`: no whole-image RGB buffer is allocated, and each row is mapped while it is
/// still in cache. Returns `None`, having read only the header, for any other kind of image
/// (the caller then uses [`decode_label`]).
pub fn stream_rgb8_png(path: &Path, on_row: impl FnMut(u32, u32, &[u8]) -> Result<()>) -> Result<Option<(u32, u32)>> {
    let file = fs::File::open(path).with_context(|| format!("cannot open label {}", path.display()))?;
    stream_rgb8_png_from(BufReader::with_capacity(64 * 1024, file), path, on_row)
}

/// [`stream_rgb8_png`] from any reader (`path` names it in errors; the fuzz targets use bytes).
pub fn stream_rgb8_png_from<R: std::io::BufRead + std::io::Seek>(
    mut reader: R,
    path: &Path,
    mut on_row: impl FnMut(u32, u32, &[u8]) -> Result<()>,
) -> Result<Option<(u32, u32)>> {
    let mut sig = [0u8; 8];
    if reader.read_exact(&mut sig).is_err() || sig != *b"\x89PNG\r\n\x1a\n" {
        return Ok(None);
    }
    reader.rewind()?;
    let mut dec = png::Decoder::new(reader);
    dec.set_transformations(png::Transformations::IDENTITY);
    let mut rd = dec
        .read_info()
        .with_context(|| format!("cannot decode label {}", path.display()))?;
    let info = rd.info();
    let turned = (info.exif_metadata.as_deref())
        .and_then(image::metadata::Orientation::from_exif_chunk)
        .is_some_and(|o| o != image::metadata::Orientation::NoTransforms);
    if info.color_type != png::ColorType::Rgb || info.bit_depth != png::BitDepth::Eight || info.interlaced || turned {
        return Ok(None);
    }
    let (w, h) = (info.width, info.height);
    if w > facepipe_core::images::MAX_SIDE
        || h > facepipe_core::images::MAX_SIDE
        || u64::from(w) * u64::from(h) * 3 > facepipe_core::images::MAX_DECODED_BYTES
    {
        bail!(
            "label {}: {w}×{h} pixels is over the limit for one image ({} pixels a side, {} MiB decoded)",
            path.display(),
            facepipe_core::images::MAX_SIDE,
            facepipe_core::images::MAX_DECODED_BYTES >> 20
        );
    }
    let mut y = 0;
    while let Some(row) = rd
        .next_row()
        .with_context(|| format!("cannot decode label {}", path.display()))?
    {
        on_row(y, h, row.data())?;
        y += 1;
    }
    if y != h {
        bail!("cannot decode label {}: {y} of {h} rows", path.display());
    }
    Ok(Some((w, h)))
}
