//! Class-index masks: 8-bit single-channel images whose pixels are class ids (0..N) or 255
//! ([`IGNORE`]: not labelled, or not predicted). rgb2class writes them, unet-train and
//! unet-eval read them as truth, unet-eval writes its predictions the same way, cheek-lab reads
//! either. One reader and one writer serve every stage.
//!
//! Files are TIFFs (any 8-bit grey image the `image` crate decodes is read too), written
//! atomically, with an optional `ImageDescription` tag (rgb2class records how a mask was made
//! there, to know its own files again).

use std::io::{BufWriter, Write as _};
use std::path::Path;

use anyhow::{Context, Result, bail};
use image::GrayImage;
use serde::{Deserialize, Serialize};

use crate::palette::IGNORE;

/// TIFF compression of a mask.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Packbits,
    Lzw,
    Deflate,
}

impl Compression {
    fn tiff(self) -> tiff::encoder::Compression {
        use tiff::encoder::Compression as C;
        match self {
            Compression::None => C::Uncompressed,
            Compression::Packbits => C::Packbits,
            Compression::Lzw => C::Lzw,
            Compression::Deflate => C::Deflate(tiff::encoder::DeflateLevel::Fast),
        }
    }
}

/// Reads a class-index mask and checks every value: below `n_classes`, or 255. An error names
/// the file and, for a bad value, the first pixel holding it.
pub fn read(path: &Path, n_classes: usize) -> Result<GrayImage> {
    let img = crate::images::decode(path, "mask")?;
    let mask = match img {
        image::DynamicImage::ImageLuma8(m) => m,
        other => bail!(
            "mask {} is {:?}, not a single-channel 8-bit class-index image (run rgb2class on RGB labels)",
            path.display(),
            other.color()
        ),
    };
    if let Some((i, &v)) = mask
        .as_raw()
        .iter()
        .enumerate()
        .find(|&(_, &v)| usize::from(v) >= n_classes && v != IGNORE)
    {
        let (x, y) = (i as u32 % mask.width(), i as u32 / mask.width());
        bail!(
            "mask {} has value {v} at pixel ({x}, {y}), but there are only {n_classes} classes (0..{}) and 255 for ignore",
            path.display(),
            n_classes.saturating_sub(1)
        );
    }
    Ok(mask)
}

/// Writes a mask (`data`: `w`×`h` class ids, row by row) as an 8-bit TIFF, atomically, with
/// `description` in its ImageDescription tag.
pub fn write(
    path: &Path,
    w: u32,
    h: u32,
    data: &[u8],
    description: Option<&str>,
    compression: Compression,
) -> Result<()> {
    anyhow::ensure!(
        data.len() as u64 == u64::from(w) * u64::from(h),
        "mask {}: {} bytes for {w}×{h} pixels",
        path.display(),
        data.len()
    );
    if let Some(d) = path.parent() {
        crate::io::create_dir_all(d)?;
    }
    if compression == Compression::Packbits {
        // The tiff crate's own PackBits is slower than deflate; runs make it trivial here.
        return write_packbits(path, w, h, data, description);
    }
    crate::io::write_atomic_fast(path, |f| {
        let mut buf = BufWriter::new(f);
        let mut enc = tiff::encoder::TiffEncoder::new(&mut buf)?.with_compression(compression.tiff());
        let mut img = enc.new_image::<tiff::encoder::colortype::Gray8>(w, h)?;
        if let Some(d) = description {
            img.encoder().write_tag(tiff::tags::Tag::ImageDescription, d)?;
        }
        img.write_data(data)?;
        buf.flush()?;
        Ok(())
    })
}

/// Length of the run of `row[i]` starting at `i`, at most `max`; compares 16 bytes at a time.
#[inline]
fn run_len(row: &[u8], i: usize, max: usize) -> usize {
    let v = row[i];
    let splat = u128::from_ne_bytes([v; 16]);
    let end = (i + max).min(row.len());
    let mut j = i + 1;
    while j + 16 <= end && u128::from_ne_bytes(row[j..j + 16].try_into().expect("16 bytes")) == splat {
        j += 16;
    }
    while j < end && row[j] == v {
        j += 1;
    }
    j - i
}

/// PackBits-compresses one row (TIFF compression 32773: runs never cross rows).
fn packbits_row(row: &[u8], dst: &mut Vec<u8>) {
    let n = row.len();
    let mut i = 0;
    while i < n {
        let run = run_len(row, i, 128);
        if run >= 2 {
            dst.push((1 - run as i16) as i8 as u8);
            dst.push(row[i]);
            i += run;
        } else {
            let start = i;
            i += 1;
            while i < n && i - start < 128 && !(i + 1 < n && row[i] == row[i + 1]) {
                i += 1;
            }
            dst.push((i - start - 1) as u8);
            dst.extend_from_slice(&row[start..i]);
        }
    }
}

