//! `cheek-lab` end to end on drawn faces of known skin colour: placement, colour, reference
//! agreement, not-measurable cheeks, and the errors a user can run into.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use facepipe_core::colour::{WhitePoint, srgb8_to_lab};
use facepipe_testutil::{fails, json, mut1ny_classes, ok, stage, usage_error, write_manifest};
use serde_json::{Value, json};

const SKIN: u8 = 8;
const EYES: u8 = 2;
const NOSE: u8 = 3;
const LIPS: u8 = 1;
const BROWS: u8 = 6;
const HAIR: u8 = 4;
const SKIN_RGB: [u8; 3] = [196, 148, 124];

/// Draws a face (Mut1ny classes) into `mask` and paints its skin `SKIN_RGB` (features dark)
/// into `photo`: centre (cx, cy), half-width `s`, rotation `theta`.
#[allow(clippy::too_many_arguments)]
fn draw(
    photo: &mut image::RgbImage,
    mask: &mut image::GrayImage,
    cx: f64,
    cy: f64,
    s: f64,
    theta: f64,
    hide_left_eye: bool,
) {
    let (sn, cs) = theta.sin_cos();
    let (w, h) = mask.dimensions();
    for y in 0..h {
        for x in 0..w {
            let (dx, dy) = (f64::from(x) + 0.5 - cx, f64::from(y) + 0.5 - cy);
            let (u, v) = ((cs * dx + sn * dy) / s, (-sn * dx + cs * dy) / s);
            let ell = |cu: f64, cv: f64, ru: f64, rv: f64| ((u - cu) / ru).powi(2) + ((v - cv) / rv).powi(2) <= 1.0;
            if !ell(0.0, 0.0, 1.0, 1.3) {
                continue;
            }
            let c = if ell(0.38, -0.2, 0.15, 0.07) && !hide_left_eye || ell(-0.38, -0.2, 0.15, 0.07) {
                EYES
            } else if ell(0.38, -0.45, 0.2, 0.04) || ell(-0.38, -0.45, 0.2, 0.04) {
                BROWS
            } else if (-0.2..0.32).contains(&v) && u.abs() < 0.06 + 0.12 * (v + 0.2) {
                NOSE
            } else if ell(0.0, 0.64, 0.3, 0.085) {
                LIPS
            } else {
                SKIN
            };
            mask.put_pixel(x, y, image::Luma([c]));
            let rgb = if c == SKIN { SKIN_RGB } else { [60, 30, 30] };
            photo.put_pixel(x, y, image::Rgb(rgb));
        }
    }
}

/// Five items: frontal, rotated, hair over the subject's left cheek, left eye hidden, and one
/// without a predicted mask. Returns the manifest path.
fn dataset(dir: &Path) -> PathBuf {
    let mut items = vec![];
    let cases: [(&str, f64, bool, bool); 4] = [
        ("frontal", 0.0, false, false),
        ("rotated", 0.2, false, false),
        ("hair", 0.0, true, false),
        ("one-eye", 0.0, false, true),
    ];
    for (name, theta, hair, hide) in cases {
        let (w, h) = (260, 300);
        let mut photo = image::RgbImage::from_pixel(w, h, image::Rgb([20, 90, 40]));
        let mut mask = image::GrayImage::new(w, h);
        draw(&mut photo, &mut mask, 130.0, 150.0, 90.0, theta, hide);
        if hair {
            // a lock of hair over the subject's left cheek (image right)
            for y in 140..220 {
                for x in 150..230 {
                    if mask.get_pixel(x, y).0[0] == SKIN {
                        mask.put_pixel(x, y, image::Luma([HAIR]));
                        photo.put_pixel(x, y, image::Rgb([30, 20, 10]));
                    }
                }
            }
        }
        photo.save(dir.join(format!("{name}.png"))).unwrap();
        mask.save(dir.join(format!("{name}.tif"))).unwrap();
        items.push(json!({"id": name, "image": format!("{name}.png"), "pred_mask": format!("{name}.tif"), "participant": name}));
    }
    image::RgbImage::new(10, 10).save(dir.join("nomask.png")).unwrap();
    items.push(json!({"id": "nomask", "image": "nomask.png"}));
    let p = dir.join("pred.json");
    write_manifest(&p, mut1ny_classes(), items);
    p
}

fn reference(dir: &Path, rows: &str) -> PathBuf {
    let p = dir.join("ref.csv");
    std::fs::write(
        &p,
        format!("participant_id,age,left_cheek_L,left_cheek_a,left_cheek_b,right_cheek_L,right_cheek_a,right_cheek_b\n{rows}"),
    )
    .unwrap();
    p
}

