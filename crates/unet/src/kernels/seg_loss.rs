//! Cross-entropy and fastai's dice loss, and their sum, with the gradient, in one pass per
//! image (see `training::loss` for the definitions and the ignore label).
//!
//! As burn operations the `"ce+dice"` loss is some twenty element-wise passes over the
//! `[batch, classes, h, w]` logits (softmax twice, a one-hot scatter, products and sums, each
//! allocating) forward and as many backward, on one thread: about a seventh of a CPU training
//! step at 128². Here each image's softmax is computed once, per-class sums in `f64`, and the
//! gradient with respect to the logits is written in the same call, images in parallel;
//! autodiff's backward node only scales it by the upstream gradient.
//!
//! Gradients, for a labelled pixel with probabilities p, true class t and N labelled pixels
//! in the batch (an ignored pixel gets 0):
//! * cross-entropy, mean over the pixels: ∂/∂z_c = (p_c − [c = t]) / N;
//! * dice, Σ over images and classes of 1 − (2I + s)/(U + s) with I = Σ p_c·[c = t] and
//!   U = Σ (p_c + [c = t]) over the image's labelled pixels: with
//!   a_c = (2I + s)/(U + s)² − 2[c = t]/(U + s), ∂/∂z_j = p_j·(a_j − Σ_c p_c·a_c).

use rayon::prelude::*;

/// Which terms the loss sums.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Terms {
    pub ce: bool,
    pub dice: bool,
}

/// The logits' shape: `[batch, classes, pixels]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dims {
    pub batch: usize,
    pub classes: usize,
    pub pixels: usize,
}

/// Logits `[batch, classes, pixels]`, targets `[batch, pixels]` (a class, or anything at or
/// above `classes` — 255 — for an ignored pixel). Returns the loss and, if `with_grad`, its
/// gradient with respect to the logits (same layout).
pub fn loss(
    logits: &[f32],
    target: &[i64],
    dims: Dims,
    terms: Terms,
    smooth: f64,
    with_grad: bool,
) -> (f64, Option<Vec<f32>>) {
    let Dims { batch, classes, pixels } = dims;
    assert_eq!(logits.len(), batch * classes * pixels, "loss: logits shape");
    assert_eq!(target.len(), batch * pixels, "loss: target shape");
    let labelled = |t: i64| t >= 0 && (t as usize) < classes;
    let n = target.iter().filter(|&&t| labelled(t)).count().max(1) as f64;
    let mut grad = if with_grad {
        vec![0f32; logits.len()]
    } else {
        Vec::new()
    };
    let per_image = classes * pixels;
    let run = |(b, g): (usize, Option<&mut [f32]>)| -> f64 {
        let z = &logits[b * per_image..(b + 1) * per_image];
        let t = &target[b * pixels..(b + 1) * pixels];
        // probabilities, class-major like the logits
        let mut p = vec![0f32; per_image];
        let mut ce = 0f64;
        let (mut inter, mut union) = (vec![0f64; classes], vec![0f64; classes]);
        for i in 0..pixels {
            let max = (0..classes)
                .map(|c| z[c * pixels + i])
                .fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0f32;
            for c in 0..classes {
                let e = (z[c * pixels + i] - max).exp();
                p[c * pixels + i] = e;
                sum += e;
            }
            for c in 0..classes {
                p[c * pixels + i] /= sum;
            }
            if !labelled(t[i]) {
                continue;
            }
            let ti = t[i] as usize;
            if terms.ce {
                ce -= f64::from(z[ti * pixels + i] - max - sum.ln());
            }
            if terms.dice {
                for c in 0..classes {
                    union[c] += f64::from(p[c * pixels + i]);
                }
                inter[ti] += f64::from(p[ti * pixels + i]);
                union[ti] += 1.0;
            }
        }
        let mut value = if terms.ce { ce / n } else { 0.0 };
        let mut a_hit = vec![0f32; classes];
        let mut a_miss = vec![0f32; classes];
        if terms.dice {
            for c in 0..classes {
                let u = union[c] + smooth;
                value += 1.0 - (2.0 * inter[c] + smooth) / u;
                let base = (2.0 * inter[c] + smooth) / (u * u);
                a_miss[c] = base as f32;
                a_hit[c] = (base - 2.0 / u) as f32;
            }
        }
        if let Some(g) = g {
            let inv_n = (1.0 / n) as f32;
            for i in 0..pixels {
                if !labelled(t[i]) {
                    continue; // stays 0
                }
                let ti = t[i] as usize;
                let s = if terms.dice {
                    (0..classes)
                        .map(|c| p[c * pixels + i] * if c == ti { a_hit[c] } else { a_miss[c] })
                        .sum::<f32>()
                } else {
                    0.0
                };
                for c in 0..classes {
                    let pc = p[c * pixels + i];
                    let hit = c == ti;
                    let mut v = 0f32;
                    if terms.ce {
                        v += (pc - f32::from(u8::from(hit))) * inv_n;
                    }
                    if terms.dice {
                        v += pc * (if hit { a_hit[c] } else { a_miss[c] } - s);
                    }
                    g[c * pixels + i] = v;
                }
            }
        }
        value
    };
    let value: f64 = if with_grad {
        grad.par_chunks_mut(per_image)
            .enumerate()
            .map(|(b, g)| run((b, Some(g))))
            .sum()
    } else {
        (0..batch).into_par_iter().map(|b| run((b, None))).sum()
    };
    (value, with_grad.then_some(grad))
}
