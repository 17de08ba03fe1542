//! 2-D convolution on the CPU as blocked GEMM over NCHW `f32` data: forward, input gradient
//! and weight gradient, for any stride, padding and dilation (one group).
//!
//! Per image, the output `[C_out, P]` (P = output pixels) is `W [C_out, K] · col [K, P]` with
//! `K = C_in·kh·kw` and `col` the input's patches (im2col). `col` is built a tile of output
//! pixels at a time, so its memory stays near [`TILE_FLOATS`] whatever the image size; each
//! row of a tile is a run of one input row, copied with `copy_from_slice` at stride 1. A 1×1
//! convolution at stride 1 without padding uses the image itself as `col`.
//!
//! * input gradient: `dcol = Wᵀ · dy` per tile, scattered back onto the input (col2im);
//! * weight gradient: `dW = Σ dy · colᵀ` over images and tiles, each thread summing its own
//!   share of the tiles before the shares are added.
//!
//! Images run in parallel (rayon) with single-threaded products; when there are fewer
//! images than threads, the products themselves are split instead.

use std::cell::RefCell;

use rayon::prelude::*;

use super::gemm::{Mat, MatMut, matmul};

thread_local! {
    /// Each thread's im2col buffer, kept between calls: a tile is up to 4 MiB, allocated and
    /// zeroed for every image of every convolution otherwise.
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on a scratch buffer of `len` floats (contents unspecified): the thread's own, or a
/// fresh one when that is in use (a rayon thread that picked up more work while waiting
/// inside a parallel product).
fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            if buf.len() < len {
                buf.resize(len, 0.0);
            }
            f(&mut buf[..len])
        }
        Err(_) => f(&mut vec![0f32; len]),
    })
}

/// The im2col tile's target size in floats (4 MiB): big enough for efficient products, small
/// enough to stay in the last-level cache.
pub const TILE_FLOATS: usize = 1 << 20;

/// A convolution's sizes: input `[batch, cin, h, w]`, weight `[cout, cin, kh, kw]`,
/// symmetric padding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvShape {
    pub batch: usize,
    pub cin: usize,
    pub h: usize,
    pub w: usize,
    pub cout: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: [usize; 2],
    pub pad: [usize; 2],
    pub dilation: [usize; 2],
}

fn out_size(input: usize, k: usize, stride: usize, pad: usize, dilation: usize) -> usize {
    let span = dilation * (k - 1) + 1;
    (input + 2 * pad).saturating_sub(span) / stride + 1
}

/// The output positions `o < out` whose input index `o·stride + off` lies in `[0, input)`.
fn valid(off: isize, stride: usize, input: usize, out: usize) -> (usize, usize) {
    let s = stride as isize;
    let lo = if off >= 0 { 0 } else { (-off + s - 1) / s };
    let room = input as isize - off;
    let hi = if room <= 0 { 0 } else { (room + s - 1) / s };
    let lo = (lo as usize).min(out);
    (lo, (hi as usize).clamp(lo, out))
}

impl ConvShape {
    /// Output height and width.
    pub fn out_hw(&self) -> [usize; 2] {
        [
            out_size(self.h, self.kh, self.stride[0], self.pad[0], self.dilation[0]),
            out_size(self.w, self.kw, self.stride[1], self.pad[1], self.dilation[1]),
        ]
    }

    fn k(&self) -> usize {
        self.cin * self.kh * self.kw
    }

    fn p(&self) -> usize {
        let [oh, ow] = self.out_hw();
        oh * ow
    }

    fn pointwise(&self) -> bool {
        self.kh == 1 && self.kw == 1 && self.stride == [1, 1] && self.pad == [0, 0]
    }

    fn tile(&self) -> usize {
        (TILE_FLOATS / self.k().max(1)).max(64).min(self.p()).max(1)
    }

    fn in_len(&self) -> usize {
        self.cin * self.h * self.w
    }

    /// Calls `f(r, ci, iy, at, (ox0, ox1), (lo, hi), offx)` for each patch row
    /// `r = (ci, ky, kx)` and each run `[ox0, ox1)` of one output row inside the tile
    /// `[p0, p0 + t)`: `at` is the run's place in the tile, `iy` the input row it reads (None
    /// in the padding), `[lo, hi)` the columns whose input column `ox·stride + offx` exists.
    fn walk(
        &self,
        p0: usize,
        t: usize,
        mut f: impl FnMut(usize, usize, Option<usize>, usize, (usize, usize), (usize, usize), isize),
    ) {
        let [_, ow] = self.out_hw();
        let [sh, sw] = self.stride;
        let [ph, pw] = self.pad;
        let [dh, dw] = self.dilation;
        for ci in 0..self.cin {
            for ky in 0..self.kh {
                for kx in 0..self.kw {
                    let r = (ci * self.kh + ky) * self.kw + kx;
                    let offy = (ky * dh) as isize - ph as isize;
                    let offx = (kx * dw) as isize - pw as isize;
                    let mut p = p0;
                    while p < p0 + t {
                        let (oy, ox0) = (p / ow, p % ow);
                        let ox1 = ow.min(ox0 + (p0 + t - p));
                        let iy = (oy * sh) as isize + offy;
                        let row = (iy >= 0 && (iy as usize) < self.h).then_some(iy as usize);
                        let (lo, hi) = valid(offx, sw, self.w, ow);
                        let (lo, hi) = (lo.clamp(ox0, ox1), hi.clamp(ox0, ox1));
                        f(r, ci, row, p - p0, (ox0, ox1), (lo, hi), offx);
                        p += ox1 - ox0;
                    }
                }
            }
        }
    }