fn lab_row(id: &str, age: u32) -> String {
    let l = srgb8_to_lab(SKIN_RGB, WhitePoint::D65);
    format!(
        "{id},{age},{},{},{},{},{},{}\n",
        l[0],
        l[1],
        l[2],
        l[0] + 1.0,
        l[1],
        l[2]
    )
}

/// `cheek-lab -i INPUT -o OUT`, run in `INPUT`'s folder.
fn cheek_lab(input: &Path, out: &Path) -> Command {
    let mut c = stage("cheek-lab", input.parent().expect("a folder"));
    c.arg("-i").arg(input).arg("-o").arg(out);
    c
}

/// Runs `c` and returns how it ended.
fn output(c: &mut Command) -> Output {
    c.output().expect("cheek-lab starts")
}

/// Runs `c`, requires success and returns its stderr.
fn succeeds(c: &mut Command) -> String {
    String::from_utf8_lossy(&ok(output(c)).stderr).into_owned()
}

fn read_csv(p: &Path) -> Vec<std::collections::HashMap<String, String>> {
    let mut r = csv::Reader::from_path(p).unwrap();
    let h = r.headers().unwrap().clone();
    r.records()
        .map(|rec| {
            h.iter()
                .zip(rec.unwrap().iter())
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

#[test]
fn measures_drawn_faces_and_compares_with_the_reference() {
    let d = tempfile::tempdir().unwrap();
    let t = d.path();
    let m = dataset(t);
    let rows = [
        lab_row("frontal#0", 30),
        lab_row("rotated#0", 31),
        lab_row("hair#0", 32),
        lab_row("one-eye#0", 33),
        lab_row("ghost#0", 34),
    ]
    .concat();
    let r = reference(t, &rows);
    let (out, rep, qc) = (t.join("cheeks.csv"), t.join("cheeks.json"), t.join("qc"));
    succeeds(
        cheek_lab(&m, &out)
            .arg("--reference")
            .arg(&r)
            .arg("--report")
            .arg(&rep)
            .arg("--qc-dir")
            .arg(&qc),
    );
    let rows = read_csv(&out);
    assert_eq!(rows.len(), 5, "one row per face, and one for the item without a mask");
    let by = |id: &str| rows.iter().find(|r| r["id"] == id).unwrap().clone();
    let want = srgb8_to_lab(SKIN_RGB, WhitePoint::D65);
    for id in ["frontal", "rotated"] {
        let r = by(id);
        for s in ["left", "right"] {
            assert_eq!(
                r[&format!("{s}_status")],
                "ok",
                "{id} {s}: {}",
                r[&format!("{s}_reason")]
            );
            let l: f64 = r[&format!("{s}_L")].parse().unwrap();
            assert!((l - want[0]).abs() < 1e-3, "{id} {s}: {l}");
            // the patch scales with the face: face width ≈ 180 px → 30 px
            assert_eq!(r["patch_px"], "30", "{id}");
        }
        assert!(r["left_dE2000"].parse::<f64>().unwrap() < 1e-3);
        assert!(
            r["right_dE76"].parse::<f64>().unwrap() > 0.99,
            "the reference's right L* is 1 off"
        );
        let fwhr: f64 = r["fwhr"].parse().unwrap();
        assert!((fwhr - 180.0 / (1.005 * 90.0)).abs() < 0.08, "{id}: fWHR {fwhr}");
        assert!(!r["ref.age"].is_empty(), "reference metadata carried");
        assert_eq!(r["left_ita_category"], "intermediate");
    }
    let hair = by("hair");
    assert_eq!(hair["left_status"], "not_measurable");
    assert!(
        hair["left_reason"].contains("too little skin"),
        "{}",
        hair["left_reason"]
    );
    assert_eq!(hair["left_L"], "", "no invented value");
    assert_eq!(hair["right_status"], "ok");
    let one = by("one-eye");
    assert_eq!(
        (one["left_status"].as_str(), one["left_reason"].as_str()),
        ("not_measurable", "left eye not visible")
    );
    assert_eq!(one["right_status"], "ok");
    let none = by("nomask");
    assert_eq!(none["left_reason"], "item has no pred_mask");

    let rep = json(&rep);
    assert_eq!(rep["faces"], 4);
    assert_eq!(rep["cheeks_measured"], 6);
    let a = &rep["agreement"];
    assert_eq!(a["faces_joined"], 4);
    assert_eq!(a["reference_rows_unmatched"], 1, "ghost#0 matches nothing");
    assert_eq!(a["cheeks_compared"], 6);
    assert_eq!(a["cheeks_not_measurable"], 2);
    let bias_l = a["channels"][0]["mean_bias"].as_f64().unwrap();
    // four of the six compared cheeks are right cheeks, whose reference L* is 1 higher
    assert!((bias_l + 4.0 / 6.0).abs() < 1e-3, "{bias_l}");
    assert!(t.join("cheeks_scatter.png").is_file());
    assert!(qc.join("frontal_f0.png").is_file() && qc.join("contact_sheet.png").is_file());
    // two sections (not measurable, then by CIEDE2000) of one row of two faces each, 4 across
    let sheet = image::image_dimensions(qc.join("contact_sheet.png")).unwrap();
    assert_eq!(sheet, (4 * 180 + 5 * 8, 44 + 2 * (22 + 2 * 14 + 180 + 8) + 14 + 20));

    // D50 and mean-of-Lab change the numbers; the summary reads the report
    let out50 = t.join("c50.csv");
    succeeds(cheek_lab(&m, &out50).args(["--white", "d50"]));
    let l50: f64 = read_csv(&out50)[0]["left_a"].parse().unwrap();
    assert!((l50 - want[1]).abs() > 0.5);
    let summary = succeeds(stage("cheek-lab", t).arg("--summary").arg(t.join("cheeks.json")));
    assert!(summary.contains("CIEDE2000 median"), "{summary}");
}

#[test]
fn two_faces_are_measured_one_or_both_by_flag() {
    let d = tempfile::tempdir().unwrap();
    let t = d.path();
    let (mut photo, mut mask) = (image::RgbImage::new(400, 220), image::GrayImage::new(400, 220));
    draw(&mut photo, &mut mask, 100.0, 110.0, 60.0, 0.0, false);
    draw(&mut photo, &mut mask, 290.0, 110.0, 75.0, 0.1, false);
    photo.save(t.join("two.png")).unwrap();
    mask.save(t.join("two.tif")).unwrap();
    let input = t.join("m.json");
    let item = json!({"id": "two", "image": "two.png", "pred_mask": "two.tif"});
    write_manifest(&input, mut1ny_classes(), vec![item]);
    let out = t.join("c.csv");
    succeeds(&mut cheek_lab(&input, &out));
    let rows = read_csv(&out);
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0]["faces_in_image"].as_str(), rows[0]["face_id"].as_str()),
        ("2", "two#0")
    );
    // the largest face is the one on the right
    assert!(rows[0]["left_x0"].parse::<u32>().unwrap() > 250);
    succeeds(cheek_lab(&input, &out).args(["--faces", "all"]));
    let rows = read_csv(&out);
    assert_eq!(
        rows.iter().map(|r| r["face_id"].as_str()).collect::<Vec<_>>(),
        ["two#0", "two#1"]
    );
    assert!(
        rows.iter()
            .all(|r| r["left_status"] == "ok" && r["right_status"] == "ok")
    );
    assert!(rows[1]["left_x0"].parse::<u32>().unwrap() < 200);
}

