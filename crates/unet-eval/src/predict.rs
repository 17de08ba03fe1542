//! From an image to a full-resolution class mask.
//!
//! The model was trained on square crops of side min(width, height), resized to its input
//! size (random position in training, the centre in validation). Prediction uses crops of that
//! same side and scale, so every input is one the model could have seen in training:
//!
//! * [`Outside::Tile`] (default): square tiles of side min(w, h) along the long axis, evenly
//!   spaced from one edge to the other, an odd number of them so that the middle one is the
//!   validation centre crop (1 tile for a square image, 3 for 4:3 or 16:9, 5 beyond 3:1). The
//!   whole image is predicted.
//! * [`Outside::None`]: the centre crop only; pixels outside it are 255 ("not predicted")
//!   and left out of the full-resolution scores (counted as unpredicted).
//!
//! Each tile's softmax probabilities are resized back to the tile's side with bilinear
//! interpolation (PyTorch's `interpolate(mode="bilinear", align_corners=False)`: sample
//! centres aligned, edges clamped), summed over the tiles that cover a pixel, and the class
//! of highest probability is taken at full resolution (ties to the lower index). Resizing
//! probabilities rather than nearest-upsampling the model-size argmax keeps class borders
//! smooth and placed to sub-model-pixel precision, which matters for the next stage's patches.

use facepipe_core::palette::IGNORE;
use rayon::prelude::*;
use unet::data::Crop;

pub use facepipe_formats::eval::Outside;

/// The crops to run for a `w`×`h` image, and the index of the centre one.
pub fn tiles(w: u32, h: u32, outside: Outside) -> (Vec<Crop>, usize) {
    let side = w.min(h);
    let long = w.max(h);
    let slack = long - side;
    let k = match outside {
        Outside::None => 1,
        Outside::Tile => {
            let k = long.div_ceil(side);
            if k.is_multiple_of(2) { k + 1 } else { k }
        }
    };
    let at = |pos: u32| {
        if w >= h {
            Crop { x: pos, y: 0, side }
        } else {
            Crop { x: 0, y: pos, side }
        }
    };
    if k == 1 {
        return (vec![at(slack / 2)], 0);
    }
    let tiles = (0..k)
        .map(|i| at((u64::from(i) * u64::from(slack) / u64::from(k - 1)) as u32))
        .collect();
    (tiles, (k as usize - 1) / 2)
}

/// Bilinear taps (align_corners=False) from `side` output pixels into `size` input samples:
/// per output pixel, the two input indices and the weight of the second.
pub fn taps(side: u32, size: u32) -> Vec<(usize, usize, f32)> {
    let scale = f64::from(size) / f64::from(side);
    let last = size as usize - 1;
    (0..side)
        .map(|u| {
            let s = ((f64::from(u) + 0.5) * scale - 0.5).max(0.0);
            let i0 = (s.floor() as usize).min(last);
            let i1 = (i0 + 1).min(last);
            (i0, i1, (s - i0 as f64).min(1.0) as f32)
        })
        .collect()
}

/// The full-resolution class mask of a `w`×`h` image from the probabilities of its tiles
/// (each `classes × size × size`).
pub fn map_back(probs: &[&[f32]], tiles: &[Crop], w: u32, h: u32, size: u32, classes: usize) -> Vec<u8> {
    assert_eq!(probs.len(), tiles.len());
    let (w, s) = (w as usize, size as usize);
    let side = tiles.first().map_or(0, |t| t.side);
    let tap = taps(side, size);
    let mut out = vec![IGNORE; w * h as usize];
    out.par_chunks_mut(w).enumerate().for_each_init(
        || (vec![0f32; classes * w], vec![false; w], vec![0f32; classes * s]),
        |(acc, covered, rows), (y, row)| {
            acc.fill(0.0);
            covered.fill(false);
            for (t, p) in tiles.iter().zip(probs) {
                let (ty, tx) = (t.y as usize, t.x as usize);
                if y < ty || y >= ty + side as usize {
                    continue;
                }
                let (j0, j1, fy) = tap[y - ty];
                for c in 0..classes {
                    let (a, b) = (&p[(c * s + j0) * s..][..s], &p[(c * s + j1) * s..][..s]);
                    for (r, (&a, &b)) in rows[c * s..(c + 1) * s].iter_mut().zip(a.iter().zip(b)) {
                        *r = a + (b - a) * fy;
                    }
                }
                for (u, &(i0, i1, fx)) in tap.iter().enumerate() {
                    let x = tx + u;
                    covered[x] = true;
                    let cell = &mut acc[x * classes..(x + 1) * classes];
                    for (c, v) in cell.iter_mut().enumerate() {
                        let r = &rows[c * s..];
                        *v += r[i0] + (r[i1] - r[i0]) * fx;
                    }
                }
            }
            for (x, o) in row.iter_mut().enumerate() {
                if covered[x] {
                    *o = argmax(&acc[x * classes..(x + 1) * classes]);
                }
            }
        },
    );
    out
}

/// Index of the largest value (the first of equals).
pub fn argmax(v: &[f32]) -> u8 {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate().skip(1) {
        if x > v[best] {
            best = i;
        }
    }
    best as u8
}

