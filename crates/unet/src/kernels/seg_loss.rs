//! Cross-entropy and fastai's dice loss, and their sum, with the gradient, in one pass per
//! image (see `training::loss` for the definitions, the ignore label and the other losses).
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

/// fastai's `DiceLoss` default `smooth`.
pub const DICE_SMOOTH: f64 = 1e-6;

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

/// One image's logits `[classes, pixels]` and targets `[pixels]`.
#[derive(Clone, Copy)]
struct Image<'a> {
    z: &'a [f32],
    t: &'a [i64],
    classes: usize,
    pixels: usize,
}

impl Image<'_> {
    /// The pixel's true class, or None for an ignored pixel.
    fn label(&self, i: usize) -> Option<usize> {
        let t = self.t[i];
        (t >= 0 && (t as usize) < self.classes).then_some(t as usize)
    }
}

/// What the forward pass over one image leaves: the probabilities (class-major like the
/// logits), the cross-entropy summed over its labelled pixels, and dice's per-class sums
/// I (`inter`) and U (`union`).
struct Forward {
    p: Vec<f32>,
    ce: f64,
    inter: Vec<f64>,
    union: Vec<f64>,
}

/// Softmax of pixel `i` into `p` (max-shifted); returns the max and the sum of exponentials,
/// from which the pixel's log-probabilities follow.
fn softmax_pixel(img: Image, p: &mut [f32], i: usize) -> (f32, f32) {
    let Image { z, classes, pixels, .. } = img;
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
    (max, sum)
}

/// The softmax of every pixel, and the cross-entropy and dice sums over the labelled ones.
fn forward(img: Image, terms: Terms) -> Forward {
    let Image { z, classes, pixels, .. } = img;
    let mut f = Forward {
        p: vec![0f32; classes * pixels],
        ce: 0.0,
        inter: vec![0f64; classes],
        union: vec![0f64; classes],
    };
    for i in 0..pixels {
        let (max, sum) = softmax_pixel(img, &mut f.p, i);
        let Some(ti) = img.label(i) else { continue };
        if terms.ce {
            f.ce -= f64::from(z[ti * pixels + i] - max - sum.ln());
        }
        if terms.dice {
            for c in 0..classes {
                f.union[c] += f64::from(f.p[c * pixels + i]);
            }
            f.inter[ti] += f64::from(f.p[ti * pixels + i]);
            f.union[ti] += 1.0;
        }
    }
    f
}

/// Dice's per-class terms for one image, 1 − (2I + s)/(U + s) (summed by the caller, in class
/// order), and its per-class coefficients a_c (module docs) for a pixel of that class (`hit`)
/// and of another (`miss`).
struct Dice {
    per_class: Vec<f64>,
    hit: Vec<f32>,
    miss: Vec<f32>,
}

fn dice(f: &Forward, smooth: f64) -> Dice {
    let classes = f.inter.len();
    let mut d = Dice {
        per_class: vec![0f64; classes],
        hit: vec![0f32; classes],
        miss: vec![0f32; classes],
    };
    for c in 0..classes {
        let u = f.union[c] + smooth;
        d.per_class[c] = 1.0 - (2.0 * f.inter[c] + smooth) / u;
        let base = (2.0 * f.inter[c] + smooth) / (u * u);
        d.miss[c] = base as f32;
        d.hit[c] = (base - 2.0 / u) as f32;
    }
    d
}

/// The gradient with respect to one image's logits into `g` (ignored pixels stay 0):
/// (p_c − [c = t])/N for cross-entropy, p_j·(a_j − Σ_c p_c·a_c) for dice.
fn write_gradient(img: Image, f: &Forward, terms: Terms, dice: Option<&Dice>, inv_n: f32, g: &mut [f32]) {
    let Image { classes, pixels, .. } = img;
    let p = &f.p;
    for i in 0..pixels {
        let Some(ti) = img.label(i) else { continue };
        let a = |c: usize, d: &Dice| if c == ti { d.hit[c] } else { d.miss[c] };
        let s = dice.map_or(0.0, |d| (0..classes).map(|c| p[c * pixels + i] * a(c, d)).sum::<f32>());
        for c in 0..classes {
            let pc = p[c * pixels + i];
            let mut v = 0f32;
            if terms.ce {
                v += (pc - f32::from(u8::from(c == ti))) * inv_n;
            }
            if let Some(d) = dice {
                v += pc * (a(c, d) - s);
            }
            g[c * pixels + i] = v;
        }
    }
}

/// One image's share of the loss (its cross-entropy over the batch's N labelled pixels, its
/// dice), with its gradient written into `g` when given.
fn image_loss(img: Image, terms: Terms, smooth: f64, n: f64, g: Option<&mut [f32]>) -> f64 {
    let f = forward(img, terms);
    let dice = terms.dice.then(|| dice(&f, smooth));
    let mut value = if terms.ce { f.ce / n } else { 0.0 };
    for t in dice.iter().flat_map(|d| &d.per_class) {
        value += t;
    }
    if let Some(g) = g {
        write_gradient(img, &f, terms, dice.as_ref(), (1.0 / n) as f32, g);
    }
    value
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
    let n = target
        .iter()
        .filter(|&&t| t >= 0 && (t as usize) < classes)
        .count()
        .max(1) as f64;
    let per_image = classes * pixels;
    let image = |b: usize| Image {
        z: &logits[b * per_image..(b + 1) * per_image],
        t: &target[b * pixels..(b + 1) * pixels],
        classes,
        pixels,
    };
    if with_grad {
        let mut grad = vec![0f32; logits.len()];
        let value = grad
            .par_chunks_mut(per_image)
            .enumerate()
            .map(|(b, g)| image_loss(image(b), terms, smooth, n, Some(g)))
            .sum();
        (value, Some(grad))
    } else {
        let value = (0..batch)
            .into_par_iter()
            .map(|b| image_loss(image(b), terms, smooth, n, None))
            .sum();
        (value, None)
    }
}