/// The frontal face's cheeks in `csv`: left and right L*a*b*, or the reason there are none.
fn cheeks_of(csv: &Path, id: &str) -> Result<[[f64; 3]; 2], String> {
    let rows = read_csv(csv);
    let r = rows.iter().find(|r| r["id"] == id).unwrap();
    if r["left_status"] != "ok" {
        return Err(r["left_reason"].clone());
    }
    let lab = |s: &str| ["L", "a", "b"].map(|c| r[&format!("{s}_{c}")].parse::<f64>().unwrap());
    Ok([lab("left"), lab("right")])
}

#[test]
fn phone_photos_are_measured_as_the_upright_srgb_original() {
    use facepipe_core::photo::encode::{self, IccVersion, Phone, Space};
    let d = tempfile::tempdir().unwrap();
    let t = d.path();
    let m = dataset(t);
    let out = t.join("c.csv");
    succeeds(&mut cheek_lab(&m, &out));
    let original = cheeks_of(&out, "frontal").unwrap();
    let upright = image::open(t.join("frontal.png")).unwrap().to_rgb8();
    let phone = |orientation, space, icc| Phone {
        orientation,
        space,
        icc,
        quality: 95,
    };
    // (file, bytes, largest CIEDE2000 allowed, profile the CSV names)
    let mut kinds: Vec<(String, Vec<u8>, f64, &str)> = (1..=8)
        .map(|o| {
            let png = encode::phone_png(
                &image::DynamicImage::ImageRgb8(upright.clone()),
                phone(o, Space::Srgb, None),
            );
            (format!("o{o}.png"), png.unwrap(), 1e-3, "sRGB (no profile)")
        })
        .collect();
    for (space, v, name) in [
        (Space::DisplayP3, IccVersion::V4, "Display P3 → sRGB"),
        (Space::AdobeRgb, IccVersion::V2, "Adobe RGB (1998) → sRGB"),
        (Space::Srgb, IccVersion::V4, "sRGB IEC61966-2.1"),
    ] {
        let png = encode::phone_png(
            &image::DynamicImage::ImageRgb8(upright.clone()),
            phone(1, space, Some(v)),
        );
        kinds.push((format!("{space:?}.png"), png.unwrap(), 0.5, name));
    }
    let jpg = encode::phone_jpeg(&upright, phone(6, Space::DisplayP3, Some(IccVersion::V4))).unwrap();
    kinds.push(("phone.jpg".into(), jpg, 0.5, "Display P3 → sRGB"));
    for (file, bytes, within, profile) in kinds {
        std::fs::write(t.join(&file), bytes).unwrap();
        let one = t.join("one.json");
        let item = json!({"id": "frontal", "image": file, "pred_mask": "frontal.tif"});
        write_manifest(&one, mut1ny_classes(), vec![item]);
        let got = cheeks_of(
            &{
                succeeds(&mut cheek_lab(&one, &out));
                out.clone()
            },
            "frontal",
        )
        .unwrap_or_else(|why| panic!("{file}: {why}"));
        let worst = (0..2)
            .map(|k| facepipe_core::colour::ciede2000(got[k], original[k]))
            .fold(0.0, f64::max);
        eprintln!("{file}: CIEDE2000 against the upright sRGB original, worse cheek {worst:.4}");
        for k in 0..2 {
            let de = facepipe_core::colour::ciede2000(got[k], original[k]);
            assert!(
                de <= within,
                "{file} cheek {k}: CIEDE2000 {de} ({:?} vs {:?})",
                got[k],
                original[k]
            );
        }
        let row = &read_csv(&out)[0];
        assert_eq!(row["colour_profile"], profile, "{file}");
        assert_eq!(
            row["orientation"],
            file.strip_prefix('o')
                .map_or(if file == "phone.jpg" { "6" } else { "1" }, |f| &f[..1])
        );
    }
    // a mask of the stored (sideways) photo is refused, saying why
    let sideways = image::open(t.join("frontal.tif")).unwrap().rotate270();
    sideways.save(t.join("sideways.tif")).unwrap();
    let one = t.join("one.json");
    write_manifest(
        &one,
        mut1ny_classes(),
        vec![json!({"id": "frontal", "image": "phone.jpg", "pred_mask": "sideways.tif"})],
    );
    fails(
        output(&mut cheek_lab(&one, &out)),
        "phone.jpg is 260×300 as shown (EXIF orientation 6 turns it a quarter; it is stored 300×260) but its pred_mask",
    );
    // grey photos are segmented, not measured
    image::DynamicImage::ImageRgb8(upright)
        .to_luma8()
        .save(t.join("grey.png"))
        .unwrap();
    write_manifest(
        &one,
        mut1ny_classes(),
        vec![json!({"id": "frontal", "image": "grey.png", "pred_mask": "frontal.tif"})],
    );
    succeeds(&mut cheek_lab(&one, &out));
    assert_eq!(cheeks_of(&out, "frontal").unwrap_err(), "no colour: grayscale photo");
    let row = &read_csv(&out)[0];
    assert!(
        row["fwhr"].parse::<f64>().is_ok(),
        "the face's geometry is still measured"
    );
}

