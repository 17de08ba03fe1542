//! Photos as phones write them, through the chain: `demo-faces --phone` writes each demo photo
//! as a phone JPEG (stored sideways or flipped with an EXIF orientation, in sRGB, Display P3
//! or Adobe RGB with the profile embedded); `photos` → `unet-eval` → `cheek-lab` on them must
//! give what the untouched PNGs give: masks in the shown orientation, the same predictions,
//! and the same cheek colours.

use std::collections::HashMap;
use std::path::Path;

use facepipe_core::colour::ciede2000;
use facepipe_testutil::{json, run, train_tiny};
use serde_json::{Value, json};

/// Cheek L*a*b* by face id (left, right), for the faces whose cheeks are both measured.
fn cheeks(csv: &Path) -> HashMap<String, [[f64; 3]; 2]> {
    let mut r = csv::Reader::from_path(csv).unwrap();
    let h = r.headers().unwrap().clone();
    let col = |name: &str| h.iter().position(|c| c == name).unwrap();
    let mut out = HashMap::new();
    for rec in r.records() {
        let rec = rec.unwrap();
        if rec[col("left_status")] != *"ok" || rec[col("right_status")] != *"ok" {
            continue;
        }
        let lab = |s: &str| ["L", "a", "b"].map(|c| rec[col(&format!("{s}_{c}"))].parse().unwrap());
        out.insert(rec[col("face_id")].to_string(), [lab("left"), lab("right")]);
    }
    out
}

