//! Where the faces and cheeks are, from a class-index mask alone.
//!
//! * **Faces**: connected components (8-neighbour) of the face-region classes (skin, eyes,
//!   nose, lips, brows, teeth, facial hair, glasses; not hair, not ears), largest first;
//!   components below [`Placement::min_face_px`] are noise.
//! * **Axes**: the two largest eye blobs of a face give its horizontal axis x̂ (image left to
//!   image right eye) and the inter-eye distance; ŷ ⟂ x̂ points down the face. With one eye
//!   visible, the nose→lips line gives ŷ and the eye's distance from that line half the
//!   inter-eye distance; only that eye's cheek is placed. With no eye visible but glasses
//!   (sunglasses hide the eyes), the glasses' pixels on each side of the nose→lips line stand
//!   in for the eyes (their median, which the temple arms barely move).
//! * **Cheek centre**: below each eye, beside the nose: [`Placement::cheek_out`] inter-eye
//!   distances out from the face's midline, and [`Placement::cheek_down`] of the way from eye
//!   level to mouth level (the lips' centroid), or, with no lips visible,
//!   [`Placement::cheek_down_nose`] of the way to the bottom of the nose. The defaults put the
//!   patch under the outer half of the eye, level with the lower nose, above the mouth corners,
//!   on the malar skin a person measuring by hand would choose.
//! * **Face width** (bizygomatic): the face region's extent along x̂ through the point halfway
//!   between eye level and the bottom of the nose. **fWHR** = that width over the distance from
//!   the brows' centroid to the top of the upper lip, both along ŷ.
//!
//! "Left" is the subject's left, on the image's right.

use std::collections::VecDeque;

/// The class indices this module needs.
#[derive(Clone, Debug)]
pub struct Roles {
    pub skin: u8,
    pub eyes: u8,
    pub nose: u8,
    pub lips: u8,
    pub brows: u8,
    /// Glasses: where no eye is visible (sunglasses), the lenses stand in for the eyes.
    pub glasses: Option<u8>,
    /// Every class that belongs to a face (lookup by class index).
    pub face_region: [bool; 256],
}

/// Tunable geometry (all relative to the face's own size).
#[derive(Clone, Debug)]
pub struct Placement {
    pub cheek_out: f64,
    pub cheek_down: f64,
    pub cheek_down_nose: f64,
    /// Smallest face component, pixels.
    pub min_face_px: usize,
}

impl Default for Placement {
    fn default() -> Self {
        Placement {
            cheek_out: 0.66,
            cheek_down: 0.5,
            cheek_down_nose: 0.8,
            min_face_px: 400,
        }
    }
}

pub type P = (f64, f64);

fn sub(a: P, b: P) -> P {
    (a.0 - b.0, a.1 - b.1)
}
fn add(a: P, b: P) -> P {
    (a.0 + b.0, a.1 + b.1)
}
fn mul(a: P, k: f64) -> P {
    (a.0 * k, a.1 * k)
}
fn dot(a: P, b: P) -> f64 {
    a.0 * b.0 + a.1 * b.1
}
fn norm(a: P) -> f64 {
    a.0.hypot(a.1)
}

/// One cheek's placement, or why there is none.
#[derive(Clone, Debug, PartialEq)]
pub enum Cheek {
    At(P),
    Missing(String),
}

/// A face found in a mask.
#[derive(Clone, Debug)]
pub struct Face {
    /// Pixel indices (y·w + x) of the face region, in this component.
    pub pixels: Vec<u32>,
    /// Component label in the label image (1-based).
    pub label: u32,
    pub eye_distance: Option<f64>,
    /// Bizygomatic width in pixels.
    pub width: Option<f64>,
    pub fwhr: Result<f64, String>,
    /// Subject's left (image right) and right cheek centres.
    pub left: Cheek,
    pub right: Cheek,
    /// Eye centroids found (for the QC pictures).
    pub eyes: Vec<P>,
    /// The eyes were placed from the glasses.
    pub eyes_from_glasses: bool,
}