#[test]
fn bad_inputs_are_named_and_nothing_is_written() {
    let d = tempfile::tempdir().unwrap();
    let t = d.path();
    let m = dataset(t);
    let out = t.join("cheeks.csv");
    let refused = |extra: &[&str], r: Option<&Path>, msg: &str| {
        let mut c = cheek_lab(&m, &out);
        c.args(extra);
        if let Some(r) = r {
            c.arg("--reference").arg(r);
        }
        fails(output(&mut c), msg);
        assert!(!out.exists());
    };
    let r = reference(t, &[lab_row("a#0", 1), lab_row("a#0", 2)].concat());
    refused(&[], Some(&r), "ref.csv:3: id \"a#0\" appears again");
    std::fs::write(t.join("noid.csv"), "id,left_cheek_L\nx,1\n").unwrap();
    refused(&[], Some(&t.join("noid.csv")), "no column \"participant_id\"");
    let r = reference(t, "x#0,1,60,1o,1,1,1,1\n");
    refused(&[], Some(&r), "ref.csv:2: column \"left_cheek_a\"");
    refused(&["--mask-field", "mask"], None, "no item of");
    refused(
        &["--skin-class", "cheek"],
        None,
        "class \"cheek\" is not among the classes",
    );
    // a mask of another size than its photo
    image::GrayImage::new(5, 5).save(t.join("frontal.tif")).unwrap();
    refused(&[], None, "frontal.png is 260×300 but its pred_mask");
    // a foreign file at -o is never replaced
    std::fs::write(&out, "my notes\n").unwrap();
    fails(output(&mut cheek_lab(&m, &out)), "refusing to overwrite");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "my notes\n");
}

