//! The real `rgb2class` binary on small hand-made labels with known answers.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use facepipe_testutil::{fails, json, ok, run_with_stdin, stage, stderr_has, stderr_lacks, usage_error};
use image::{ImageBuffer, Luma, Rgb, Rgba};
use serde_json::{Value, json};

const BG: [u8; 3] = [0, 0, 0];
const LIPS: [u8; 3] = [255, 0, 0];
const SKIN: [u8; 3] = [128, 128, 128];
const HAIR: [u8; 3] = [255, 255, 0];
const OFF: [u8; 3] = [120, 130, 126]; // nearest: general face (8)

/// 4×3 label: row 0 bg bg lips lips, row 1 skin skin skin OFF, row 2 hair hair bg skin.
fn label_pixels() -> Vec<[u8; 3]> {
    vec![BG, BG, LIPS, LIPS, SKIN, SKIN, SKIN, OFF, HAIR, HAIR, BG, SKIN]
}
const EXPECTED: [u8; 12] = [0, 0, 1, 1, 8, 8, 8, 8, 4, 4, 0, 8];

fn rgb_image(px: &[[u8; 3]], w: u32, h: u32) -> image::RgbImage {
    ImageBuffer::from_fn(w, h, |x, y| Rgb(px[(y * w + x) as usize]))
}

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    /// A dataset folder with `n` photo/label pairs (4×3) and a pairs manifest.
    fn new(n: usize) -> Self {
        let f = Fixture {
            dir: tempfile::tempdir().unwrap(),
        };
        let mut items = vec![];
        for i in 0..n {
            let img = format!("data/samples/g/{i}.png");
            let lab = format!("data/labels/g/{i}.png");
            f.save_rgb(&img, &[[90, 60, 40]; 12], 4, 3);
            f.save_rgb(&lab, &label_pixels(), 4, 3);
            items.push(json!({"id": format!("g/{i}"), "image": img, "label_rgb": lab, "note": i}));
        }
        f.write_manifest(json!(items));
        f
    }
    fn p(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
    fn save_rgb(&self, rel: &str, px: &[[u8; 3]], w: u32, h: u32) {
        let p = self.p(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        rgb_image(px, w, h).save(p).unwrap();
    }
    fn write_manifest(&self, items: Value) {
        let m = json!({"schema": "facepipe/dataset", "schema_version": 1, "root": "data", "classes": [],
                       "items": items, "provenance": [], "custom_top": {"k": true}});
        fs::write(self.p("pairs.json"), serde_json::to_vec_pretty(&m).unwrap()).unwrap();
    }
    /// Runs rgb2class on `pairs.json` into `masks.json` and `masks/`, with `extra`, however it
    /// ends.
    fn run(&self, extra: &[&str]) -> Output {
        stage("rgb2class", self.dir.path())
            .args(["-i", "pairs.json", "-o", "masks.json", "--out-dir", "masks"])
            .args(extra)
            .output()
            .unwrap()
    }
    fn manifest(&self) -> Value {
        json(&self.p("masks.json"))
    }
    fn mask(&self, i: usize) -> Vec<u8> {
        image::open(self.p(&format!("masks/labels/g/{i}.tif")))
            .unwrap()
            .to_luma8()
            .into_raw()
    }
    /// Requires the run to fail with every one of `needles` in stderr, writing no manifest.
    fn fails(&self, extra: &[&str], needles: &[&str]) {
        let out = self.run(extra);
        for n in needles {
            fails(out.clone(), n);
        }
        assert!(!self.p("masks.json").exists(), "manifest written despite the error");
    }
}

#[test]
fn known_answer_masks_and_manifest() {
    let f = Fixture::new(2);
    ok(f.run(&[]));
    assert_eq!(f.mask(0), EXPECTED);
    assert_eq!(f.mask(1), EXPECTED);
    let m = f.manifest();
    let it = &m["items"][0];
    assert_eq!(it["mask"], "masks/labels/g/0.tif");
    assert_eq!(
        (it["width"].as_u64(), it["height"].as_u64(), it["off_palette"].as_u64()),
        (Some(4), Some(3), Some(1))
    );
    assert_eq!(it["note"], 0, "unknown item fields are carried through");
    assert_eq!(
        m["custom_top"]["k"], true,
        "unknown top-level fields are carried through"
    );
    assert_eq!(m["classes"].as_array().unwrap().len(), 12);
    assert_eq!(m["classes"][8]["pixels"], 10); // 5 per image
    assert_eq!(m["classes"][0]["pixels"], 6);
    let s = &m["provenance"][0]["summary"];
    assert_eq!(
        (
            s["masks"].as_u64(),
            s["off_palette_pixels"].as_u64(),
            s["pixels"].as_u64()
        ),
        (Some(2), Some(2), Some(24))
    );
}

#[test]
fn off_palette_modes() {
    let f = Fixture::new(1);
    ok(f.run(&["--off-palette", "ignore"]));
    let mut want = EXPECTED;
    want[7] = 255;
    assert_eq!(f.mask(0), want);
    assert_eq!(f.manifest()["provenance"][0]["summary"]["ignored_pixels"], 1);
    let f = Fixture::new(1);
    f.fails(
        &["--off-palette", "error"],
        &["labels/g/0.png", "pixel (3, 1)", "[120, 130, 126]"],
    );
}

#[test]
fn rgba_16bit_palette_bmp_and_tiff_labels_are_read_correctly() {
    let f = Fixture::new(1);
    let px = label_pixels();
    // RGBA, fully opaque
    let rgba: image::RgbaImage = ImageBuffer::from_fn(4, 3, |x, y| {
        let c = px[(y * 4 + x) as usize];
        Rgba([c[0], c[1], c[2], 255])
    });
    rgba.save(f.p("data/labels/g/0.png")).unwrap();
    ok(f.run(&["--force"]));
    assert_eq!(f.mask(0), EXPECTED);
    // 16-bit RGB
    let rgb16: ImageBuffer<Rgb<u16>, Vec<u16>> = ImageBuffer::from_fn(4, 3, |x, y| {
        let c = px[(y * 4 + x) as usize];
        Rgb([c[0], c[1], c[2]].map(|v| u16::from(v) * 257))
    });
    rgb16.save(f.p("data/labels/g/0.png")).unwrap();
    ok(f.run(&["--force"]));
    assert_eq!(f.mask(0), EXPECTED);
    // palette (indexed) PNG
    let colours = [BG, LIPS, SKIN, OFF, HAIR];
    let idx: Vec<u8> = px
        .iter()
        .map(|c| colours.iter().position(|k| k == c).unwrap() as u8)
        .collect();
    let file = fs::File::create(f.p("data/labels/g/0.png")).unwrap();
    let mut enc = png::Encoder::new(file, 4, 3);
    enc.set_color(png::ColorType::Indexed);
    enc.set_depth(png::BitDepth::Eight);
    enc.set_palette(colours.concat());
    enc.write_header().unwrap().write_image_data(&idx).unwrap();
    ok(f.run(&["--force"]));
    assert_eq!(f.mask(0), EXPECTED);
    // BMP and TIFF labels
    for ext in ["bmp", "tiff"] {
        let f = Fixture::new(0);
        f.save_rgb("data/samples/g/0.png", &[[1, 2, 3]; 12], 4, 3);
        f.save_rgb(&format!("data/labels/g/0.{ext}"), &px, 4, 3);
        f.write_manifest(
            json!([{"id": "x", "image": "data/samples/g/0.png", "label_rgb": format!("data/labels/g/0.{ext}")}]),
        );
        ok(f.run(&[]));
        assert_eq!(f.mask(0), EXPECTED, "{ext}");
    }
}

#[test]
fn ambiguous_labels_are_refused() {
    // transparent pixels
    let f = Fixture::new(1);
    let rgba: image::RgbaImage = ImageBuffer::from_fn(4, 3, |x, _| Rgba([0, 0, 0, if x == 0 { 0 } else { 255 }]));
    rgba.save(f.p("data/labels/g/0.png")).unwrap();
    f.fails(&[], &["labels/g/0.png", "transparent"]);
    // grayscale label with a colour palette: probably a class-index mask already
    let f = Fixture::new(1);
    let gray: ImageBuffer<Luma<u8>, Vec<u8>> = ImageBuffer::from_fn(4, 3, |x, _| Luma([x as u8]));
    gray.save(f.p("data/labels/g/0.png")).unwrap();
    f.fails(&[], &["labels/g/0.png", "grayscale", "class-index mask"]);
}

#[test]
fn grayscale_labels_work_with_an_all_gray_palette() {
    let f = Fixture::new(1);
    let gray: ImageBuffer<Luma<u8>, Vec<u8>> = ImageBuffer::from_fn(4, 3, |x, _| Luma([if x < 2 { 0 } else { 200 }]));
    gray.save(f.p("data/labels/g/0.png")).unwrap();
    fs::write(
        f.p("gray.json"),
        r#"[{"id":0,"name":"bg","rgb":[0,0,0]},{"id":1,"name":"skin","rgb":[200,200,200]}]"#,
    )
    .unwrap();
    ok(f.run(&["--palette", "gray.json"]));
    assert_eq!(f.mask(0), [0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1]);
    let m = f.manifest();
    assert_eq!(m["classes"][1]["name"], "skin");
    assert_eq!(m["provenance"][0]["params"]["palette"], "file");
    assert_eq!(m["provenance"][0]["inputs"][1]["path"], "gray.json");
}

#[test]
fn corrupt_truncated_and_mismatched_files() {
    let f = Fixture::new(2);
    fs::write(f.p("data/labels/g/1.png"), b"this is not a png").unwrap();
    f.fails(&[], &["labels/g/1.png", "is not an image facepipe reads"]);

    let f = Fixture::new(1);
    let good = fs::read(f.p("data/labels/g/0.png")).unwrap();
    fs::write(f.p("data/labels/g/0.png"), &good[..good.len() / 2]).unwrap();
    f.fails(&[], &["labels/g/0.png"]);

    let f = Fixture::new(1);
    f.save_rgb("data/samples/g/0.png", &[[9, 9, 9]; 20], 5, 4);
    f.fails(&[], &["labels/g/0.png", "4×3", "samples/g/0.png", "5×4"]);

    let f = Fixture::new(1);
    fs::remove_file(f.p("data/labels/g/0.png")).unwrap();
    f.fails(&[], &["labels/g/0.png"]);
}

#[test]
fn bad_manifests() {
    let f = Fixture::new(0);
    f.fails(&[], &["pairs.json", "no items"]);
    let f = Fixture::new(1);
    let mut m = json(&f.p("pairs.json"));
    m["schema_version"] = json!(7);
    fs::write(f.p("pairs.json"), m.to_string()).unwrap();
    f.fails(&[], &["pairs.json", "schema_version 7 is newer"]);
    fs::write(
        f.p("pairs.json"),
        "{\"schema\": \"facepipe/dataset\", \"schema_version\": 1, \"items\": [",
    )
    .unwrap();
    f.fails(&[], &["pairs.json", "not valid JSON"]);
}

#[test]
fn reruns_reuse_complete_masks_and_redo_stale_ones() {
    let f = Fixture::new(3);
    ok(f.run(&[]));
    // what was reused is logged (-v), not written into the manifest
    let reused = |f: &Fixture, extra: &[&str]| -> u64 {
        let out = ok(f.run(&[&["-v"], extra].concat()));
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        err.lines()
            .find_map(|l| {
                l.split_once(" of 3 masks were up to date")
                    .map(|(a, _)| a.rsplit(' ').next().unwrap().to_string())
            })
            .map_or(0, |n| n.parse().unwrap())
    };
    let first = fs::read(f.p("masks.json")).unwrap();
    assert_eq!(reused(&f, &[]), 3);
    // a killed run: one mask never got written; the resumed manifest is byte-identical
    fs::remove_file(f.p("masks/labels/g/1.tif")).unwrap();
    assert_eq!(reused(&f, &[]), 2);
    assert_eq!(f.mask(1), EXPECTED);
    assert_eq!(fs::read(f.p("masks.json")).unwrap(), first, "resumed = uninterrupted");
    // a label edited after its mask was made
    std::thread::sleep(std::time::Duration::from_millis(20));
    let mut px = label_pixels();
    px[0] = HAIR;
    f.save_rgb("data/labels/g/2.png", &px, 4, 3);
    assert_eq!(reused(&f, &[]), 2);
    assert_eq!(f.mask(2)[0], 4);
    // a different off-palette mode does not reuse
    assert_eq!(reused(&f, &["--off-palette", "ignore"]), 0);
    ok(f.run(&[]));
    assert_eq!(reused(&f, &["--force"]), 0);
    // a rerun with the same inputs writes the same manifest
    fs::write(
        f.p("data/labels/g/2.png"),
        fs::read(f.p("data/labels/g/0.png")).unwrap(),
    )
    .unwrap();
    ok(f.run(&["--force"]));
    let again = String::from_utf8(fs::read(f.p("masks.json")).unwrap()).unwrap();
    assert_eq!(String::from_utf8(first).unwrap(), again);
}

#[test]
fn foreign_files_and_unwritable_dirs() {
    let f = Fixture::new(1);
    fs::create_dir_all(f.p("masks/labels/g")).unwrap();
    fs::write(f.p("masks/labels/g/0.tif"), "my own file").unwrap();
    f.fails(&[], &["masks/labels/g/0.tif", "not written by rgb2class"]);
    assert_eq!(fs::read_to_string(f.p("masks/labels/g/0.tif")).unwrap(), "my own file");

    let f = Fixture::new(1);
    fs::write(f.p("blocker"), "a file where a folder should be").unwrap();
    let out = stage("rgb2class", f.dir.path())
        .args(["-i", "pairs.json", "-o", "masks.json", "--out-dir", "blocker/masks"])
        .output()
        .unwrap();
    fails(out, "blocker/masks");
    assert!(!f.p("masks.json").exists());
}

#[test]
fn pipes_resolve_paths_against_the_working_directory() {
    let f = Fixture::new(1);
    let input = fs::read(f.p("pairs.json")).unwrap();
    let out = ok(run_with_stdin(
        stage("rgb2class", f.dir.path()).args(["-i", "-", "-o", "-", "--out-dir", "masks"]),
        input,
    ))
    .stdout;
    let m: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(m["items"][0]["mask"], "masks/labels/g/0.tif");
    assert_eq!(m["provenance"][0]["inputs"][0]["path"], "-");
    assert!(Path::new(&f.p("masks/labels/g/0.tif")).is_file());
}

#[test]
fn unlabelled_items_pass_through_and_threads_are_bounded() {
    let f = Fixture::new(2);
    let mut m = json(&f.p("pairs.json"));
    m["items"]
        .as_array_mut()
        .unwrap()
        .push(json!({"id": "photo-only", "image": "data/samples/g/0.png"}));
    fs::write(f.p("pairs.json"), m.to_string()).unwrap();
    ok(f.run(&["--threads", "1"]));
    let out = f.manifest();
    assert_eq!(out["items"][2]["id"], "photo-only");
    assert!(out["items"][2].get("mask").is_none());
    assert_eq!(out["provenance"][0]["summary"]["unlabelled_items"], 1);
    usage_error(f.run(&["--threads", "0"]), "--threads");
}

/// Issue 11: a foreign -o is refused before any mask is written, a run holding the outputs
/// makes a second one refuse (naming it), a symlink where a mask goes is never followed (even
/// with --force), and a lossy (JPEG) label is converted with a warning.
#[test]
fn outputs_are_checked_and_locked_before_any_mask_is_written() {
    let f = Fixture::new(2);
    fs::write(f.p("masks.json"), "my notes\n").unwrap();
    fails(f.run(&[]), "is not a facepipe manifest");
    assert!(!f.p("masks").exists(), "no mask written before the refusal");
    assert_eq!(fs::read_to_string(f.p("masks.json")).unwrap(), "my notes\n");
    fs::remove_file(f.p("masks.json")).unwrap();

    // another run holds the outputs: refused, naming it; nothing written
    let held = {
        let mut o = facepipe_core::out::Outputs::new("test", false);
        o.lock(f.p("masks.json").as_path()).unwrap();
        o
    };
    let a = f.run(&["--off-palette", "ignore"]);
    stderr_has(&a, &format!("pid {}", std::process::id()));
    fails(a, "being written by another run");
    assert!(!f.p("masks").exists());
    drop(held);
    ok(f.run(&[]));

    // a symlink where a mask goes: never followed or replaced, even with --force
    let elsewhere = f.p("elsewhere.tif");
    fs::write(&elsewhere, "precious").unwrap();
    fs::remove_file(f.p("masks/labels/g/1.tif")).unwrap();
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(&elsewhere, f.p("masks/labels/g/1.tif")).unwrap();
        fails(f.run(&["--force"]), "symbolic link");
        assert_eq!(fs::read_to_string(&elsewhere).unwrap(), "precious");
    }

    // a JPEG label: blocks of palette colours, smeared by the compression
    let g = Fixture::new(1);
    let big = image::RgbImage::from_fn(64, 48, |x, y| Rgb(if (x / 8 + y / 8) % 2 == 0 { LIPS } else { SKIN }));
    big.save(g.p("data/labels/g/0.jpg")).unwrap();
    g.save_rgb("data/samples/g/0.png", &[[90, 60, 40]; 64 * 48], 64, 48);
    g.write_manifest(json!([{"id": "g/0", "image": "data/samples/g/0.png", "label_rgb": "data/labels/g/0.jpg"}]));
    let out = ok(g.run(&[]));
    stderr_has(&out, "off the palette");
    stderr_has(&out, "JPEG");
    // a label with no off-palette pixel gets no such warning
    let h = Fixture::new(1);
    h.save_rgb("data/labels/g/0.png", &[LIPS; 12], 4, 3);
    stderr_lacks(&ok(h.run(&[])), "off the palette");
}