/// Per-pixel argmax of `classes × size × size` probabilities.
pub fn argmax_planes(p: &[f32], classes: usize, size: usize) -> Vec<u8> {
    let n = size * size;
    (0..n)
        .map(|i| {
            let mut best = 0;
            for c in 1..classes {
                if p[c * n + i] > p[best * n + i] {
                    best = c;
                }
            }
            best as u8
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_cover_the_image_with_the_centre_crop_in_the_middle() {
        assert_eq!(
            tiles(100, 100, Outside::Tile),
            (vec![Crop { x: 0, y: 0, side: 100 }], 0)
        );
        let (t, c) = tiles(640, 480, Outside::Tile);
        assert_eq!(t.iter().map(|t| t.x).collect::<Vec<_>>(), [0, 80, 160]);
        assert_eq!(t[c], unet::data::square_crop(640, 480, None));
        let (t, c) = tiles(30, 100, Outside::Tile); // 1:3.33 → 4 → 5 tiles
        assert_eq!(t.iter().map(|t| t.y).collect::<Vec<_>>(), [0, 17, 35, 52, 70]);
        assert_eq!(t[c], unet::data::square_crop(30, 100, None));
        assert!(t.iter().all(|t| t.x == 0 && t.side == 30));
        let (t, c) = tiles(640, 480, Outside::None);
        assert_eq!((t, c), (vec![Crop { x: 80, y: 0, side: 480 }], 0));
    }

    #[test]
    fn taps_match_pytorch_bilinear() {
        // F.interpolate(torch.arange(4.).view(1,1,1,4), size=(1,8), mode="bilinear",
        // align_corners=False) = [0, .25, .75, 1.25, 1.75, 2.25, 2.75, 3]
        let src = [0f32, 1.0, 2.0, 3.0];
        let got: Vec<f32> = taps(8, 4)
            .iter()
            .map(|&(a, b, f)| src[a] + (src[b] - src[a]) * f)
            .collect();
        assert_eq!(got, [0.0, 0.25, 0.75, 1.25, 1.75, 2.25, 2.75, 3.0]);
        // downscaling by 2 averages neighbours' centres: [0.5, 2.5]
        let got: Vec<f32> = taps(2, 4)
            .iter()
            .map(|&(a, b, f)| src[a] + (src[b] - src[a]) * f)
            .collect();
        assert_eq!(got, [0.5, 2.5]);
    }

    /// Probabilities of 2 classes at `size`² where class 1 wins on columns ≥ `edge`.
    fn halves(size: usize, edge: usize) -> Vec<f32> {
        let mut p = vec![0f32; 2 * size * size];
        for y in 0..size {
            for x in 0..size {
                let one = if x >= edge { 0.9 } else { 0.1 };
                p[y * size + x] = 1.0 - one;
                p[size * size + y * size + x] = one;
            }
        }
        p
    }

    #[test]
    fn a_square_prediction_maps_back_scaled() {
        // a 4×4 prediction, class 1 on the right half, mapped onto 16×16: right half exactly
        let p = halves(4, 2);
        let m = map_back(&[&p], &[Crop { x: 0, y: 0, side: 16 }], 16, 16, 4, 2);
        for y in 0..16 {
            let row: Vec<u8> = m[y * 16..(y + 1) * 16].to_vec();
            assert_eq!(row, [[0u8; 8], [1u8; 8]].concat(), "row {y}");
        }
    }

    #[test]
    fn non_square_images_map_back_through_tiles_or_leave_the_sides() {
        // 24×8 image: tiles of side 8 at x = 0, 8, 16 (3 tiles), each predicting class 1 on
        // its right half: stripes of 4 columns
        let (t, _) = tiles(24, 8, Outside::Tile);
        let p = halves(4, 2);
        let m = map_back(&[&p, &p, &p], &t, 24, 8, 4, 2);
        let want: Vec<u8> = (0..24).map(|x| u8::from(x % 8 >= 4)).collect();
        for y in 0..8 {
            assert_eq!(&m[y * 24..(y + 1) * 24], want.as_slice(), "row {y}");
        }
        // portrait 8×20 with the centre crop only: rows outside [6, 14) are not predicted
        let (t, _) = tiles(8, 20, Outside::None);
        let m = map_back(&[&p], &t, 8, 20, 4, 2);
        for y in 0..20 {
            let row = &m[y * 8..(y + 1) * 8];
            if (6..14).contains(&y) {
                assert_eq!(row, [0, 0, 0, 0, 1, 1, 1, 1], "row {y}");
            } else {
                assert!(row.iter().all(|&v| v == IGNORE), "row {y}");
            }
        }
    }

    #[test]
    fn overlapping_tiles_are_summed() {
        // 12×8: tiles at x = 0, 2, 4 (side 8). Tile 0 says class 1 everywhere weakly (0.6),
        // tiles 1 and 2 say class 0 strongly (0.9): where all overlap, class 0 wins; the
        // first two columns are seen by tile 0 only: class 1
        let s = 2;
        let plane = |p1: f32| [vec![1.0 - p1; s * s], vec![p1; s * s]].concat();
        let (a, b) = (plane(0.6), plane(0.1));
        let t = [0, 2, 4].map(|x| Crop { x, y: 0, side: 8 });
        let m = map_back(&[&a, &b, &b], &t, 12, 8, s as u32, 2);
        assert_eq!(&m[..12], &[1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn argmax_takes_the_first_of_equals() {
        assert_eq!(argmax(&[0.2, 0.5, 0.5]), 1);
        assert_eq!(argmax_planes(&[0.7, 0.2, 0.3, 0.8], 2, 1), vec![0]);
        assert_eq!(argmax_planes(&[0.5, 0.5], 2, 1), vec![0]);
    }
}