/// Connected components (8-neighbour) of `keep`; returns the label image (0 = none) and each
/// component's pixels, largest first (labels renumbered in that order).
pub fn components(keep: &[bool], w: usize, h: usize) -> (Vec<u32>, Vec<Vec<u32>>) {
    let mut label = vec![0u32; w * h];
    let mut comps: Vec<Vec<u32>> = Vec::new();
    let mut queue = VecDeque::new();
    for start in 0..w * h {
        if !keep[start] || label[start] != 0 {
            continue;
        }
        let id = comps.len() as u32 + 1;
        let mut px = vec![start as u32];
        label[start] = id;
        queue.push_back(start);
        while let Some(i) = queue.pop_front() {
            let (x, y) = ((i % w) as i64, (i / w) as i64);
            for dy in -1..=1 {
                for dx in -1..=1 {
                    let (nx, ny) = (x + dx, y + dy);
                    if nx < 0 || ny < 0 || nx >= w as i64 || ny >= h as i64 {
                        continue;
                    }
                    let j = ny as usize * w + nx as usize;
                    if keep[j] && label[j] == 0 {
                        label[j] = id;
                        px.push(j as u32);
                        queue.push_back(j);
                    }
                }
            }
        }
        comps.push(px);
    }
    let mut order: Vec<usize> = (0..comps.len()).collect();
    order.sort_by_key(|&k| std::cmp::Reverse(comps[k].len()));
    let mut renumber = vec![0u32; comps.len() + 1];
    for (new, &old) in order.iter().enumerate() {
        renumber[old + 1] = new as u32 + 1;
    }
    for l in &mut label {
        *l = renumber[*l as usize];
    }
    let mut sorted: Vec<Vec<u32>> = Vec::with_capacity(comps.len());
    let mut comps: Vec<Option<Vec<u32>>> = comps.into_iter().map(Some).collect();
    for &k in &order {
        sorted.push(comps[k].take().expect("each once"));
    }
    (label, sorted)
}

fn centroid(px: &[(f64, f64)]) -> Option<P> {
    (!px.is_empty()).then(|| {
        let n = px.len() as f64;
        let s = px.iter().fold((0.0, 0.0), |a, p| add(a, *p));
        (s.0 / n, s.1 / n)
    })
}

/// The `q`-quantile of values (nearest rank).
fn quantile(mut v: Vec<f64>, q: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[((v.len() - 1) as f64 * q).round() as usize])
}

/// Finds the faces of a `w`×`h` class mask and places their cheeks.
pub fn find_faces(mask: &[u8], w: usize, h: usize, roles: &Roles, place: &Placement) -> (Vec<u32>, Vec<Face>) {
    let keep: Vec<bool> = mask.iter().map(|&v| roles.face_region[usize::from(v)]).collect();
    let (labels, comps) = components(&keep, w, h);
    let faces = comps
        .into_iter()
        .enumerate()
        .take_while(|(_, px)| px.len() >= place.min_face_px)
        .map(|(k, px)| face_of(mask, &labels, w, h, k as u32 + 1, px, roles, place))
        .collect();
    (labels, faces)
}

