//! One label → one mask: reusing an up-to-date mask from an earlier run, or streaming the label
//! through the [`Mapper`] and writing the mask with its description.

use std::fs;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, Result, bail};
use facepipe_core::io;
use facepipe_core::palette::IGNORE;
use serde::{Deserialize, Serialize};

use crate::{Mapper, MaskCompression, OffPalette, OffPalettePixel, STAGE, decode_label, stream_rgb8_png};

/// What the mask's TIFF ImageDescription records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MaskInfo {
    facepipe: String,
    palette: String,
    mode: OffPalette,
    off_palette: u64,
}

impl MaskInfo {
    /// The description of a mask made with the palette of this fingerprint and this mode (its
    /// off-palette count is filled in when the mask is written).
    pub(crate) fn new(palette: String, mode: OffPalette) -> Self {
        MaskInfo {
            facepipe: STAGE.into(),
            palette,
            mode,
            off_palette: 0,
        }
    }
}

fn write_mask(path: &Path, w: u32, h: u32, data: &[u8], info: &MaskInfo, compression: MaskCompression) -> Result<()> {
    let desc = serde_json::to_string(info)?;
    facepipe_core::mask::write(path, w, h, data, Some(&desc), compression)
}

/// Reads a mask written by this stage: its description (None if it is not ours) and pixels.
fn read_mask(path: &Path) -> Result<(Option<MaskInfo>, u32, u32, Vec<u8>)> {
    let f = fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    read_mask_from(BufReader::new(f), path)
}

/// Reads one of rgb2class's masks (an 8-bit single-channel TIFF and its description tag) from
/// any reader; `path` names it in errors. What the fuzz targets drive with broken TIFFs.
pub fn read_mask_from<R: std::io::Read + std::io::Seek>(
    r: R,
    path: &Path,
) -> Result<(Option<MaskInfo>, u32, u32, Vec<u8>)> {
    let (desc, w, h, data) = facepipe_core::mask::read_tiff_from(r, path)?;
    let info = desc
        .and_then(|s| serde_json::from_str::<MaskInfo>(&s).ok())
        .filter(|i| i.facepipe == STAGE);
    Ok((info, w, h, data))
}

fn mtime(p: &Path) -> Option<SystemTime> {
    fs::metadata(p).and_then(|m| m.modified()).ok()
}

/// Result of one item.
#[derive(Debug, Clone)]
pub(crate) struct Done {
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) off_palette: u64,
    /// Pixels per class, then the ignored ones.
    pub(crate) counts: Vec<u64>,
    /// The mask was already up to date.
    pub(crate) reused: bool,
}

/// One label to convert, and how.
pub(crate) struct Job<'a> {
    pub(crate) label: PathBuf,
    pub(crate) image: Option<PathBuf>,
    pub(crate) mask: PathBuf,
    pub(crate) mapper: &'a Mapper,
    pub(crate) info: MaskInfo,
    pub(crate) compression: MaskCompression,
    pub(crate) force: bool,
}

