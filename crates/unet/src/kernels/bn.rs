//! BatchNorm (optionally followed by ReLU) on the CPU over NCHW `f32` data, forward with
//! batch or running statistics and backward with batch statistics, in two passes over the
//! data each: one per channel for the sums (in `f64` across planes), one per plane to write.
//!
//! With ReLU fused, the backward pass recomputes the output's sign from the input (the same
//! `x·scale + shift` as the forward pass) instead of keeping the output.

use rayon::prelude::*;

use super::{sum, sum_by};

/// A `[batch, channels, pixels]` layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Planes {
    pub batch: usize,
    pub channels: usize,
    pub pixels: usize,
}

impl Planes {
    fn plane<'a>(&self, x: &'a [f32], b: usize, c: usize) -> &'a [f32] {
        &x[(b * self.channels + c) * self.pixels..][..self.pixels]
    }

    fn n(&self) -> f64 {
        (self.batch * self.pixels) as f64
    }

    /// Planes per rayon task: about 16 K values each.
    fn min_len(&self) -> usize {
        (16 * 1024 / self.pixels.max(1)).max(1)
    }

    /// Writes `out[b, c, i] = f(c, i, value at [b, c, i])` over planes in parallel.
    fn map(&self, out: &mut [f32], f: impl Fn(usize, &mut [f32]) + Sync) {
        if self.pixels == 0 {
            return;
        }
        out.par_chunks_mut(self.pixels)
            .with_min_len(self.min_len())
            .enumerate()
            .for_each(|(i, plane)| f(i, plane));
    }
}

/// Per-channel mean and biased variance (two passes, so no cancellation).
pub fn stats(l: &Planes, x: &[f32]) -> (Vec<f32>, Vec<f32>) {
    (0..l.channels)
        .into_par_iter()
        .map(|c| {
            let mean = (0..l.batch).map(|b| f64::from(sum(l.plane(x, b, c)))).sum::<f64>() / l.n();
            let m = mean as f32;
            let ss = (0..l.batch)
                .map(|b| f64::from(sum_by(l.plane(x, b, c), |v| (v - m) * (v - m))))
                .sum::<f64>();
            (m, (ss / l.n()) as f32)
        })
        .unzip()
}

/// `1 / sqrt(var + eps)` per channel.
pub fn inv_std(var: &[f32], eps: f64) -> Vec<f32> {
    var.iter()
        .map(|&v| (1.0 / (f64::from(v) + eps).sqrt()) as f32)
        .collect()
}

/// Per-channel `scale = gamma·inv_std`, `shift = beta − mean·scale`.
fn affine(gamma: &[f32], beta: &[f32], mean: &[f32], inv_std: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let scale: Vec<f32> = gamma.iter().zip(inv_std).map(|(g, s)| g * s).collect();
    let shift = beta.iter().zip(mean).zip(&scale).map(|((b, m), s)| b - m * s).collect();
    (scale, shift)
}

/// `y = x·scale + shift` per channel, then ReLU if asked.
#[allow(clippy::too_many_arguments)]
pub fn forward(
    l: &Planes,
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    mean: &[f32],
    inv_std: &[f32],
    relu: bool,
) -> Vec<f32> {
    let (scale, shift) = affine(gamma, beta, mean, inv_std);
    let mut y = super::zeroed(x.len());
    l.map(&mut y, |i, plane| {
        let c = i % l.channels;
        let (s, t) = (scale[c], shift[c]);
        let src = &x[i * l.pixels..][..l.pixels];
        if relu {
            plane.iter_mut().zip(src).for_each(|(o, v)| *o = (v * s + t).max(0.0));
        } else {
            plane.iter_mut().zip(src).for_each(|(o, v)| *o = v * s + t);
        }
    });
    y
}

