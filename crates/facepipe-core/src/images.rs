//! Image reading with limits: every stage decodes photos, labels and masks through here, so a
//! decompression bomb (a small file that claims a huge picture) is refused from its header,
//! before any memory is taken.

use std::io::{BufRead, Seek};
use std::path::Path;

use anyhow::{Context, Result, bail};
use image::{DynamicImage, ImageDecoder, ImageReader, Limits};

/// The widest or tallest image any stage reads (a 100-megapixel camera is about 12000 wide).
pub const MAX_SIDE: u32 = 20_000;
/// The most memory one decoded image may take (a 20000 × 13000 RGB photo is about 780 MiB).
pub const MAX_DECODED_BYTES: u64 = 1 << 30;

/// The limits every read uses.
pub fn limits() -> Limits {
    let mut l = Limits::default();
    l.max_image_width = Some(MAX_SIDE);
    l.max_image_height = Some(MAX_SIDE);
    l.max_alloc = Some(MAX_DECODED_BYTES);
    l
}

/// An image file opened with its format guessed from its content and the limits set;
/// `what` names it in errors ("label", "mask", "image").
pub fn reader(path: &Path, what: &str) -> Result<ImageReader<std::io::BufReader<std::fs::File>>> {
    let mut r = ImageReader::open(path)
        .and_then(|r| r.with_guessed_format())
        .with_context(|| format!("cannot read {what} {}", path.display()))?;
    r.limits(limits());
    Ok(r)
}

/// A decoder for an image file, within the limits: its header is read (so its size and ICC
/// profile can be asked for), and a picture over the limits is refused before decoding.
pub fn decoder(path: &Path, what: &str) -> Result<impl ImageDecoder> {
    let dec = reader(path, what)?
        .into_decoder()
        .map_err(explain)
        .with_context(|| format!("cannot decode {what} {}", path.display()))?;
    check_size(&dec).with_context(|| format!("{what} {}", path.display()))?;
    Ok(dec)
}

/// Decodes an image file within the limits.
pub fn decode(path: &Path, what: &str) -> Result<DynamicImage> {
    decode_reader(reader(path, what)?).with_context(|| format!("cannot decode {what} {}", path.display()))
}

/// Decodes image bytes within the limits (what the fuzz targets drive).
pub fn decode_bytes(bytes: &[u8]) -> Result<DynamicImage> {
    let mut r = ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .context("reading image bytes")?;
    r.limits(limits());
    decode_reader(r)
}

fn decode_reader<R: BufRead + Seek>(r: ImageReader<R>) -> Result<DynamicImage> {
    let dec = r.into_decoder().map_err(explain)?;
    check_size(&dec)?;
    DynamicImage::from_decoder(dec).map_err(explain)
}

/// Refuses a decoder whose picture is over the limits (from its header, before decoding).
pub fn check_size(dec: &impl ImageDecoder) -> Result<()> {
    let (w, h) = dec.dimensions();
    if w > MAX_SIDE || h > MAX_SIDE || dec.total_bytes() > MAX_DECODED_BYTES {
        bail!(
            "{w}×{h} pixels is over the limit for one image ({MAX_SIDE} a side, {} MiB decoded); a file this small claiming that much is a decompression bomb or is broken",
            MAX_DECODED_BYTES >> 20
        );
    }
    Ok(())
}

pub(crate) fn explain(e: image::ImageError) -> anyhow::Error {
    match e {
        image::ImageError::Limits(l) => anyhow::anyhow!(
            "over the limit for one image ({MAX_SIDE} pixels a side, {} MiB decoded): {l}",
            MAX_DECODED_BYTES >> 20
        ),
        other => anyhow::Error::new(other),
    }
}

/// CRC-32 (IEEE, as PNG and zip use it), for the hand-built test files below and in the
/// fuzz seeds.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in bytes {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
        }
    }
    !c
}

/// A PNG that claims `w`×`h` RGB pixels and holds no pixel data: a decompression bomb's
/// header, for tests (of this crate and of the stages) that check bombs are refused.
pub fn bomb_png(w: u32, h: u32) -> Vec<u8> {
    let chunk = |out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]| {
        out.extend((data.len() as u32).to_be_bytes());
        let start = out.len();
        out.extend(kind);
        out.extend(data);
        let crc = crc32(&out[start..]);
        out.extend(crc.to_be_bytes());
    };
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend(w.to_be_bytes());
    ihdr.extend(h.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]); // 8-bit RGB, deflate, no filter method, no interlace
    chunk(&mut out, b"IHDR", &ihdr);
    // one zlib stream of a few zero rows: a real bomb would hold gigabytes of them
    chunk(
        &mut out,
        b"IDAT",
        &[0x78, 0x9c, 0x63, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01],
    );
    chunk(&mut out, b"IEND", &[]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bomb_is_refused_from_its_header() {
        let e = format!("{:#}", decode_bytes(&bomb_png(30_000, 30_000)).unwrap_err());
        assert!(e.contains("over the limit"), "{e}");
        let e = format!("{:#}", decode_bytes(&bomb_png(4, 4)).unwrap_err());
        assert!(!e.contains("over the limit"), "a small broken PNG is just broken: {e}");
    }
}