impl Job<'_> {
    fn image_size(&self) -> Result<Option<(u32, u32)>> {
        let Some(img) = &self.image else { return Ok(None) };
        // the size as shown: a label is drawn on the photo the right way up
        let size = facepipe_core::photo::shown_size(img, "image")
            .with_context(|| format!("cannot read the size of image {}", img.display()))?;
        Ok(Some(size))
    }

    fn check_size(&self, image: Option<(u32, u32)>, w: u32, h: u32) -> Result<()> {
        if let (Some((iw, ih)), Some(img)) = (image, &self.image)
            && (iw, ih) != (w, h)
        {
            bail!(
                "label {} is {w}×{h} but its image {} is {iw}×{ih}",
                self.label.display(),
                img.display()
            );
        }
        Ok(())
    }

    /// Reuses an up-to-date mask made with the same palette and mode.
    fn reuse(&self, image: Option<(u32, u32)>, n_counts: usize) -> Result<Option<Done>> {
        if self.force {
            return Ok(None);
        }
        let (Some(m), Some(l)) = (mtime(&self.mask), mtime(&self.label)) else {
            return Ok(None);
        };
        let (info, w, h, data) = match read_mask(&self.mask) {
            Ok(x) => x,
            Err(_) => return self.foreign(),
        };
        let Some(info) = info else { return self.foreign() };
        if m < l || info.palette != self.info.palette || info.mode != self.info.mode {
            return Ok(None);
        }
        if image.is_some_and(|s| s != (w, h)) {
            return Ok(None);
        }
        let mut counts = vec![0u64; n_counts];
        let n = n_counts - 1;
        for &v in &data {
            let i = usize::from(v);
            counts[if v == IGNORE || i >= n { n } else { i }] += 1;
        }
        Ok(Some(Done {
            width: w,
            height: h,
            off_palette: info.off_palette,
            counts,
            reused: true,
        }))
    }

    fn foreign(&self) -> Result<Option<Done>> {
        bail!(
            "{} exists and was not written by rgb2class; refusing to overwrite it (use --force)",
            self.mask.display()
        )
    }

    /// Converts the label (or reuses its mask); `n_counts` is the number of classes plus one
    /// for the ignored pixels.
    pub(crate) fn run(&self, n_counts: usize) -> Result<Done> {
        let image = self.image_size()?;
        if let Some(done) = self.reuse(image, n_counts)? {
            return Ok(done);
        }
        if self.mask.exists() && !self.force && read_mask(&self.mask).ok().and_then(|m| m.0).is_none() {
            self.foreign()?;
        }
        // One output buffer per worker thread, reused: a fresh zeroed allocation per mask
        // costs as much as the mapping.
        thread_local!(static OUT: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) });
        OUT.with_borrow_mut(|out| {
            let mut counts = vec![0u64; n_counts];
            let (w, h, off) = self.map_label(out, &mut counts)?;
            self.check_size(image, w, h)?;
            self.write(out, w, h, off, counts)
        })
    }

    /// Maps the label into `out` (resized to fit), counting classes into `counts`: streamed
    /// row by row where the label is an 8-bit RGB PNG, decoded whole otherwise. Returns the
    /// size and the number of off-palette pixels.
    fn map_label(&self, out: &mut Vec<u8>, counts: &mut [u64]) -> Result<(u32, u32, u64)> {
        let mut off = 0u64;
        let streamed = stream_rgb8_png(&self.label, |y, h, row| {
            let w = row.len() / 3;
            if y == 0 {
                // Same size as the last mask: no reallocation and no zeroing.
                out.resize(w * h as usize, 0);
            }
            let first = y as usize * w;
            off += self
                .mapper
                .map(row, w as u32, first, &mut out[first..first + w], counts)
                .map_err(|p| self.off_error(p))?;
            Ok(())
        })?;
        if let Some((w, h)) = streamed {
            return Ok((w, h, off));
        }
        let (w, h, rgb) = decode_label(&self.label, self.mapper.all_gray)?;
        out.resize(rgb.len() / 3, 0);
        let off = self
            .mapper
            .map(&rgb, w, 0, out, counts)
            .map_err(|p| self.off_error(p))?;
        Ok((w, h, off))
    }

    fn off_error(&self, p: OffPalettePixel) -> anyhow::Error {
        anyhow::anyhow!(
            "label {}: pixel ({}, {}) has colour {:?}, which is not in the palette (--off-palette error)",
            self.label.display(),
            p.x,
            p.y,
            p.rgb
        )
    }

    fn write(&self, out: &[u8], w: u32, h: u32, off: u64, counts: Vec<u64>) -> Result<Done> {
        if let Some(d) = self.mask.parent() {
            io::create_dir_all(d)?;
        }
        let info = MaskInfo {
            off_palette: off,
            ..self.info.clone()
        };
        write_mask(&self.mask, w, h, out, &info, self.compression)?;
        Ok(Done {
            width: w,
            height: h,
            off_palette: off,
            counts,
            reused: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_round_trip_keeps_description() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("m.tif");
        let info = MaskInfo {
            facepipe: STAGE.into(),
            palette: "abc".into(),
            mode: OffPalette::Nearest,
            off_palette: 7,
        };
        for c in [
            MaskCompression::None,
            MaskCompression::Packbits,
            MaskCompression::Lzw,
            MaskCompression::Deflate,
        ] {
            write_mask(&p, 3, 2, &[0, 1, 2, 3, 4, 255], &info, c).unwrap();
            let (i, w, h, data) = read_mask(&p).unwrap();
            assert_eq!((i.unwrap(), w, h, data), (info.clone(), 3, 2, vec![0, 1, 2, 3, 4, 255]));
        }
    }
}