/// Writes a PackBits TIFF through the tiff crate's directory API: one strip, compressed here.
fn write_packbits(path: &Path, w: u32, h: u32, data: &[u8], description: Option<&str>) -> Result<()> {
    use tiff::tags::Tag;
    let mut packed = Vec::with_capacity(data.len() / 16 + 64);
    for row in data.chunks_exact(w.max(1) as usize) {
        packbits_row(row, &mut packed);
    }
    crate::io::write_atomic_fast(path, |f| {
        let mut buf = BufWriter::new(f);
        let mut enc = tiff::encoder::TiffEncoder::new(&mut buf)?;
        let mut dir = enc.image_directory()?;
        let offset = dir.write_data(packed.as_slice())?;
        let offset = u32::try_from(offset).context("mask too large for TIFF")?;
        dir.write_tag(Tag::ImageWidth, w)?;
        dir.write_tag(Tag::ImageLength, h)?;
        dir.write_tag(Tag::BitsPerSample, 8u16)?;
        dir.write_tag(Tag::Compression, 32773u16)?;
        dir.write_tag(Tag::PhotometricInterpretation, 1u16)?;
        if let Some(d) = description {
            dir.write_tag(Tag::ImageDescription, d)?;
        }
        dir.write_tag(Tag::StripOffsets, offset)?;
        dir.write_tag(Tag::SamplesPerPixel, 1u16)?;
        dir.write_tag(Tag::RowsPerStrip, h)?;
        dir.write_tag(Tag::StripByteCounts, packed.len() as u32)?;
        dir.finish()?;
        buf.flush()?;
        Ok(())
    })
}

/// Reads an 8-bit single-channel TIFF from any reader, with its ImageDescription (if any);
/// `path` names it in errors. What rgb2class checks its earlier masks with, and what the
/// fuzz targets drive with broken TIFFs.
pub fn read_tiff_from<R: std::io::Read + std::io::Seek>(
    r: R,
    path: &Path,
) -> Result<(Option<String>, u32, u32, Vec<u8>)> {
    let mut dec = tiff::decoder::Decoder::new(r).with_context(|| format!("{} is not a TIFF", path.display()))?;
    let description = dec
        .get_tag_ascii_string(tiff::tags::Tag::ImageDescription)
        .ok()
        .map(|s| s.trim_end_matches('\0').to_string());
    let (w, h) = dec
        .dimensions()
        .with_context(|| format!("{} is not a readable TIFF", path.display()))?;
    let data = match dec
        .read_image()
        .with_context(|| format!("{} is not a readable TIFF", path.display()))?
    {
        tiff::decoder::DecodingResult::U8(v) if v.len() as u64 == u64::from(w) * u64::from(h) => v,
        _ => bail!("{} is not an 8-bit single-channel mask", path.display()),
    };
    Ok((description, w, h, data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packbits_round_trips_runs_and_literals() {
        let rows: [&[u8]; 5] = [
            &[0; 300],
            &[1, 2, 3, 4, 5],
            &[7],
            &[1, 1, 2, 3, 3, 3, 4, 5, 5],
            &[9, 8, 8],
        ];
        for row in rows {
            let mut packed = vec![];
            packbits_row(row, &mut packed);
            // reference decoder (TIFF 6.0, section 9)
            let mut out = vec![];
            let mut i = 0;
            while i < packed.len() {
                let n = packed[i] as i8;
                i += 1;
                if n >= 0 {
                    out.extend_from_slice(&packed[i..i + n as usize + 1]);
                    i += n as usize + 1;
                } else if n != -128 {
                    out.extend(std::iter::repeat_n(packed[i], (1 - n as i16) as usize));
                    i += 1;
                }
            }
            assert_eq!(out, row);
        }
        let mut packed = vec![];
        packbits_row(&[0; 300], &mut packed);
        assert_eq!(packed.len(), 6, "three runs of at most 128");
    }

    #[test]
    fn bad_masks_are_named() {
        use image::{Luma, RgbImage};
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("m.png");
        GrayImage::from_fn(4, 2, |x, y| Luma([if (x, y) == (3, 1) { 12 } else { 255 }]))
            .save(&p)
            .unwrap();
        let e = read(&p, 12).unwrap_err().to_string();
        assert!(
            e.contains("m.png") && e.contains("value 12") && e.contains("(3, 1)"),
            "{e}"
        );
        assert!(read(&p, 13).is_ok());
        let rgb = d.path().join("rgb.png");
        RgbImage::new(2, 2).save(&rgb).unwrap();
        assert!(read(&rgb, 12).unwrap_err().to_string().contains("rgb2class"));
    }

    #[test]
    fn every_compression_writes_what_is_read_back() {
        let d = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..12 * 5).map(|i| [0, 1, 2, 255][i % 7 % 4]).collect();
        for c in [
            Compression::None,
            Compression::Packbits,
            Compression::Lzw,
            Compression::Deflate,
        ] {
            let p = d.path().join(format!("sub/{c:?}.tif"));
            write(&p, 12, 5, &data, Some("{\"x\":1}"), c).unwrap();
            let m = read(&p, 3).unwrap();
            assert_eq!((m.dimensions(), m.as_raw()), ((12, 5), &data), "{c:?}");
            let (desc, w, h, raw) = read_tiff_from(std::fs::File::open(&p).unwrap(), &p).unwrap();
            assert_eq!((desc.as_deref(), w, h, raw), (Some("{\"x\":1}"), 12, 5, data.clone()));
            // a value beyond the classes is named with its pixel
            let e = read(&p, 2).unwrap_err().to_string();
            assert!(e.contains("value 2 at pixel"), "{e}");
        }
        assert!(write(&d.path().join("bad.tif"), 3, 3, &[0; 8], None, Compression::None).is_err());
    }
}