    /// Fills `col` (`K × t`, rows `ld` apart) with the patches of output pixels `[p0, p0 + t)`.
    fn im2col(&self, x: &[f32], p0: usize, t: usize, col: &mut [f32], ld: usize) {
        let [_, ow] = self.out_hw();
        if self.stride == [1, 1] && ow == self.w && p0.is_multiple_of(ow) && t.is_multiple_of(ow) {
            return self.im2col_same(x, p0 / ow, t / ow, col, ld);
        }
        let (h, w, sw) = (self.h, self.w, self.stride[1]);
        self.walk(p0, t, |r, ci, iy, at, (ox0, ox1), (lo, hi), offx| {
            let dst = &mut col[r * ld + at..][..ox1 - ox0];
            let Some(iy) = iy else {
                dst.fill(0.0);
                return;
            };
            let src = &x[(ci * h + iy) * w..][..w];
            dst[..lo - ox0].fill(0.0);
            dst[hi - ox0..].fill(0.0);
            let dst = &mut dst[lo - ox0..hi - ox0];
            let start = (lo * sw) as isize + offx;
            if sw == 1 {
                dst.copy_from_slice(&src[start as usize..][..hi - lo]);
            } else {
                for (i, d) in dst.iter_mut().enumerate() {
                    *d = src[start as usize + i * sw];
                }
            }
        });
    }

    /// [`Self::im2col`] for whole output rows `[oy0, oy0 + rows)` of a stride-1 convolution
    /// whose output is as wide as its input (`same` padding, the model's 3×3 and 1×1 layers):
    /// each patch row is then the input plane shifted by `(offy, offx)`, so it is one copy of
    /// a run of the plane, after which the columns that wrapped round from the next row are
    /// zeroed (per output row, instead of one copy per output row: the small late layers
    /// have rows of 8–32 pixels).
    fn im2col_same(&self, x: &[f32], oy0: usize, rows: usize, col: &mut [f32], ld: usize) {
        let (h, w) = (self.h, self.w);
        let [oh, _] = self.out_hw();
        for ci in 0..self.cin {
            let plane = &x[ci * h * w..][..h * w];
            for ky in 0..self.kh {
                let offy = (ky * self.dilation[0]) as isize - self.pad[0] as isize;
                let (vy0, vy1) = valid(offy, 1, h, oh);
                let (vy0, vy1) = (vy0.clamp(oy0, oy0 + rows), vy1.clamp(oy0, oy0 + rows));
                for kx in 0..self.kw {
                    let offx = (kx * self.dilation[1]) as isize - self.pad[1] as isize;
                    let r = (ci * self.kh + ky) * self.kw + kx;
                    let dst = &mut col[r * ld..][..rows * w];
                    dst[..(vy0 - oy0) * w].fill(0.0);
                    dst[(vy1 - oy0) * w..].fill(0.0);
                    if vy1 == vy0 {
                        continue;
                    }
                    // flat source of output (vy0, 0), and the part of the run inside the plane
                    let start = (vy0 as isize + offy) * w as isize + offx;
                    let n = ((vy1 - vy0) * w) as isize;
                    let (s0, s1) = (start.max(0), (start + n).min((h * w) as isize));
                    let at = (vy0 - oy0) * w;
                    dst[at + (s0 - start) as usize..at + (s1 - start) as usize]
                        .copy_from_slice(&plane[s0 as usize..s1 as usize]);
                    let (lo, hi) = valid(offx, 1, w, w);
                    if lo > 0 || hi < w {
                        for row in dst[at..at + n as usize].chunks_exact_mut(w) {
                            row[..lo].fill(0.0);
                            row[hi..].fill(0.0);
                        }
                    }
                }
            }
        }
    }

