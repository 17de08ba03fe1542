//! `demo-faces`: a synthetic stand-in for the Mut1ny head-segmentation dataset.
//!
//! Writes exactly the Mut1ny layout so that the rest of the pipeline runs unchanged on it:
//!
//! ```text
//! OUT/training.xml                 <srcimg name="samples\g000\face_00000.png"/> <labelimg .../> ...
//! OUT/samples/g000/face_00000.png  photos
//! OUT/labels/g000/face_00000.png   RGB label masks in the Mut1ny palette
//! OUT/participants.csv             one row per face: true cheek L*a*b*, fWHR, demographics
//! OUT/demo-faces.json              the parameters (also marks the folder as ours)
//! ```
//!
//! The true cheek colour of a face is measured on the rendered pixels, the way a person with
//! Photoshop would: an axis-aligned square patch centred on the cheek (see [`render::CHEEK_U`]),
//! 50 px on a side for a face 300 px wide and scaled with the face, averaging only the pixels
//! that are entirely this face's general-face skin; the mean 8-bit sRGB value is converted to
//! CIE L\*a\*b\* (D65). "Left" is the subject's left, which is on the image's right.

pub mod render;

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use facepipe_core::colour::{self, WhitePoint};
use facepipe_core::io::{create_dir_all, write_atomic, write_atomic_fast};
use facepipe_core::rng::SplitMix64;
use image::ImageEncoder;
use rayon::prelude::*;
use serde::Serialize;

use render::Scene;

/// Name of the parameter file demo-faces writes beside the dataset.
pub const MARKER: &str = "demo-faces.json";
/// Cheek patch side in pixels for a face of [`REFERENCE_FACE_WIDTH`] pixels.
pub const PATCH_PX: f64 = 50.0;
/// Face width (pixels) at which the cheek patch is [`PATCH_PX`] wide.
pub const REFERENCE_FACE_WIDTH: f64 = 300.0;
/// A cheek is measurable when at least this share of its patch is skin.
pub const MIN_SKIN_FRACTION: f64 = 0.5;

/// What to generate.
#[derive(Clone, Debug, Serialize)]
pub struct Config {
    #[serde(skip)]
    pub out: PathBuf,
    pub count: u32,
    pub width: u32,
    pub height: u32,
    pub seed: u64,
    /// Images per `samples/gNNN` folder.
    pub group_size: u32,
    /// Share of label images with anti-aliased (blended) class borders.
    pub aa_labels: f64,
    /// Share of images with two faces.
    pub two_faces: f64,
    /// Also write every photo as a phone would
    /// ([`facepipe_core::photo::encode::phone_of`]) under `phone/`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub phone: bool,
    #[serde(skip)]
    pub force: bool,
}

/// Where `--phone` writes photo `i` (its id, as `photos` gives it on `phone/`, is the demo id).
fn phone_name(i: u32, group_size: u32) -> String {
    let (img, _, _) = names(i, group_size);
    format!("phone/{}", img.replace(".png", ".jpg"))
}

/// One cheek's truth.
#[derive(Clone, Debug, Default)]
pub struct Cheek {
    pub lab: Option<[f64; 3]>,
    pub pixels: u32,
    pub box_px: [u32; 4],
}

/// One face's row in `participants.csv`.
#[derive(Clone, Debug)]
pub struct FaceTruth {
    pub item_id: String,
    pub face: usize,
    pub image: String,
    pub sex: &'static str,
    pub age: u32,
    pub fitzpatrick: &'static str,
    pub face_width_px: f64,
    pub fwhr: f64,
    pub skin_lab: [f64; 3],
    pub left: Cheek,
    pub right: Cheek,
}

/// Dataset-relative names of image `i`.
fn names(i: u32, group_size: u32) -> (String, String, String) {
    let g = format!("g{:03}", i / group_size.max(1));
    let f = format!("face_{i:05}.png");
    (
        format!("samples/{g}/{f}"),
        format!("labels/{g}/{f}"),
        format!("samples/{g}/face_{i:05}"),
    )
}

/// The ledger demo-faces keeps in its output folder (the files it wrote there).
pub const LEDGER: &str = ".demo-faces";

/// Names only demo-faces writes in its folder, so a folder written before it kept a ledger (one
/// holding its parameter file) is still recognised as its own.
fn is_demo_name(rel: &str) -> bool {
    let face = |dir: &str| {
        let mut parts = rel.split('/');
        parts.next() == Some(dir)
            && parts
                .next()
                .is_some_and(|g| g.starts_with('g') && g[1..].bytes().all(|b| b.is_ascii_digit()))
            && parts
                .next()
                .and_then(|f| f.strip_prefix("face_")?.strip_suffix(".png"))
                .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
            && parts.next().is_none()
    };
    matches!(rel, MARKER | "training.xml" | "participants.csv") || face("samples") || face("labels")
}

