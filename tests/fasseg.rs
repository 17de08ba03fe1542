//! FASSEG's multipose faces as manifests (`tests/parity/fasseg.py`, used by `make
//! parity-fastai` and `make parity-step`), on a small folder laid out as FASSEG's V3 is: BMP
//! photos and labels by pose, FASSEG's six colours with anti-aliased edges, test photos without
//! labels, and a label drawn on a differently cropped photo. Then rgb2class and unet-train take
//! the result as they take any manifest.

use std::path::Path;
use std::process::Command;

use facepipe_testutil::{json, ok, run, train_tiny};
use image::{Rgb, RgbImage};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/parity/fasseg.py");

/// A face photo and its label: background red, hair dark red, a skin-yellow face with blue
/// eyes; the label's face edge has the off-palette (255, 255, 1) FASSEG's labels show.
fn face(w: u32, h: u32, shift: u32) -> (RgbImage, RgbImage) {
    let photo = RgbImage::from_fn(w, h, |x, y| Rgb([(x * 3 + shift) as u8, (y * 2) as u8, 90]));
    let label = RgbImage::from_fn(w, h, |x, y| {
        let (dx, dy) = (x as i32 - w as i32 / 2, y as i32 - h as i32 / 2);
        let r2 = dx * dx + dy * dy;
        let face_r = (w as i32 / 3).pow(2);
        if y < h / 6 {
            Rgb([127, 0, 0])
        } else if r2 < face_r / 16 && dy < 0 {
            Rgb([0, 0, 255])
        } else if r2 < face_r - 20 {
            Rgb([255, 255, 0])
        } else if r2 < face_r {
            Rgb([255, 255, 1])
        } else {
            Rgb([255, 0, 0])
        }
    });
    (photo, label)
}

fn put(v3: &Path, set: &str, kind: &str, pose: &str, name: &str, img: &RgbImage) {
    let dir = v3.join(format!("{set}_{kind}")).join(pose);
    std::fs::create_dir_all(&dir).unwrap();
    img.save(dir.join(format!("{name}.bmp"))).unwrap();
}

#[test]
fn fasseg_v3_becomes_a_split_the_stages_train_on() {
    if Command::new("python3").arg("--version").output().is_err() {
        panic!("python3 is needed (the brief's machines have 3.11)");
    }
    let tmp = tempfile::tempdir().unwrap();
    let v3 = tmp.path().join("V3");
    for (i, pose) in ["0", "+30", "-30"].iter().enumerate() {
        for p in 1..=3u32 {
            let (photo, label) = face(48, 64, p * 10 + i as u32);
            let sign = if *pose == "0" { "+" } else { "" };
            let name = format!("personne0{p}14{i}+0{sign}{pose}");
            put(&v3, "Train", "RGB", pose, &name, &photo);
            put(&v3, "Train", "labels", pose, &name, &label);
        }
    }
    for p in 4..=6u32 {
        let (photo, label) = face(48, 64, p);
        let name = format!("personne0{p}146+0+0");
        put(&v3, "Test", "RGB", "0", &name, &photo);
        if p == 6 {
            // FASSEG has four such: the label is of another crop of the photo
            let (_, other) = face(44, 64, p);
            put(&v3, "Test", "labels", "0", &name, &other);
        } else {
            put(&v3, "Test", "labels", "0", &name, &label);
        }
    }
    // a test pose without labels (FASSEG's pose-estimation photos)
    put(&v3, "Test", "RGB", "+15", "personne04147+0+15", &face(48, 64, 1).0);

    let out = tmp.path().join("out");
    let pairs = Command::new("python3")
        .args([SCRIPT, "pairs"])
        .arg(&v3)
        .arg(out.join("pairs.json"))
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&pairs.stdout);
    assert!(
        pairs.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&pairs.stderr)
    );
    assert!(
        said.contains("left out test/0/personne06146+0+0: image (48, 64), label (44, 64)"),
        "{said}"
    );
    assert!(said.contains("9 train and 2 test faces"), "{said}");
    let m = json(&out.join("pairs.json"));
    let summary = &m["provenance"][0]["summary"];
    assert_eq!(summary["unlabelled_images"], 1);
    assert_eq!(m["classes"][2]["name"], "skin");

    ok(run(
        &out,
        "rgb2class",
        &["-i", "pairs.json", "-o", "masks.json", "--out-dir", "masks"],
    ));
    let masks = json(&out.join("masks.json"));
    let off: u64 = masks["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|it| it["off_palette"].as_u64().unwrap())
        .sum();
    assert!(off > 0, "the anti-aliased edge is off the palette and snapped");

    let split = |extra: &[&str], name: &str| {
        let o = Command::new("python3")
            .args([SCRIPT, "split"])
            .arg(out.join("masks.json"))
            .arg(out.join(name))
            .args(extra)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        json(&out.join(name))
    };
    let full = split(&[], "split-full.json");
    let sides = |m: &serde_json::Value| {
        let items = m["items"].as_array().unwrap().clone();
        let n = |s: &str| items.iter().filter(|i| i["split"] == s).count();
        (n("train"), n("valid"))
    };
    assert_eq!(sides(&full), (9, 2));
    let small = split(&["--train", "3", "--valid", "1"], "split-small.json");
    assert_eq!(sides(&small), (3, 1));
    let names = &small["provenance"].as_array().unwrap().last().unwrap()["summary"]["names"]["train"];
    // every third by name: one of each pose, fixed
    assert_eq!(
        names,
        &serde_json::json!([
            "train/+30/personne01141+0+30",
            "train/-30/personne01142+0-30",
            "train/0/personne01140+0+0"
        ])
    );

    // the split trains as any manifest does (paths are absolute: it can live anywhere)
    let rel = std::fs::read_to_string(out.join("split-small.json")).unwrap();
    std::fs::write(tmp.path().join("moved.json"), rel).unwrap();
    train_tiny(tmp.path(), "moved.json", "model");
    assert_eq!(
        json(&tmp.path().join("model/model.json"))["classes"][5]["name"],
        "mouth"
    );
}