    /// Adds the patch gradients `dcol` (`K × t`) of output pixels `[p0, p0 + t)` onto `dx`.
    fn col2im(&self, dcol: &[f32], p0: usize, t: usize, dx: &mut [f32]) {
        let (h, w, sw) = (self.h, self.w, self.stride[1]);
        self.walk(p0, t, |r, ci, iy, at, (ox0, _), (lo, hi), offx| {
            let Some(iy) = iy else { return };
            let src = &dcol[r * t + at + (lo - ox0)..][..hi - lo];
            let dst = &mut dx[(ci * h + iy) * w..][..w];
            let start = ((lo * sw) as isize + offx) as usize;
            if sw == 1 {
                for (d, s) in dst[start..][..hi - lo].iter_mut().zip(src) {
                    *d += s;
                }
            } else {
                for (i, s) in src.iter().enumerate() {
                    dst[start + i * sw] += s;
                }
            }
        });
    }

    /// Output-pixel tiles `(start, len)`.
    fn tiles(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        let (p, t) = (self.p(), self.tile());
        (0..p).step_by(t).map(move |p0| (p0, t.min(p - p0)))
    }

    fn split_products(&self) -> bool {
        self.batch < rayon::current_num_threads()
    }
}

/// Output pixels per image below which all images share one product (deep layers: few
/// pixels, many channels, where one small product per image leaves threads idle).
const SHARED_BELOW: usize = 1024;

/// The convolution: `x` `[batch, cin, h, w]`, `weight` `[cout, cin, kh, kw]`, optional bias;
/// returns `[batch, cout, oh, ow]`.
pub fn forward(s: &ConvShape, x: &[f32], weight: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
    let (k, p, cout) = (s.k(), s.p(), s.cout);
    let mut out = super::zeroed(s.batch * cout * p);
    if p == 0 || s.batch == 0 {
        return out;
    }
    let wm = Mat::rows(weight, cout, k);
    if s.batch > 1 && p < SHARED_BELOW && k * p * s.batch <= 4 * TILE_FLOATS {
        // one product for every image: `col` is K × (batch·P), image b in columns b·P..
        let n = s.batch * p;
        with_scratch(k * n + cout * n, |buf| {
            let (col, prod) = buf.split_at_mut(k * n);
            for b in 0..s.batch {
                s.im2col(&x[b * s.in_len()..][..s.in_len()], 0, p, &mut col[b * p..], n);
            }
            matmul(MatMut::rows(prod, cout, n), wm, Mat::rows(col, k, n), false, true);
            let prod = &*prod;
            out.par_chunks_mut(cout * p).enumerate().for_each(|(b, ob)| {
                for (c, plane) in ob.chunks_mut(p).enumerate() {
                    plane.copy_from_slice(&prod[c * n + b * p..][..p]);
                }
            });
        });
    } else {
        let par = s.split_products();
        out.par_chunks_mut(cout * p).enumerate().for_each(|(b, ob)| {
            let xb = &x[b * s.in_len()..][..s.in_len()];
            if s.pointwise() {
                matmul(MatMut::rows(ob, cout, p), wm, Mat::rows(xb, s.cin, p), false, par);
                return;
            }
            with_scratch(k * s.tile(), |col| {
                for (p0, t) in s.tiles() {
                    let col = &mut col[..k * t];
                    s.im2col(xb, p0, t, col, t);
                    let dst = MatMut {
                        data: &mut ob[p0..],
                        rows: cout,
                        cols: t,
                        rs: p,
                        cs: 1,
                    };
                    matmul(dst, wm, Mat::rows(col, k, t), false, par);
                }
            });
        });
    }
    if let Some(bias) = bias {
        out.par_chunks_mut(cout * p).for_each(|ob| {
            for (plane, &v) in ob.chunks_mut(p).zip(bias) {
                plane.iter_mut().for_each(|o| *o += v);
            }
        });
    }
    out
}