/// Every file a run writes, relative to the output folder.
fn planned(cfg: &Config) -> Vec<String> {
    let mut files: Vec<String> = (0..cfg.count)
        .flat_map(|i| {
            let (img, lab, _) = names(i, cfg.group_size);
            let phone = cfg.phone.then(|| phone_name(i, cfg.group_size));
            [Some(img), Some(lab), phone].into_iter().flatten()
        })
        .collect();
    files.extend([MARKER, "training.xml", "participants.csv"].map(String::from));
    files
}

/// Generates the dataset; returns the faces' truths.
pub fn run(cfg: &Config, progress: &indicatif::ProgressBar) -> Result<Vec<FaceTruth>> {
    anyhow::ensure!(cfg.count > 0, "--count must be at least 1");
    anyhow::ensure!((0.0..=1.0).contains(&cfg.aa_labels), "--aa-labels must be in 0..=1");
    anyhow::ensure!((0.0..=1.0).contains(&cfg.two_faces), "--two-faces must be in 0..=1");
    // held to the end: a second run on the same folder refuses
    let mut outputs = facepipe_core::out::Outputs::new("demo-faces", cfg.force);
    // a folder an older demo-faces wrote (its parameter file, no ledger) is known by its names;
    // without that file, nothing is taken for ours but what the ledger lists
    let older = cfg.out.join(MARKER).is_file();
    let mut folder = outputs.folder(&cfg.out, LEDGER, "--out-dir", &|rel| older && is_demo_name(rel))?;
    // the previous run's files go (a larger earlier run leaves no extra faces); the XML is
    // written last: while it is missing the folder is incomplete
    folder.begin(planned(cfg))?;
    facepipe_core::io::write_json(&cfg.out.join(MARKER), cfg)?;
    let xml_path = cfg.out.join("training.xml");

    let palette: Vec<[u8; 3]> = facepipe_core::palette::mut1ny().iter().map(|c| c.rgb).collect();
    progress.set_length(u64::from(cfg.count));
    let truths: Vec<Vec<FaceTruth>> = (0..cfg.count)
        .into_par_iter()
        .map(|i| {
            let t = make_one(cfg, i, &palette);
            progress.inc(1);
            t
        })
        .collect::<Result<_>>()?;
    progress.finish_and_clear();
    let truths: Vec<FaceTruth> = truths.into_iter().flatten().collect();

    write_participants(&cfg.out.join("participants.csv"), &truths)?;
    write_atomic(&xml_path, training_xml(cfg).as_bytes())?;
    Ok(truths)
}

fn make_one(cfg: &Config, i: u32, palette: &[[u8; 3]]) -> Result<Vec<FaceTruth>> {
    let mut r = SplitMix64::derive(cfg.seed, u64::from(i));
    let scene = Scene::random(&mut r, cfg.width, cfg.height, cfg.two_faces);
    let aa = r.chance(cfg.aa_labels);
    let px = scene.render(palette, aa);
    let (img_name, lab_name, id) = names(i, cfg.group_size);
    write_png(&cfg.out.join(&img_name), &px.photo, cfg.width, cfg.height)?;
    write_png(&cfg.out.join(&lab_name), &px.label, cfg.width, cfg.height)?;
    if cfg.phone {
        let shown = image::RgbImage::from_raw(cfg.width, cfg.height, px.photo.clone()).context("photo size")?;
        let jpg = facepipe_core::photo::encode::phone_jpeg(&shown, facepipe_core::photo::encode::phone_of(i))?;
        let path = cfg.out.join(phone_name(i, cfg.group_size));
        create_dir_all(path.parent().context("a folder")?)?;
        write_atomic(&path, &jpg)?;
    }

    let mut rows = Vec::new();
    // Faces are listed front-most first (face 0 is the main subject).
    for (face_no, k) in (0..scene.faces.len()).rev().enumerate() {
        let f = &scene.faces[k];
        let face_width = 2.0 * f.s * f.wx;
        let side = (PATCH_PX * face_width / REFERENCE_FACE_WIDTH).round().max(3.0);
        let cheek = |left: bool| measure_cheek(&px, cfg.width, cfg.height, f.cheek_centre(left), side, k as u8);
        let l = f.skin_lab[0];
        rows.push(FaceTruth {
            item_id: id.clone(),
            face: face_no,
            image: img_name.clone(),
            sex: f.sex,
            age: f.age,
            fitzpatrick: fitzpatrick(l),
            face_width_px: face_width,
            fwhr: f.fwhr(),
            skin_lab: f.skin_lab,
            left: cheek(true),
            right: cheek(false),
        });
    }
    Ok(rows)
}

