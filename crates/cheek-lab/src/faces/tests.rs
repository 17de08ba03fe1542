//! Placing faces and cheeks on drawn masks: frontal, rotated and scaled, two faces, a hidden
//! eye, sunglasses, and faces missing what places the cheeks.

use super::*;

const BG: u8 = 0;
const SKIN: u8 = 8;
const EYES: u8 = 2;
const NOSE: u8 = 3;
const LIPS: u8 = 1;
const BROWS: u8 = 6;
const HAIR: u8 = 4;

fn roles() -> Roles {
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
fn draw(mask: &mut [u8], w: usize, h: usize, cx: f64, cy: f64, s: f64, theta: f64, hide_left_eye: bool) {
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

fn at(c: &Cheek) -> Point {
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
    assert!(l.x > 100.0 && r.x < 100.0);
    assert!((l.x - 100.0 + (r.x - 100.0)).abs() < 1.0 && (l.y - r.y).abs() < 1.0);
    // halfway from eye level (v −0.2) to the lips (0.64): v 0.22 → y 110 + 13.2
    assert!((l.y - 123.2).abs() < 1.5, "{l:?}");
    // 0.66 inter-eye distances (0.76·60 px) from the midline
    assert!((l.x - 100.0 - 0.66 * 45.6).abs() < 1.5, "{l:?}");
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
        ((l.x - want.0).powi(2) + (l.y - want.1).powi(2)).sqrt() < 2.5,
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
    assert!(r.x < 290.0 && (r.x - (290.0 - 0.66 * 0.76 * 70.0)).abs() < 3.0, "{r:?}");
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
    assert!((a.x - b.x).abs() < 3.0 && (a.y - b.y).abs() < 3.0, "{a:?} vs {b:?}");
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