fn items(m: &Value) -> &Vec<Value> {
    m["items"].as_array().unwrap()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[test]
fn phone_photos_through_the_chain_measure_as_the_originals() {
    let d = tempfile::tempdir().unwrap();
    let t = d.path();
    // 8 photos: every orientation once; portrait-sized, so a quarter turn shows in the size
    run(
        t,
        "demo-faces",
        &[
            "--out",
            "demo",
            "--count",
            "8",
            "--size",
            "96x128",
            "--seed",
            "11",
            "--two-faces",
            "0",
            "--phone",
            "-q",
        ],
    );
    run(t, "xml-pairs", &["-i", "demo/training.xml", "-o", "pairs.json"]);
    run(
        t,
        "rgb2class",
        &["-i", "pairs.json", "-o", "masks.json", "--out-dir", "masks", "-q"],
    );
    run(t, "split", &["-i", "masks.json", "-o", "split.json"]);
    run(t, "photos", &["-i", "demo/phone", "-o", "phone.json"]);

    // the manifest: every photo as shown
    let phone = json(&t.join("phone.json"));
    assert_eq!(items(&phone).len(), 8);
    for (i, it) in items(&phone).iter().enumerate() {
        let p = facepipe_core::photo::encode::phone_of(i as u32);
        assert_eq!(it["id"], format!("samples/g000/face_{i:05}"));
        assert_eq!(
            (it["width"].as_u64(), it["height"].as_u64()),
            (Some(96), Some(128)),
            "{}",
            it["id"]
        );
        assert_eq!(it["orientation"].as_u64(), Some(u64::from(p.orientation)));
        let converted = it["colour_profile"].as_str().unwrap().ends_with("→ sRGB");
        assert_eq!(
            converted,
            i % 4 == 1 || i % 4 == 3,
            "{}: {}",
            it["id"],
            it["colour_profile"]
        );
    }

    // a label drawn on the photo as shown fits the sideways-stored phone photo (rgb2class checks
    // the shown size; it refused "label is 96×128 but its image is 128×96")
    let mut pairs = json(&t.join("pairs.json"));
    for it in pairs["items"].as_array_mut().unwrap() {
        let img = it["image"]
            .as_str()
            .unwrap()
            .replace("samples/", "phone/samples/")
            .replace(".png", ".jpg");
        it["image"] = json!(img);
    }
    std::fs::write(t.join("phone_pairs.json"), serde_json::to_vec(&pairs).unwrap()).unwrap();
    run(
        t,
        "rgb2class",
        &[
            "-i",
            "phone_pairs.json",
            "-o",
            "phone_masks.json",
            "--out-dir",
            "phone_masks",
            "-q",
        ],
    );

    // unet-eval: masks at the shown size, predicting what it predicts on the originals
    train_tiny(t, "split.json", "model");
    run(
        t,
        "unet-eval",
        &[
            "--model",
            "model",
            "-i",
            "phone.json",
            "-o",
            "phone_pred.json",
            "--out-dir",
            "eval_phone",
            "--split",
            "all",
            "-q",
        ],
    );
    run(
        t,
        "unet-eval",
        &[
            "--model",
            "model",
            "-i",
            "pairs.json",
            "-o",
            "orig_pred.json",
            "--out-dir",
            "eval_orig",
            "--split",
            "all",
            "-q",
        ],
    );
    let (pp, op) = (json(&t.join("phone_pred.json")), json(&t.join("orig_pred.json")));
    let mask = |m: &Value, k: usize| {
        image::open(t.join(m["items"][k]["pred_mask"].as_str().unwrap()))
            .unwrap()
            .to_luma8()
    };
    let (mut same, mut all) = (0usize, 0usize);
    for k in 0..8 {
        let (a, b) = (mask(&pp, k), mask(&op, k));
        assert_eq!(a.dimensions(), (96, 128), "{}", pp["items"][k]["id"]);
        same += a.as_raw().iter().zip(b.as_raw()).filter(|(x, y)| x == y).count();
        all += a.as_raw().len();
    }
    let agree = same as f64 / all as f64;
    eprintln!("predictions on the phone photos agree with the originals' on {agree:.4} of pixels");
    assert!(
        agree >= 0.97,
        "the phone photos' predictions agree with the originals' on {agree:.3} of pixels"
    );

    // cheek-lab on the true masks: the originals' cheek colours
    let masks = json(&t.join("masks.json"));
    let mask_of: HashMap<&str, &Value> = items(&masks)
        .iter()
        .map(|i| (i["id"].as_str().unwrap(), &i["mask"]))
        .collect();
    let mut truth = phone.clone();
    truth["classes"] = masks["classes"].clone();
    for it in truth["items"].as_array_mut().unwrap() {
        let id = it["id"].as_str().unwrap().to_string();
        it["mask"] = json!(mask_of[id.as_str()]);
    }
    std::fs::write(t.join("phone_true.json"), serde_json::to_vec(&truth).unwrap()).unwrap();
    run(
        t,
        "cheek-lab",
        &[
            "-i",
            "phone_true.json",
            "--mask-field",
            "mask",
            "-o",
            "phone.csv",
            "--report",
            "phone_cheeks.json",
        ],
    );
    // the report says what was applied to the photos
    let rep = json(&t.join("phone_cheeks.json"));
    let profiles = &rep["colour_profiles"];
    for (profile, n) in [
        ("sRGB (no profile)", 2),
        ("Display P3 → sRGB", 2),
        ("sRGB IEC61966-2.1", 2),
        ("Adobe RGB (1998) → sRGB", 2),
    ] {
        assert_eq!(profiles[profile].as_u64(), Some(n), "{profile}: {profiles}");
    }
    assert_eq!(rep["photos_oriented"].as_u64(), Some(7), "every orientation but 1");
    run(
        t,
        "cheek-lab",
        &["-i", "masks.json", "--mask-field", "mask", "-o", "orig.csv"],
    );
    let (got, want) = (cheeks(&t.join("phone.csv")), cheeks(&t.join("orig.csv")));
    assert!(want.len() >= 6, "{} faces measured on the originals", want.len());
    assert_eq!(got.len(), want.len(), "the same faces are measured");
    let de: Vec<f64> = want
        .iter()
        .flat_map(|(id, w)| {
            let g = got[id];
            (0..2).map(move |k| ciede2000(g[k], w[k]))
        })
        .collect();
    let (med, max) = (median(de.clone()), de.iter().copied().fold(0.0, f64::max));
    eprintln!(
        "{} cheeks, CIEDE2000 phone vs original: median {med:.3}, max {max:.3}",
        de.len()
    );
    assert!(
        med <= 0.5 && max <= 1.5,
        "CIEDE2000 phone vs original: median {med:.3}, max {max:.3}"
    );
}