/// Eye blobs (connected eye pixels) inside one face, largest first: (area, centroid).
fn eye_blobs(mask: &[u8], labels: &[u32], w: usize, id: u32, px: &[u32], eye: u8) -> Vec<(usize, P)> {
    let (mut x0, mut y0, mut x1, mut y1) = (usize::MAX, usize::MAX, 0, 0);
    for &i in px {
        let (x, y) = (i as usize % w, i as usize / w);
        (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x), y1.max(y));
    }
    let (bw, bh) = (x1 - x0 + 1, y1 - y0 + 1);
    let keep: Vec<bool> = (0..bw * bh)
        .map(|k| {
            let (x, y) = (x0 + k % bw, y0 + k / bw);
            let i = y * w + x;
            mask[i] == eye && labels[i] == id
        })
        .collect();
    let (_, blobs) = components(&keep, bw, bh);
    blobs
        .into_iter()
        .map(|b| {
            let pts: Vec<P> = b
                .iter()
                .map(|&k| ((x0 + k as usize % bw) as f64 + 0.5, (y0 + k as usize / bw) as f64 + 0.5))
                .collect();
            (b.len(), centroid(&pts).expect("non-empty"))
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn face_of(
    mask: &[u8],
    labels: &[u32],
    w: usize,
    h: usize,
    id: u32,
    px: Vec<u32>,
    roles: &Roles,
    place: &Placement,
) -> Face {
    let at = |i: u32| ((i as usize % w) as f64 + 0.5, (i as usize / w) as f64 + 0.5);
    let class_pts = |c: u8| -> Vec<P> { px.iter().filter(|&&i| mask[i as usize] == c).map(|&i| at(i)).collect() };
    let (nose, lips, brows) = (class_pts(roles.nose), class_pts(roles.lips), class_pts(roles.brows));
    let (nose_c, lips_c) = (centroid(&nose), centroid(&lips));
    let mut blobs = eye_blobs(mask, labels, w, id, &px, roles.eyes);
    // specks (a few pixels of a misclassified border) are not eyes
    let biggest = blobs.first().map_or(0, |b| b.0);
    blobs.retain(|b| b.0 * 5 >= biggest && b.0 >= 4);
    let mut face = Face {
        pixels: Vec::new(),
        label: id,
        eye_distance: None,
        width: None,
        fwhr: Err(String::new()),
        left: Cheek::Missing(String::new()),
        right: Cheek::Missing(String::new()),
        eyes: vec![],
        eyes_from_glasses: false,
    };
    let both = |why: &str, f: &mut Face| {
        f.left = Cheek::Missing(why.into());
        f.right = Cheek::Missing(why.into());
        f.fwhr = Err(why.into());
    };
    let mut from_glasses = false;
    if blobs.is_empty()
        && let (Some(g), Some(n), Some(l)) = (roles.glasses, nose_c, lips_c)
        && norm(sub(l, n)) > 1.0
    {
        let yv = mul(sub(l, n), 1.0 / norm(sub(l, n)));
        let xv = (yv.1, -yv.0);
        let (mut left, mut right): (Vec<P>, Vec<P>) = (vec![], vec![]);
        for p in class_pts(g) {
            // lenses are above the nose's centre
            if dot(sub(p, n), yv) < 0.0 {
                if dot(sub(p, n), xv) > 0.0 {
                    right.push(p)
                } else {
                    left.push(p)
                }
            }
        }
        let median = |v: &[P]| -> Option<P> {
            let q = |f: fn(&P) -> f64| quantile(v.iter().map(f).collect(), 0.5);
            Some((q(|p| p.0)?, q(|p| p.1)?))
        };
        if left.len() >= 4
            && right.len() >= 4
            && let (Some(a), Some(b)) = (median(&left), median(&right))
        {
            blobs = vec![(left.len(), a), (right.len(), b)];
            from_glasses = true;
        }
    }
    // the face's frame: mid point between the eyes, x̂ to the image-right eye, ŷ down
    let frame: Option<(P, P, P, f64, Option<bool>)> = match blobs.len() {
        0 => {
            both("no eye visible", &mut face);
            None
        }
        1 => match (nose_c, lips_c) {
            (Some(n), Some(l)) if norm(sub(l, n)) > 1.0 => {
                let yv = mul(sub(l, n), 1.0 / norm(sub(l, n)));
                let xv = (yv.1, -yv.0);
                let e = blobs[0].1;
                let off = dot(sub(e, n), xv);
                let mid = sub(e, mul(xv, off));
                // the visible eye is on the image's right when it is right of the nose line
                Some((mid, xv, yv, 2.0 * off.abs(), Some(off > 0.0)))
            }
            _ => {
                both("one eye visible and no nose and lips to orient the face by", &mut face);
                None
            }
        },
        2 => {
            let (a, b) = (blobs[0].1, blobs[1].1);
            let (l, r) = if a.0 <= b.0 { (a, b) } else { (b, a) };
            let d = norm(sub(r, l));
            let xv = mul(sub(r, l), 1.0 / d.max(1e-9));
            Some((mul(add(l, r), 0.5), xv, (-xv.1, xv.0), d, None))
        }
        _ => {
            both("more than two eyes in one face region (overlapping faces?)", &mut face);
            None
        }
    };
    face.eyes = blobs.iter().take(2).map(|b| b.1).collect();
    face.eyes_from_glasses = from_glasses;
    let Some((mid, xv, yv, iod, one_side)) = frame else {
        face.pixels = px;
        return face;
    };
    face.eye_distance = Some(iod);
    let proj = |pts: &[P]| -> Vec<f64> { pts.iter().map(|&p| dot(sub(p, mid), yv)).collect() };
    let nose_bottom = quantile(proj(&nose), 0.98).filter(|&d| d > 0.0);
    let lip_level = lips_c.map(|c| dot(sub(c, mid), yv)).filter(|&d| d > 0.0);
    let lip_top = quantile(proj(&lips), 0.02).filter(|&d| d > 0.0);
    let brow = centroid(&brows).map(|c| dot(sub(c, mid), yv));

    // bizygomatic width along x̂, halfway between eye level and the bottom of the nose
    let inside = |p: P| -> bool {
        let (x, y) = (p.0.floor(), p.1.floor());
        if x < 0.0 || y < 0.0 || x >= w as f64 || y >= h as f64 {
            return false;
        }
        labels[y as usize * w + x as usize] == id
    };
    if let Some(nb) = nose_bottom {
        let o = add(mid, mul(yv, nb / 2.0));
        let reach = |sign: f64| -> f64 {
            let (mut t, mut last, mut gap) = (0.0, 0.0, 0.0);
            while gap < 3.0 && t < (w + h) as f64 {
                if inside(add(o, mul(xv, sign * t))) {
                    last = t;
                    gap = 0.0;
                } else {
                    gap += 0.5;
                }
                t += 0.5;
            }
            last
        };
        face.width = Some(reach(1.0) + reach(-1.0) + 1.0);
    }
    face.fwhr = match (face.width, brow, lip_top) {
        (None, ..) => Err("no nose visible (face width is measured at mid-nose height)".into()),
        (_, None, _) => Err("no eyebrows visible".into()),
        (_, _, None) => Err("no lips visible".into()),
        (Some(wd), Some(b), Some(t)) if t > b => Ok(wd / (t - b)),
        _ => Err("eyebrows not above the upper lip".into()),
    };

    let level = match (lip_level, nose_bottom) {
        (Some(l), _) => Some(place.cheek_down * l),
        (None, Some(n)) => Some(place.cheek_down_nose * n),
        _ => None,
    };
    let Some(level) = level else {
        face.left = Cheek::Missing("no lips or nose visible to place the cheek by".into());
        face.right = face.left.clone();
        face.pixels = px;
        return face;
    };
    let centre = |sign: f64| Cheek::At(add(add(mid, mul(xv, sign * place.cheek_out * iod)), mul(yv, level)));
    match one_side {
        None => {
            face.left = centre(1.0);
            face.right = centre(-1.0);
        }
        Some(true) => {
            face.left = centre(1.0);
            face.right = Cheek::Missing("right eye not visible".into());
        }
        Some(false) => {
            face.right = centre(-1.0);
            face.left = Cheek::Missing("left eye not visible".into());
        }
    }
    face.pixels = px;
    face
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub const BG: u8 = 0;
    pub const SKIN: u8 = 8;
    pub const EYES: u8 = 2;
    pub const NOSE: u8 = 3;
    pub const LIPS: u8 = 1;
    pub const BROWS: u8 = 6;
    pub const HAIR: u8 = 4;

    pub fn roles() -> Roles {
        let mut face_region = [false; 256];
        for c in [SKIN, EYES, NOSE, LIPS, BROWS, 7, 9, 10] {
            face_region[usize::from(c)] = true;
        }
        Roles {
            skin: SKIN,
            eyes: EYES,
            nose: NOSE,
            lips: LIPS,
            brows: BROWS,
            glasses: Some(10),
            face_region,
        }
    }

    /// A synthetic face in face units (u right, v down), drawn at centre (cx, cy), half-width
    /// `s` px, rotated by `theta` (clockwise): an ellipse of skin with eyes at (±0.38, −0.2),
    /// brows at −0.45, a nose from −0.2 to 0.32, lips at 0.64. `hide_left_eye` skins over the
    /// subject's left eye.
    #[allow(clippy::too_many_arguments)]
    pub fn draw(mask: &mut [u8], w: usize, h: usize, cx: f64, cy: f64, s: f64, theta: f64, hide_left_eye: bool) {
        let (sn, cs) = theta.sin_cos();
        for y in 0..h {
            for x in 0..w {
                let (dx, dy) = (x as f64 + 0.5 - cx, y as f64 + 0.5 - cy);
                let u = (cs * dx + sn * dy) / s;
                let v = (-sn * dx + cs * dy) / s;
                let ell = |cu: f64, cv: f64, ru: f64, rv: f64| ((u - cu) / ru).powi(2) + ((v - cv) / rv).powi(2) <= 1.0;
                if !ell(0.0, 0.0, 1.0, 1.3) {
                    continue;
                }
                let mut c = SKIN;
                if ell(0.38, -0.2, 0.15, 0.07) && !hide_left_eye || ell(-0.38, -0.2, 0.15, 0.07) {
                    c = EYES;
                } else if ell(0.38, -0.45, 0.2, 0.04) || ell(-0.38, -0.45, 0.2, 0.04) {
                    c = BROWS;
                } else if (-0.2..0.32).contains(&v) && u.abs() < 0.06 + 0.12 * (v + 0.2) {
                    c = NOSE;
                } else if ell(0.0, 0.64, 0.3, 0.085) {
                    c = LIPS;
                }
                mask[y * w + x] = c;
            }
        }
    }

    fn at(c: &Cheek) -> P {
        match c {
            Cheek::At(p) => *p,
            Cheek::Missing(why) => panic!("cheek missing: {why}"),
        }
    }

    #[test]
    fn frontal_face_cheeks_below_the_eyes_beside_the_nose() {
        let (w, h) = (200, 220);
        let mut m = vec![BG; w * h];
        draw(&mut m, w, h, 100.0, 110.0, 60.0, 0.0, false);
        let (_, faces) = find_faces(&m, w, h, &roles(), &Placement::default());
        assert_eq!(faces.len(), 1);
        let f = &faces[0];
        let (l, r) = (at(&f.left), at(&f.right));
        // subject's left is on the image's right; cheeks mirror each other
        assert!(l.0 > 100.0 && r.0 < 100.0);
        assert!((l.0 - 100.0 + (r.0 - 100.0)).abs() < 1.0 && (l.1 - r.1).abs() < 1.0);
        // halfway from eye level (v −0.2) to the lips (0.64): v 0.22 → y 110 + 13.2
        assert!((l.1 - 123.2).abs() < 1.5, "{l:?}");
        // 0.66 inter-eye distances (0.76·60 px) from the midline
        assert!((l.0 - 100.0 - 0.66 * 45.6).abs() < 1.5, "{l:?}");
        assert!((f.eye_distance.unwrap() - 45.6).abs() < 1.0);
        // width at mid-nose height (v 0.06): ≈ 2·60 px
        assert!((f.width.unwrap() - 120.0).abs() < 3.0, "{:?}", f.width);
        // fWHR: 120 / (lip top 0.555 − brows −0.45 = 1.005·60)
        assert!((f.fwhr.clone().unwrap() - 120.0 / 60.3).abs() < 0.06, "{:?}", f.fwhr);
    }

    #[test]
    fn rotation_and_scale_move_the_cheeks_with_the_face() {
        let (w, h) = (300, 300);
        let mut m = vec![BG; w * h];
        let theta: f64 = 0.25;
        draw(&mut m, w, h, 150.0, 150.0, 90.0, theta, false);
        let (_, faces) = find_faces(&m, w, h, &roles(), &Placement::default());
        let f = &faces[0];
        // expected: face point (u, v) = (0.66·0.76, 0.22) → image, rotated by θ
        let (sn, cs) = theta.sin_cos();
        let (u, v) = (0.66 * 0.76 * 90.0, 0.22 * 90.0);
        let want = (150.0 + cs * u - sn * v, 150.0 + sn * u + cs * v);
        let l = at(&f.left);
        assert!(
            ((l.0 - want.0).powi(2) + (l.1 - want.1).powi(2)).sqrt() < 2.5,
            "{l:?} vs {want:?}"
        );
        assert!((f.eye_distance.unwrap() - 0.76 * 90.0).abs() < 1.5);
    }

    #[test]
    fn two_faces_are_found_largest_first_and_a_hidden_eye_loses_its_cheek() {
        let (w, h) = (400, 200);
        let mut m = vec![HAIR; w * h];
        draw(&mut m, w, h, 100.0, 100.0, 60.0, 0.0, false);
        draw(&mut m, w, h, 290.0, 100.0, 70.0, 0.0, true);
        let (_, faces) = find_faces(&m, w, h, &roles(), &Placement::default());
        assert_eq!(faces.len(), 2);
        // the larger face (right, s 70) first; its subject's-left eye is hidden
        assert!(faces[0].pixels.len() > faces[1].pixels.len());
        assert_eq!(faces[0].left, Cheek::Missing("left eye not visible".into()));
        let r = at(&faces[0].right);
        assert!(r.0 < 290.0 && (r.0 - (290.0 - 0.66 * 0.76 * 70.0)).abs() < 3.0, "{r:?}");
        assert!(matches!(faces[1].left, Cheek::At(_)) && matches!(faces[1].right, Cheek::At(_)));
    }

    #[test]
    fn sunglasses_stand_in_for_the_eyes() {
        let (w, h) = (200, 220);
        let mut m = vec![BG; w * h];
        draw(&mut m, w, h, 100.0, 110.0, 60.0, 0.0, false);
        let (_, plain) = find_faces(&m, w, h, &roles(), &Placement::default());
        // dark lenses over both eyes, joined by a bridge, with temple arms to the face's edge
        for y in 0..h {
            for x in 0..w {
                let (u, v) = ((x as f64 + 0.5 - 100.0) / 60.0, (y as f64 + 0.5 - 110.0) / 60.0);
                let lens = ((u.abs() - 0.38) / 0.25).powi(2) + ((v + 0.2) / 0.16).powi(2) <= 1.0;
                let bridge = u.abs() < 0.14 && (v + 0.25).abs() < 0.025;
                let arm = u.abs() > 0.62 && u.abs() < 0.98 && (v + 0.24).abs() < 0.025;
                if (lens || bridge || arm) && m[y * w + x] != BG {
                    m[y * w + x] = 10;
                }
            }
        }
        let (_, faces) = find_faces(&m, w, h, &roles(), &Placement::default());
        let f = &faces[0];
        assert!(f.eyes_from_glasses);
        let (a, b) = (at(&f.left), at(&plain[0].left));
        assert!((a.0 - b.0).abs() < 3.0 && (a.1 - b.1).abs() < 3.0, "{a:?} vs {b:?}");
        let mut no_glasses = roles();
        no_glasses.glasses = None;
        let (_, faces) = find_faces(&m, w, h, &no_glasses, &Placement::default());
        assert_eq!(faces[0].left, Cheek::Missing("no eye visible".into()));
    }

    #[test]
    fn faces_without_eyes_or_landmarks_say_why() {
        let (w, h) = (200, 220);
        let mut m = vec![BG; w * h];
        draw(&mut m, w, h, 100.0, 110.0, 60.0, 0.0, false);
        let no_eyes: Vec<u8> = m.iter().map(|&v| if v == EYES { SKIN } else { v }).collect();
        let (_, f) = find_faces(&no_eyes, w, h, &roles(), &Placement::default());
        assert_eq!(f[0].left, Cheek::Missing("no eye visible".into()));
        assert_eq!(f[0].fwhr, Err("no eye visible".into()));
        let no_mouth_nose: Vec<u8> = m
            .iter()
            .map(|&v| if v == LIPS || v == NOSE { SKIN } else { v })
            .collect();
        let (_, f) = find_faces(&no_mouth_nose, w, h, &roles(), &Placement::default());
        assert!(matches!(&f[0].left, Cheek::Missing(w) if w.contains("no lips or nose")));
        // a speck of face is not a face
        let mut speck = vec![BG; w * h];
        speck[5] = SKIN;
        assert!(find_faces(&speck, w, h, &roles(), &Placement::default()).1.is_empty());
    }
}
