//! Colour → class: the palette lookup every label pixel goes through, with what happens to
//! colours off the palette.

use anyhow::Result;
use facepipe_core::palette::{Class, IGNORE};
use std::collections::HashMap;

use crate::*;

/// Pixel mapping from RGB to class index.
#[derive(Clone, Debug)]
pub struct Mapper {
    colours: Vec<[u8; 3]>,
    /// Open-addressing table of (packed colour, class); [`EMPTY`] marks a free slot.
    table: Vec<(u32, u8)>,
    mode: OffPalette,
    /// The palette has only grays, so a grayscale label is a colour label.
    pub all_gray: bool,
}

/// A free slot in the lookup table (packed colours use 24 bits).
pub(crate) const EMPTY: u32 = u32::MAX;

pub(crate) fn key(p: [u8; 3]) -> u32 {
    u32::from(p[0]) << 16 | u32::from(p[1]) << 8 | u32::from(p[2])
}

/// A pixel whose colour is not in the palette, under `--off-palette error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffPalettePixel {
    pub x: u32,
    pub y: u32,
    pub rgb: [u8; 3],
}

impl Mapper {
    pub fn new(classes: &[Class], mode: OffPalette) -> Self {
        let colours: Vec<[u8; 3]> = classes.iter().map(|c| c.rgb).collect();
        let size = (colours.len() * 4).next_power_of_two().max(64);
        let mut table = vec![(EMPTY, 0u8); size];
        for (class, &c) in colours.iter().enumerate() {
            let k = key(c);
            let mut i = (k.wrapping_mul(0x9E37_79B1) >> 16) as usize & (size - 1);
            while table[i].0 != EMPTY {
                i = (i + 1) & (size - 1);
            }
            table[i] = (k, class as u8);
        }
        let all_gray = colours.iter().all(|c| c[0] == c[1] && c[1] == c[2]);
        Mapper {
            colours,
            table,
            mode,
            all_gray,
        }
    }

    pub(crate) fn nearest(&self, p: [u8; 3]) -> u8 {
        let d = |c: &[u8; 3]| -> i32 { (0..3).map(|i| (i32::from(c[i]) - i32::from(p[i])).pow(2)).sum() };
        let (i, _) = self
            .colours
            .iter()
            .enumerate()
            .min_by_key(|(_, c)| d(c))
            .expect("palette is not empty");
        i as u8
    }

    /// Exact palette lookup in an open-addressing table (one multiply and, almost always, one
    /// compare).
    #[inline]
    fn exact(&self, k: u32) -> Option<u8> {
        let mask = self.table.len() - 1;
        let mut i = (k.wrapping_mul(0x9E37_79B1) >> 16) as usize & mask;
        loop {
            let (tk, c) = self.table[i];
            if tk == k {
                return Some(c);
            }
            if tk == EMPTY {
                return None;
            }
            i = (i + 1) & mask;
        }
    }

    /// Class of one colour, and whether it was off the palette.
    #[inline]
    fn lookup(&self, p: [u8; 3], cache: &mut HashMap<u32, u8>) -> Option<(u8, bool)> {
        let k = key(p);
        match (self.exact(k), self.mode) {
            (Some(c), _) => Some((c, false)),
            (None, OffPalette::Nearest) => Some((*cache.entry(k).or_insert_with(|| self.nearest(p)), true)),
            (None, OffPalette::Ignore) => Some((IGNORE, true)),
            (None, OffPalette::Error) => None,
        }
    }

    /// Maps packed RGB pixels into `out` and adds to `counts` (one per class, plus one for
    /// ignore at the end). Returns the number of off-palette pixels.
    ///
    /// Labels are long runs of one colour, so the work is done per run: look the colour up
    /// once, then find where the run ends eight pixels (three 64-bit words) at a time.
    /// `first` is the index of the first pixel in the image (for the position in errors).
    pub fn map(
        &self,
        rgb: &[u8],
        width: u32,
        first: usize,
        out: &mut [u8],
        counts: &mut [u64],
    ) -> Result<u64, OffPalettePixel> {
        assert_eq!(rgb.len(), out.len() * 3, "pixel buffer sizes disagree");
        let n = out.len();
        let n_classes = self.colours.len();
        let mut off = 0u64;
        let mut cache: HashMap<u32, u8> = HashMap::new();
        let mut i = 0;
        while i < n {
            let p = [rgb[3 * i], rgb[3 * i + 1], rgb[3 * i + 2]];
            let Some((class, is_off)) = self.lookup(p, &mut cache) else {
                let i = (first + i) as u32;
                return Err(OffPalettePixel {
                    x: i % width,
                    y: i / width,
                    rgb: p,
                });
            };
            let j = run_end(rgb, i, n, p);
            if j - i < 16 {
                out[i..j].iter_mut().for_each(|o| *o = class);
            } else {
                out[i..j].fill(class);
            }
            let len = (j - i) as u64;
            counts[if class == IGNORE { n_classes } else { usize::from(class) }] += len;
            if is_off {
                off += len;
            }
            i = j;
        }
        Ok(off)
    }
}

/// Pixel `j` of packed RGB as an array (compares inline; a 3-byte slice compare is a `bcmp`
/// call).
#[inline(always)]
pub(crate) fn pixel(rgb: &[u8], j: usize) -> [u8; 3] {
    [rgb[3 * j], rgb[3 * j + 1], rgb[3 * j + 2]]
}

/// End (exclusive) of the run of colour `p` that starts at pixel `i`.
///
/// Sixteen pixels (48 bytes, three 128-bit words) are compared at a time; this scan is most
/// of the mapping's cost (measured: faster than 8 pixels in 64-bit words, and than comparing
/// 48-byte arrays, which becomes a call to `bcmp`).
#[inline]
pub(crate) fn run_end(rgb: &[u8], i: usize, n: usize, p: [u8; 3]) -> usize {
    // Short runs (blended borders) are common: settle them before building the pattern.
    let mut j = i + 1;
    while j < n && j < i + 4 {
        if pixel(rgb, j) != p {
            return j;
        }
        j += 1;
    }
    let mut pat = [0u8; 48];
    for px in pat.chunks_exact_mut(3) {
        px.copy_from_slice(&p);
    }
    let word = |b: &[u8]| u128::from_ne_bytes(b.try_into().expect("16 bytes"));
    let (w0, w1, w2) = (word(&pat[0..16]), word(&pat[16..32]), word(&pat[32..48]));
    while j + 16 <= n {
        let b = &rgb[3 * j..3 * j + 48];
        if word(&b[0..16]) != w0 || word(&b[16..32]) != w1 || word(&b[32..48]) != w2 {
            break;
        }
        j += 16;
    }
    while j < n && pixel(rgb, j) == p {
        j += 1;
    }
    j
}