/// Issue 11's hostile cases for cheek-lab: QC reruns keep a user's files, a decompression-bomb
/// photo is refused from its header, `-` is stdout, a reference matching nothing warns with the
/// --join hint, QC names never collide, non-finite flags are usage errors, duplicate reference
/// columns are refused, and a second run on the same outputs is refused while the first holds
/// them.
#[test]
fn hostile_outputs_and_inputs() {
    let d = tempfile::tempdir().unwrap();
    let t = d.path();
    let m = dataset(t);
    let out = t.join("cheeks.csv");
    let qc = t.join("qc");

    // --qc-dir rerun: the user's file makes it refuse; --force writes beside it
    succeeds(cheek_lab(&m, &out).arg("--qc-dir").arg(&qc));
    assert!(qc.join("frontal_f0.png").is_file());
    std::fs::write(qc.join("notes.txt"), "mine").unwrap();
    let before = std::fs::read(&out).unwrap();
    fails(
        output(cheek_lab(&m, &out).arg("--qc-dir").arg(&qc)),
        "cheek-lab did not write (notes.txt)",
    );
    assert_eq!(std::fs::read(&out).unwrap(), before, "a refusal changes nothing");
    succeeds(cheek_lab(&m, &out).arg("--qc-dir").arg(&qc).arg("--force"));
    assert_eq!(std::fs::read_to_string(qc.join("notes.txt")).unwrap(), "mine");
    assert!(qc.join("frontal_f0.png").is_file());

    // `-` is stdout for the CSV and for the report; no file named `-` appears
    let o = ok(output(&mut cheek_lab(&m, Path::new("-"))));
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("id,face,face_id,image,mask,"));
    let o = ok(output(cheek_lab(&m, &t.join("c2.csv")).args(["--report", "-"])));
    let rep: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(rep["schema"], "facepipe/cheek-lab");
    assert!(!t.join("-").exists());
    fails(
        output(cheek_lab(&m, Path::new("-")).args(["--report", "-"])),
        "cannot both be `-`",
    );

    // a reference whose ids match no face: a warning with the --join hint, in the report too
    let r = reference(t, &[lab_row("P-17", 30), lab_row("P-18", 31)].concat());
    let rep_path = t.join("r.json");
    let err = succeeds(
        cheek_lab(&m, &t.join("c3.csv"))
            .arg("--reference")
            .arg(&r)
            .arg("--report")
            .arg(&rep_path),
    );
    assert!(
        err.contains("none of its 2 ids matches a face") && err.contains("--join"),
        "{err}"
    );
    let rep = json(&rep_path);
    assert!(rep["warnings"].to_string().contains("none of its 2 ids"));

    // a reference with a column name twice
    std::fs::write(
        t.join("dup.csv"),
        "participant_id,left_cheek_L,left_cheek_a,left_cheek_b,right_cheek_L,right_cheek_a,right_cheek_b,left_cheek_L\n",
    )
    .unwrap();
    fails(
        output(
            cheek_lab(&m, &t.join("c4.csv"))
                .arg("--reference")
                .arg(t.join("dup.csv")),
        ),
        "column \"left_cheek_L\" appears twice (columns 2 and 8)",
    );
    assert!(!t.join("c4.csv").exists());

    // non-finite or out-of-range numbers are usage errors (exit 2)
    for (flag, v) in [
        ("--cheek-out", "NaN"),
        ("--cheek-down", "inf"),
        ("--min-skin", "2"),
        ("--patch-px", "0"),
    ] {
        usage_error(output(cheek_lab(&m, &t.join("c5.csv")).args([flag, v])), flag);
    }

    // ids that differ only in characters a file name cannot hold get distinct QC pictures
    let mut v = json(&m);
    let frontal = v["items"][0].clone();
    let mut a = frontal.clone();
    a["id"] = "g1/a b".into();
    let mut b = frontal;
    b["id"] = "g1/a_b".into();
    v["items"] = json!([a, b]);
    let m2 = t.join("collide.json");
    std::fs::write(&m2, v.to_string()).unwrap();
    let qc2 = t.join("qc2");
    succeeds(cheek_lab(&m2, &t.join("c6.csv")).arg("--qc-dir").arg(&qc2));
    let pics: Vec<String> = std::fs::read_dir(&qc2)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with("_f0.png"))
        .collect();
    assert_eq!(pics.len(), 2, "{pics:?}");

    // a second run on outputs another run holds is refused, naming the first
    let held = {
        let mut o = facepipe_core::out::Outputs::new("test", false);
        o.lock(out.as_path()).unwrap();
        o
    };
    let o = output(&mut cheek_lab(&m, &out));
    fails(o.clone(), "being written by another run");
    fails(o, &format!("pid {}", std::process::id()));
    drop(held);

    // a decompression-bomb photo (30000² claimed in a few bytes) is refused from its header
    std::fs::write(t.join("frontal.png"), facepipe_core::images::bomb_png(30_000, 30_000)).unwrap();
    let o7 = t.join("c7.csv");
    fails(output(&mut cheek_lab(&m, &o7)), "over the limit");
    assert!(!o7.exists());
}

