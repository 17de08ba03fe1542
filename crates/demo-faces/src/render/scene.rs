//! One synthetic photo: its random background and faces, drawn from the seeded generator in a
//! fixed order, and the 2×2-supersampled rendering of it into the photo, the label mask and
//! the per-pixel skin owner.

use facepipe_core::rng::SplitMix64;

use super::{Face, Rgb, class, hash01};

#[derive(Clone, Debug)]
enum Background {
    Solid(Rgb),
    Gradient(Rgb, Rgb, bool),
    Blocks(Vec<(f64, f64, f64, f64, Rgb)>, Rgb),
}

impl Background {
    fn random(r: &mut SplitMix64, w: f64, h: f64) -> Self {
        let col = |r: &mut SplitMix64| {
            [
                r.range(10.0, 245.0) as f32,
                r.range(10.0, 245.0) as f32,
                r.range(10.0, 245.0) as f32,
            ]
        };
        match r.below(3) {
            0 => Background::Solid(col(r)),
            1 => Background::Gradient(col(r), col(r), r.chance(0.5)),
            _ => {
                let base = col(r);
                let blocks = (0..2 + r.below(5))
                    .map(|_| {
                        let (x, y) = (r.range(0.0, w), r.range(0.0, h));
                        (
                            x,
                            y,
                            x + r.range(w * 0.1, w * 0.6),
                            y + r.range(h * 0.1, h * 0.6),
                            col(r),
                        )
                    })
                    .collect();
                Background::Blocks(blocks, base)
            }
        }
    }

    fn at(&self, x: f64, y: f64, w: f64, h: f64) -> Rgb {
        match self {
            Background::Solid(c) => *c,
            Background::Gradient(a, b, vertical) => {
                let t = if *vertical { y / h } else { x / w } as f32;
                [0, 1, 2].map(|i| a[i] * (1.0 - t) + b[i] * t)
            }
            Background::Blocks(blocks, base) => blocks
                .iter()
                .rev()
                .find(|(x0, y0, x1, y1, _)| x >= *x0 && x < *x1 && y >= *y0 && y < *y1)
                .map_or(*base, |b| b.4),
        }
    }
}

/// One synthetic photo: background and faces, back to front.
#[derive(Clone, Debug)]
pub struct Scene {
    pub width: u32,
    pub height: u32,
    background: Background,
    /// Back to front; the last is the front-most.
    pub faces: Vec<Face>,
    noise_seed: u64,
}

impl Scene {
    pub fn random(r: &mut SplitMix64, width: u32, height: u32, two_faces: f64) -> Scene {
        let (w, h) = (f64::from(width), f64::from(height));
        let m = w.min(h);
        let background = Background::random(r, w, h);
        let mut faces = Vec::new();
        if r.chance(two_faces) {
            // Two smaller faces side by side, one further back.
            let s1 = m * r.range(0.13, 0.17);
            let s2 = s1 * r.range(0.75, 0.95);
            let left_first = r.chance(0.5);
            let (x1, x2) = if left_first { (0.32, 0.7) } else { (0.68, 0.3) };
            let y2 = h * r.range(0.38, 0.48);
            faces.push(Face::random(r, w * x2, y2, s2));
            let y1 = h * r.range(0.40, 0.50);
            faces.push(Face::random(r, w * x1, y1, s1));
        } else {
            let s = m * r.range(0.2, 0.28);
            let (x, y) = (w / 2.0 + r.range(-0.12, 0.12) * w, h * r.range(0.42, 0.52));
            faces.push(Face::random(r, x, y, s));
        }
        Scene {
            width,
            height,
            background,
            faces,
            noise_seed: r.next_u64(),
        }
    }

    /// Class, colour and face index (or `u8::MAX` for background) at an image sample.
    fn sample(&self, x: f64, y: f64, px: u32, py: u32) -> (u8, Rgb, u8) {
        for (k, f) in self.faces.iter().enumerate().rev() {
            if let Some((c, rgb)) = f.sample(x, y, px, py) {
                return (c, rgb, k as u8);
            }
        }
        let (w, h) = (f64::from(self.width), f64::from(self.height));
        (class::BACKGROUND, self.background.at(x, y, w, h), u8::MAX)
    }

    /// Renders the photo (RGB8), the label (RGB8 in `palette`), and per pixel the face that owns
    /// it fully (all four samples skin-or-other of that face; `u8::MAX` otherwise) and whether all
    /// four samples are face skin.
    pub fn render(&self, palette: &[[u8; 3]], aa_labels: bool) -> Rendered {
        let (w, h) = (self.width as usize, self.height as usize);
        let mut photo = vec![0u8; w * h * 3];
        let mut label = vec![0u8; w * h * 3];
        let mut skin_of = vec![u8::MAX; w * h];
        const OFF: [(f64, f64); 4] = [(0.25, 0.25), (0.75, 0.25), (0.25, 0.75), (0.75, 0.75)];
        for py in 0..h {
            for px in 0..w {
                let mut acc = [0f32; 3];
                let mut classes = [0u8; 4];
                let mut owners = [0u8; 4];
                for (i, (ox, oy)) in OFF.iter().enumerate() {
                    let (c, rgb, k) = self.sample(px as f64 + ox, py as f64 + oy, px as u32, py as u32);
                    classes[i] = c;
                    owners[i] = k;
                    for j in 0..3 {
                        acc[j] += rgb[j];
                    }
                }
                let n = hash01(self.noise_seed, px as u32, py as u32) * 4.0 - 2.0; // sensor noise
                let o = (py * w + px) * 3;
                for j in 0..3 {
                    photo[o + j] = (acc[j] / 4.0 + n).round().clamp(0.0, 255.0) as u8;
                }
                let uniform = classes.iter().all(|&c| c == classes[0]);
                let rgb = if uniform {
                    palette[usize::from(classes[0])]
                } else if aa_labels {
                    let mut s = [0u32; 3];
                    for &c in &classes {
                        for j in 0..3 {
                            s[j] += u32::from(palette[usize::from(c)][j]);
                        }
                    }
                    s.map(|v| ((v + 2) / 4) as u8)
                } else {
                    palette[usize::from(majority(&classes))]
                };
                label[o..o + 3].copy_from_slice(&rgb);
                if uniform && classes[0] == class::SKIN && owners.iter().all(|&k| k == owners[0]) {
                    skin_of[py * w + px] = owners[0];
                }
            }
        }
        Rendered { photo, label, skin_of }
    }
}

/// Pixel buffers of a rendered scene.
#[derive(Debug)]
pub struct Rendered {
    pub photo: Vec<u8>,
    pub label: Vec<u8>,
    /// Per pixel: index of the face whose skin fully covers it, or `u8::MAX`.
    pub skin_of: Vec<u8>,
}

fn majority(c: &[u8; 4]) -> u8 {
    let mut best = (0, c[0]);
    for &x in c {
        let n = c.iter().filter(|&&y| y == x).count();
        if n > best.0 {
            best = (n, x);
        }
    }
    best.1
}