/// Mean sRGB of the fully-skin pixels of face `k` in the square patch centred at `c`, as Lab.
fn measure_cheek(px: &render::Rendered, w: u32, h: u32, c: (f64, f64), side: f64, k: u8) -> Cheek {
    let half = side / 2.0;
    let x0 = (c.0 - half).round().clamp(0.0, f64::from(w)) as u32;
    let y0 = (c.1 - half).round().clamp(0.0, f64::from(h)) as u32;
    let x1 = ((c.0 - half).round() + side).clamp(0.0, f64::from(w)) as u32;
    let y1 = ((c.1 - half).round() + side).clamp(0.0, f64::from(h)) as u32;
    let mut sum = [0u64; 3];
    let mut n = 0u32;
    for y in y0..y1 {
        for x in x0..x1 {
            let i = (y * w + x) as usize;
            if px.skin_of[i] == k {
                for (s, &v) in sum.iter_mut().zip(&px.photo[i * 3..i * 3 + 3]) {
                    *s += u64::from(v);
                }
                n += 1;
            }
        }
    }
    let area = side * side;
    let lab = (f64::from(n) >= MIN_SKIN_FRACTION * area)
        .then(|| colour::srgb_to_lab(sum.map(|s| s as f64 / f64::from(n) / 255.0), WhitePoint::D65));
    Cheek {
        lab,
        pixels: n,
        box_px: [x0, y0, x1, y1],
    }
}

/// A Fitzpatrick-like self-report, derived from lightness with some overlap.
fn fitzpatrick(l: f64) -> &'static str {
    match l {
        l if l >= 70.0 => "I",
        l if l >= 62.0 => "II",
        l if l >= 54.0 => "III",
        l if l >= 46.0 => "IV",
        l if l >= 38.0 => "V",
        _ => "VI",
    }
}

fn write_png(path: &Path, rgb: &[u8], w: u32, h: u32) -> Result<()> {
    if let Some(d) = path.parent() {
        create_dir_all(d)?;
    }
    write_atomic_fast(path, |f| {
        let mut buf = std::io::BufWriter::new(f);
        image::codecs::png::PngEncoder::new_with_quality(
            &mut buf,
            image::codecs::png::CompressionType::Fast,
            image::codecs::png::FilterType::Adaptive,
        )
        .write_image(rgb, w, h, image::ExtendedColorType::Rgb8)?;
        buf.flush()?;
        Ok(())
    })
}

/// `training.xml` as the Mut1ny tool writes it: Windows paths and line ends, and `<bboxes>`
/// blocks between some pairs (loaders skip them).
fn training_xml(cfg: &Config) -> String {
    let mut s = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?>\r\n<trainingset>\r\n");
    for i in 0..cfg.count {
        let (img, lab, _) = names(i, cfg.group_size);
        let _ = write!(
            s,
            "  <srcimg name=\"{}\"/>\r\n  <labelimg name=\"{}\"/>\r\n",
            img.replace('/', "\\"),
            lab.replace('/', "\\")
        );
        if i % 3 == 1 {
            let _ = write!(
                s,
                "  <bboxes>\r\n    <bbox x=\"{}\" y=\"{}\" w=\"{}\" h=\"{}\" label=\"face\"/>\r\n  </bboxes>\r\n",
                cfg.width / 4,
                cfg.height / 5,
                cfg.width / 2,
                cfg.height * 3 / 5
            );
        }
    }
    s.push_str("</trainingset>\r\n");
    s
}

/// Column names of `participants.csv`.
pub const COLUMNS: &[&str] = &[
    "participant_id",
    "item_id",
    "face",
    "image",
    "sex",
    "age",
    "fitzpatrick",
    "face_width_px",
    "fwhr",
    "skin_L",
    "skin_a",
    "skin_b",
    "left_cheek_L",
    "left_cheek_a",
    "left_cheek_b",
    "left_cheek_pixels",
    "left_cheek_x0",
    "left_cheek_y0",
    "left_cheek_x1",
    "left_cheek_y1",
    "right_cheek_L",
    "right_cheek_a",
    "right_cheek_b",
    "right_cheek_pixels",
    "right_cheek_x0",
    "right_cheek_y0",
    "right_cheek_x1",
    "right_cheek_y1",
];