#[test]
fn joins_on_an_item_field_and_refuses_what_would_mix_rows_up() {
    let d = tempfile::tempdir().unwrap();
    let t = d.path();
    let m = dataset(t);
    let out = t.join("cheeks.csv");
    // the items' `participant` field (as `photos` carries it from a CSV) joins the reference
    let r = reference(t, &[lab_row("frontal", 30), lab_row("rotated", 31)].concat());
    succeeds(
        cheek_lab(&m, &out)
            .arg("--reference")
            .arg(&r)
            .args(["--join", "participant"]),
    );
    let rows = read_csv(&out);
    let frontal = rows.iter().find(|r| r["id"] == "frontal").unwrap();
    assert_eq!(frontal["ref.age"], "30");
    assert!(frontal["left_dE2000"].parse::<f64>().unwrap() < 1e-3);
    // one reference row per photo cannot be shared by every face of it
    fails(
        output(
            cheek_lab(&m, &t.join("all.csv"))
                .arg("--reference")
                .arg(&r)
                .args(["--join", "id", "--faces", "all"]),
        ),
        "--join id gives one reference row per photo, so with --faces all",
    );
    // two outputs on one path
    let same = t.join("same");
    fails(
        output(cheek_lab(&m, &same).arg("--report").arg(&same)),
        "-o and --report are the same path",
    );
    assert!(!same.exists() && !t.join("all.csv").exists());
}

#[test]
fn a_moved_run_folder_can_still_be_reported() {
    let d = tempfile::tempdir().unwrap();
    let run_dir = d.path().join("run");
    std::fs::create_dir(&run_dir).unwrap();
    let m = dataset(&run_dir);
    let r = reference(&run_dir, &lab_row("frontal#0", 30));
    let (out, rep) = (run_dir.join("cheeks.csv"), run_dir.join("cheeks.json"));
    succeeds(
        cheek_lab(&m, &out)
            .arg("--reference")
            .arg(&r)
            .arg("--report")
            .arg(&rep)
            .arg("--qc-dir")
            .arg(run_dir.join("qc")),
    );
    let report = json(&rep);
    assert_eq!(
        (report["csv"].as_str(), report["qc_dir"].as_str()),
        (Some("cheeks.csv"), Some("qc"))
    );
    let moved = d.path().join("elsewhere");
    std::fs::rename(&run_dir, &moved).unwrap();
    ok(stage("report", &moved)
        .args(["-o", "page.html", "--cheeks", "cheeks.json"])
        .output()
        .unwrap());
    let page = std::fs::read_to_string(moved.join("page.html")).unwrap();
    assert!(
        !page.contains("names no CSV") && !page.contains("cannot read"),
        "the moved report finds its CSV"
    );
}