/// At stride 1 the input gradient is itself a convolution, of `dy` with the weights
/// transposed (`cin` ↔ `cout`) and flipped, padded by `dilation·(k − 1) − pad`: no scatter,
/// and a product whose inner size is `cout·kh·kw` rather than `cout` (the decoder's wide,
/// thin layers at full resolution). Returns that convolution and its weights, or None where
/// it does not apply (strides, padding beyond the kernel's span).
fn input_grad_as_conv(s: &ConvShape, weight: &[f32]) -> Option<(ConvShape, Vec<f32>)> {
    if s.stride != [1, 1] {
        return None;
    }
    let [oh, ow] = s.out_hw();
    let span = [s.dilation[0] * (s.kh - 1), s.dilation[1] * (s.kw - 1)];
    let pad = [span[0].checked_sub(s.pad[0])?, span[1].checked_sub(s.pad[1])?];
    let t = ConvShape {
        batch: s.batch,
        cin: s.cout,
        h: oh,
        w: ow,
        cout: s.cin,
        kh: s.kh,
        kw: s.kw,
        stride: [1, 1],
        pad,
        dilation: s.dilation,
    };
    if t.out_hw() != [s.h, s.w] {
        return None;
    }
    // flipped[ci][co][kh−1−ky][kw−1−kx] = weight[co][ci][ky][kx]: each (co, ci) kernel,
    // reversed whole, lands in output row ci. One contiguous kernel a copy and no index
    // arithmetic per value, in parallel over ci (for a 512→512 layer that is 2.4 M values a
    // step; the per-value gather this replaces cost as much as the Adam step)
    let (kk, cin, cout) = (s.kh * s.kw, s.cin, s.cout);
    let mut flipped = super::zeroed(weight.len());
    flipped.par_chunks_mut(cout * kk).enumerate().for_each(|(ci, row)| {
        for (co, dst) in row.chunks_exact_mut(kk).enumerate() {
            let src = &weight[(co * cin + ci) * kk..][..kk];
            dst.iter_mut().zip(src.iter().rev()).for_each(|(d, &w)| *d = w);
        }
    });
    Some((t, flipped))
}

/// The gradient with respect to the input, from the output's gradient `dy`.
pub fn backward_input(s: &ConvShape, weight: &[f32], dy: &[f32]) -> Vec<f32> {
    if let Some((t, flipped)) = input_grad_as_conv(s, weight) {
        return forward(&t, dy, &flipped, None);
    }
    let (k, p, cout) = (s.k(), s.p(), s.cout);
    let mut dx = super::zeroed(s.batch * s.in_len());
    if p == 0 || s.in_len() == 0 {
        return dx;
    }
    let par = s.split_products();
    let wt = Mat::rows(weight, cout, k).t();
    dx.par_chunks_mut(s.in_len()).enumerate().for_each(|(b, dxb)| {
        let dyb = &dy[b * cout * p..][..cout * p];
        with_scratch(k * s.tile(), |dcol| {
            for (p0, t) in s.tiles() {
                let dcol = &mut dcol[..k * t];
                let dyv = Mat {
                    data: &dyb[p0..],
                    rows: cout,
                    cols: t,
                    rs: p,
                    cs: 1,
                };
                matmul(MatMut::rows(dcol, k, t), wt, dyv, false, par);
                s.col2im(dcol, p0, t, dxb);
            }
        });
    });
    dx
}

/// The gradient with respect to the weight, `[cout, cin, kh, kw]`.
pub fn backward_weight(s: &ConvShape, x: &[f32], dy: &[f32]) -> Vec<f32> {
    let (k, p, cout) = (s.k(), s.p(), s.cout);
    let items: Vec<(usize, usize, usize)> = (0..s.batch)
        .flat_map(|b| s.tiles().map(move |(p0, t)| (b, p0, t)))
        .collect();
    let accumulate = |dw: &mut [f32], col: &mut [f32], items: &[(usize, usize, usize)], par: bool| {
        for &(b, p0, t) in items {
            let xb = &x[b * s.in_len()..][..s.in_len()];
            let dyv = Mat {
                data: &dy[b * cout * p + p0..],
                rows: cout,
                cols: t,
                rs: p,
                cs: 1,
            };
            let colt = if s.pointwise() {
                Mat {
                    data: &xb[p0..],
                    rows: t,
                    cols: s.cin,
                    rs: 1,
                    cs: p,
                }
            } else {
                let col = &mut col[..k * t];
                s.im2col(xb, p0, t, col, t);
                Mat::rows(col, k, t).t()
            };
            matmul(MatMut::rows(dw, cout, k), dyv, colt, true, par);
        }
    };
    let col_len = if s.pointwise() { 0 } else { k * s.tile() };
    let threads = rayon::current_num_threads();
    if threads > 1 && items.len() >= threads {
        let share = items.len().div_ceil(threads);
        items
            .par_chunks(share)
            .map(|part| {
                let mut dw = vec![0f32; cout * k];
                with_scratch(col_len, |col| accumulate(&mut dw, col, part, false));
                dw
            })
            .reduce_with(|mut a, b| {
                a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
                a
            })
            .unwrap_or_else(|| vec![0f32; cout * k])
    } else {
        let mut dw = vec![0f32; cout * k];
        with_scratch(col_len, |col| accumulate(&mut dw, col, &items, true));
        dw
    }
}

/// The gradient with respect to the bias: `dy` summed over images and pixels per channel.
pub fn backward_bias(s: &ConvShape, dy: &[f32]) -> Vec<f32> {
    let p = s.p();
    (0..s.cout)
        .into_par_iter()
        .map(|c| {
            (0..s.batch)
                .map(|b| f64::from(super::sum(&dy[(b * s.cout + c) * p..][..p])))
                .sum::<f64>() as f32
        })
        .collect()
}