fn write_participants(path: &Path, rows: &[FaceTruth]) -> Result<()> {
    let f4 = |v: f64| format!("{v:.4}");
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(COLUMNS)?;
    for r in rows {
        let mut rec: Vec<String> = vec![
            format!("{}#{}", r.item_id, r.face),
            r.item_id.clone(),
            r.face.to_string(),
            r.image.clone(),
            r.sex.into(),
            r.age.to_string(),
            r.fitzpatrick.into(),
            f4(r.face_width_px),
            f4(r.fwhr),
        ];
        rec.extend(r.skin_lab.map(f4));
        for c in [&r.left, &r.right] {
            match c.lab {
                Some(lab) => rec.extend(lab.map(f4)),
                None => rec.extend(["", "", ""].map(String::from)),
            }
            rec.push(c.pixels.to_string());
            rec.extend(c.box_px.map(|v| v.to_string()));
        }
        w.write_record(&rec)?;
    }
    let bytes = w.into_inner().context("writing participants.csv")?;
    write_atomic(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(out: &Path) -> Config {
        Config {
            out: out.into(),
            count: 6,
            width: 96,
            height: 80,
            seed: 1,
            group_size: 4,
            aa_labels: 0.5,
            two_faces: 0.3,
            phone: false,
            force: false,
        }
    }

    #[test]
    fn same_seed_same_bytes() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        run(&cfg(a.path()), &indicatif::ProgressBar::hidden()).unwrap();
        run(&cfg(b.path()), &indicatif::ProgressBar::hidden()).unwrap();
        for f in [
            "training.xml",
            "participants.csv",
            "samples/g001/face_00005.png",
            "labels/g000/face_00002.png",
        ] {
            assert_eq!(
                std::fs::read(a.path().join(f)).unwrap(),
                std::fs::read(b.path().join(f)).unwrap(),
                "{f}"
            );
        }
    }

    #[test]
    fn labels_use_the_palette_except_blended_borders() {
        let d = tempfile::tempdir().unwrap();
        let mut c = cfg(d.path());
        c.aa_labels = 0.0;
        run(&c, &indicatif::ProgressBar::hidden()).unwrap();
        let palette: Vec<[u8; 3]> = facepipe_core::palette::mut1ny().iter().map(|c| c.rgb).collect();
        let lab = image::open(d.path().join("labels/g000/face_00000.png"))
            .unwrap()
            .to_rgb8();
        assert!(lab.pixels().all(|p| palette.contains(&p.0)));
        // a face has skin, eyes, nose and lips
        for class in [2, 3, 1, 8] {
            assert!(lab.pixels().any(|p| p.0 == palette[class]), "class {class} missing");
        }
    }

    #[test]
    fn recognises_only_its_own_names() {
        for name in [
            MARKER,
            "training.xml",
            "samples/g000/face_00000.png",
            "labels/g012/face_01234.png",
        ] {
            assert!(is_demo_name(name), "{name}");
        }
        for name in [
            "notes.txt",
            "samples/face_00000.png",
            "samples/g0/x.png",
            "labels/g000/face_1.jpg",
            "samples/g000/face_00000.png/x",
        ] {
            assert!(!is_demo_name(name), "{name}");
        }
    }

    #[test]
    fn refuses_a_foreign_non_empty_dir() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("thesis.tex"), "mine").unwrap();
        let e = run(&cfg(d.path()), &indicatif::ProgressBar::hidden())
            .unwrap_err()
            .to_string();
        assert!(e.contains("thesis.tex") && e.contains("--force"), "{e}");
        assert_eq!(std::fs::read_to_string(d.path().join("thesis.tex")).unwrap(), "mine");
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1, "nothing written");
    }

    #[test]
    fn cheek_truth_is_close_to_the_skin_colour_drawn() {
        let d = tempfile::tempdir().unwrap();
        let mut c = cfg(d.path());
        c.count = 12;
        c.width = 200;
        c.height = 200;
        let truths = run(&c, &indicatif::ProgressBar::hidden()).unwrap();
        let measured: Vec<_> = truths
            .iter()
            .filter_map(|t| t.left.lab.map(|l| (l, t.skin_lab)))
            .collect();
        assert!(measured.len() >= 6, "too few measurable cheeks: {}", measured.len());
        for (lab, skin) in measured {
            // shading and texture move it, but not far
            assert!((lab[0] - skin[0]).abs() < 12.0, "{lab:?} vs {skin:?}");
        }
    }
}
