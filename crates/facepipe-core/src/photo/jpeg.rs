//! A JPEG's marker structure, walked without decoding: whether the file reaches its
//! end-of-image marker, and how many colour components its frame has.
//!
//! The image crate's JPEG decoder fills a file that was cut off part-way with grey and reports
//! no error, so a photo interrupted while copying or uploading would be measured. Walking the
//! markers finds the cut exactly: segments are skipped by their lengths (so an EXIF thumbnail's
//! own end marker inside APP1 is not mistaken for the photo's), and in entropy-coded data a
//! 0xFF byte is always followed by a stuffed 0x00, a restart marker or a real marker.

/// What the markers say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Facts {
    /// Colour components of the frame (1 grey, 3 YCbCr/RGB, 4 CMYK/YCCK).
    pub components: u8,
}

/// Walks the markers of `b`; an error says where and why the file is broken.
pub fn scan(b: &[u8]) -> Result<Facts, String> {
    const CUT: &str = "it ends before its end-of-image marker: the file was cut off (an interrupted copy or upload?)";
    if !b.starts_with(&[0xFF, 0xD8]) {
        return Err("it does not start with a JPEG start-of-image marker".into());
    }
    let mut i = 2;
    let mut components = None;
    let mut in_scan = false;
    loop {
        if in_scan {
            // entropy-coded data: up to the next marker that is not a stuffed byte or a restart
            loop {
                let Some(off) = b.get(i..).and_then(|r| r.iter().position(|&x| x == 0xFF)) else {
                    return Err(CUT.into());
                };
                i += off;
                match b.get(i + 1) {
                    None => return Err(CUT.into()),
                    Some(0x00 | 0xD0..=0xD7) => i += 2,
                    Some(0xFF) => i += 1,
                    Some(_) => break,
                }
            }
            in_scan = false;
        }
        // a marker: 0xFF (and any fill bytes), then its code; bytes before it are skipped as
        // libjpeg does ("extraneous bytes before marker")
        let Some(off) = b.get(i..).and_then(|r| r.iter().position(|&x| x == 0xFF)) else {
            return Err(CUT.into());
        };
        i += off;
        while b.get(i) == Some(&0xFF) {
            i += 1;
        }
        let Some(&code) = b.get(i) else {
            return Err(CUT.into());
        };
        i += 1;
        match code {
            0xD9 => {
                let components = components.ok_or("it has no frame header (SOF marker)")?;
                return Ok(Facts { components });
            }
            0x01 | 0xD0..=0xD8 => {}
            _ => {
                let len = match b.get(i..i + 2) {
                    Some(l) => usize::from(u16::from_be_bytes([l[0], l[1]])),
                    None => return Err(CUT.into()),
                };
                if len < 2 {
                    return Err(format!("byte {i}: a segment claims a length of {len}"));
                }
                let Some(seg) = b.get(i + 2..i + len) else {
                    return Err(CUT.into());
                };
                let sof = matches!(code, 0xC0..=0xCF) && !matches!(code, 0xC4 | 0xC8 | 0xCC);
                if sof {
                    components = Some(*seg.get(5).ok_or("its frame header is too short")?);
                }
                if code == 0xDA {
                    if components.is_none() {
                        return Err("its image data comes before its frame header".into());
                    }
                    in_scan = true;
                }
                i += len;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg(w: u32, h: u32) -> Vec<u8> {
        let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 7) as u8, (y * 5) as u8, 90]));
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
            .encode_image(&img)
            .unwrap();
        out
    }

    #[test]
    fn a_whole_jpeg_passes_and_every_cut_is_found() {
        let b = jpeg(40, 30);
        assert_eq!(scan(&b), Ok(Facts { components: 3 }));
        for cut in [b.len() - 1, b.len() - 2, b.len() / 2, 200, 3] {
            let e = scan(&b[..cut]).unwrap_err();
            assert!(e.contains("cut off"), "cut at {cut}: {e}");
        }
        assert!(scan(b"not a jpeg").unwrap_err().contains("start-of-image"));
        // trailing bytes after the end marker (some phones append data there) are fine
        let mut tail = b.clone();
        tail.extend_from_slice(b"trailer");
        assert!(scan(&tail).is_ok());
    }

    #[test]
    fn an_end_marker_inside_a_thumbnail_is_not_the_end() {
        // an APP1 segment holding a whole JPEG (an EXIF thumbnail) before the frame
        let thumb = jpeg(8, 8);
        let main = jpeg(40, 30);
        let mut b = vec![0xFF, 0xD8, 0xFF, 0xE1];
        b.extend(((thumb.len() + 2) as u16).to_be_bytes());
        b.extend(&thumb);
        b.extend(&main[2..]);
        assert!(scan(&b).is_ok());
        let cut = &b[..b.len() - main.len() / 2];
        assert!(scan(cut).unwrap_err().contains("cut off"));
    }
}