/// Gradients `(dx, dgamma, dbeta)` of BatchNorm with batch statistics `mean`, `inv_std`.
#[allow(clippy::too_many_arguments)]
pub fn backward(
    l: &Planes,
    x: &[f32],
    dy: &[f32],
    gamma: &[f32],
    beta: &[f32],
    mean: &[f32],
    inv_std: &[f32],
    relu: bool,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (scale, shift) = affine(gamma, beta, mean, inv_std);
    let (dgamma, dbeta): (Vec<f32>, Vec<f32>) = (0..l.channels)
        .into_par_iter()
        .map(|c| {
            let ch = Channel::new(c, mean, inv_std, &scale, &shift);
            let (mut sg, mut sgx) = (0f64, 0f64);
            for b in 0..l.batch {
                let (xs, gs) = (l.plane(x, b, c), l.plane(dy, b, c));
                // monomorphised on `relu` (the form measured 1.4× faster; the runtime flag
                // alone was not measured apart)
                let (a, ax) = if relu {
                    ch.sums::<true>(xs, gs)
                } else {
                    ch.sums::<false>(xs, gs)
                };
                sg += f64::from(a);
                sgx += f64::from(ax);
            }
            (sgx as f32, sg as f32)
        })
        .unzip();
    let n = l.n() as f32;
    let mut dx = super::zeroed(x.len());
    l.map(&mut dx, |i, plane| {
        let c = i % l.channels;
        let ch = Channel::new(c, mean, inv_std, &scale, &shift);
        let (mg, mgx) = (dbeta[c] / n, dgamma[c] / n);
        let xs = &x[i * l.pixels..][..l.pixels];
        let gs = &dy[i * l.pixels..][..l.pixels];
        for ((o, &v), &g) in plane.iter_mut().zip(xs).zip(gs) {
            let xhat = (v - ch.mean) * ch.inv_std;
            *o = ch.scale * (ch.grad(relu, v, g) - mg - xhat * mgx);
        }
    });
    (dx, dgamma, dbeta)
}

/// One channel's numbers, read out of their vectors once per plane rather than per value (the
/// closure that indexed them per value kept the backward pass's loops from vectorising; it
/// ran at 1.4× this one's time, same arithmetic).
#[derive(Clone, Copy)]
struct Channel {
    mean: f32,
    inv_std: f32,
    scale: f32,
    shift: f32,
}

impl Channel {
    fn new(c: usize, mean: &[f32], inv_std: &[f32], scale: &[f32], shift: &[f32]) -> Channel {
        Channel {
            mean: mean[c],
            inv_std: inv_std[c],
            scale: scale[c],
            shift: shift[c],
        }
    }

    /// The output gradient `g` at input `v`, zero where a fused ReLU cut the output off.
    #[inline(always)]
    fn grad(&self, relu: bool, v: f32, g: f32) -> f32 {
        if relu && v * self.scale + self.shift <= 0.0 {
            0.0
        } else {
            g
        }
    }

    /// `(Σ g, Σ g·x̂)` over one plane, in eight `f32` lanes (the order of the sums fixes the
    /// rounding: keep it).
    #[inline(always)]
    fn sums<const RELU: bool>(&self, xs: &[f32], gs: &[f32]) -> (f32, f32) {
        let (m, is) = (self.mean, self.inv_std);
        let (mut a, mut ax) = ([0f32; 8], [0f32; 8]);
        let (xc, gc) = (xs.chunks_exact(8), gs.chunks_exact(8));
        let (xr, gr) = (xc.remainder(), gc.remainder());
        for (xv, gv) in xc.zip(gc) {
            let (xv, gv): (&[f32; 8], &[f32; 8]) = (xv.try_into().unwrap(), gv.try_into().unwrap());
            for j in 0..8 {
                let g = self.grad(RELU, xv[j], gv[j]);
                a[j] += g;
                ax[j] += g * ((xv[j] - m) * is);
            }
        }
        for (&v, &g) in xr.iter().zip(gr) {
            let g = self.grad(RELU, v, g);
            a[0] += g;
            ax[0] += g * ((v - m) * is);
        }
        (a.iter().sum::<f32>(), ax.iter().sum::<f32>())
    }
}
