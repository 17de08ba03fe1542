//! `photos` on folders and CSVs of photos as cameras and phones write them: sideways with an
//! EXIF orientation, with colour profiles, 16-bit, grey, and broken in the ways files break.

use std::path::Path;

use facepipe_core::photo::encode::{self, IccVersion, Phone, Space};
use facepipe_testutil::{fails, json, ok, run, stage};
use serde_json::Value;

fn scene(w: u32, h: u32) -> image::RgbImage {
    image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(30 + x * 3) as u8, (40 + y * 2) as u8, 120]))
}

fn phone(orientation: u8, space: Space, icc: Option<IccVersion>) -> Phone {
    Phone {
        orientation,
        space,
        icc,
        quality: 92,
    }
}

fn put(dir: &Path, name: &str, bytes: &[u8]) {
    let p = dir.join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, bytes).unwrap();
}

/// A study folder: three participants' phone photos, one of them Display P3 and sideways, a
/// 16-bit PNG, a grey one, a notes file, and a hidden file.
fn study(dir: &Path) {
    let upright = scene(60, 80);
    put(
        dir,
        "p01/a.jpg",
        &encode::phone_jpeg(&upright, phone(6, Space::DisplayP3, Some(IccVersion::V4))).unwrap(),
    );
    put(
        dir,
        "p02/a.jpg",
        &encode::phone_jpeg(&scene(61, 80), phone(1, Space::Srgb, None)).unwrap(),
    );
    let deep = image::DynamicImage::ImageRgb8(scene(62, 80)).into_rgb16();
    put(
        dir,
        "p03/a.png",
        &encode::phone_png(
            &image::DynamicImage::ImageRgb16(deep),
            phone(8, Space::AdobeRgb, Some(IccVersion::V2)),
        )
        .unwrap(),
    );
    let mut grey = Vec::new();
    image::DynamicImage::ImageRgb8(scene(63, 80))
        .to_luma8()
        .write_to(&mut std::io::Cursor::new(&mut grey), image::ImageFormat::Png)
        .unwrap();
    put(dir, "p04/grey.png", &grey);
    put(dir, "notes.txt", b"session notes");
    put(dir, ".DS_Store", b"\0\0");
}

/// Runs `photos` with `args` in `dir`, however it ends.
fn photos(dir: &Path, args: &[&str]) -> std::process::Output {
    stage("photos", dir).args(args).output().expect("photos starts")
}

fn item<'a>(m: &'a Value, id: &str) -> &'a Value {
    m["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == id)
        .unwrap_or_else(|| panic!("no item {id}"))
}

#[test]
fn a_folder_of_phone_photos_becomes_a_manifest_of_them_as_shown() {
    let d = tempfile::tempdir().unwrap();
    study(&d.path().join("study"));
    ok(run(d.path(), "photos", &["-i", "study", "-o", "photos.json"]));
    let m = json(&d.path().join("photos.json"));
    let ids: Vec<&str> = m["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["p01/a", "p02/a", "p03/a", "p04/grey"],
        "name order; hidden and non-photo files passed over"
    );
    let p1 = item(&m, "p01/a");
    // stored 80×60 sideways, shown 60×80
    assert_eq!(
        (p1["width"].as_u64(), p1["height"].as_u64(), p1["orientation"].as_u64()),
        (Some(60), Some(80), Some(6))
    );
    assert_eq!(p1["colour_profile"], "Display P3 → sRGB");
    assert_eq!(p1["image"], "study/p01/a.jpg");
    assert_eq!(p1["group"], "p01");
    assert_eq!(p1["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(item(&m, "p02/a")["colour_profile"], "sRGB (no profile)");
    let p3 = item(&m, "p03/a");
    assert_eq!(
        (p3["bit_depth"].as_u64(), p3["colour_profile"].as_str()),
        (Some(16), Some("Adobe RGB (1998) → sRGB"))
    );
    assert_eq!(item(&m, "p04/grey")["colour"], "grayscale");
    ok(run(d.path(), "manifest-check", &["photos.json"]));
    // the same inputs give the same bytes
    let first = std::fs::read(d.path().join("photos.json")).unwrap();
    ok(run(d.path(), "photos", &["-i", "study", "-o", "photos.json"]));
    assert_eq!(first, std::fs::read(d.path().join("photos.json")).unwrap());
}

#[test]
fn bad_photos_are_each_named_and_refused_or_left_out_and_recorded() {
    let d = tempfile::tempdir().unwrap();
    let s = d.path().join("study");
    study(&s);
    let jpg = encode::phone_jpeg(&scene(64, 64), phone(1, Space::Srgb, None)).unwrap();
    put(&s, "p05/cut.jpg", &jpg[..jpg.len() / 2]);
    put(&s, "p05/empty.jpg", b"");
    put(&s, "p05/text.png", b"not a picture");
    put(&s, "p05/copy.jpg", &std::fs::read(s.join("p02/a.jpg")).unwrap());
    put(&s, "p05/iphone.heic", b"\0\0\0\x18ftypheic");
    let thin = image::RgbImage::new(400, 2);
    let mut b = Vec::new();
    thin.write_to(&mut std::io::Cursor::new(&mut b), image::ImageFormat::Png)
        .unwrap();
    put(&s, "p05/thin.png", &b);
    let out = photos(d.path(), &["-i", "study", "-o", "photos.json"]);
    for want in [
        "6 of 10 photos cannot be used",
        "p05/cut.jpg: is a broken JPEG: it ends before its end-of-image marker",
        "p05/empty.jpg: is empty (0 bytes)",
        "p05/text.png: is not an image facepipe reads",
        "p05/copy.jpg: has the same bytes as p02/a.jpg",
        "p05/iphone.heic: HEIC photos are not read: export them as JPEG",
        "p05/thin.png: is 400×2, more than 10 times as long as it is wide",
    ] {
        fails(out.clone(), want);
    }
    assert!(!d.path().join("photos.json").exists(), "nothing written");
    ok(run(
        d.path(),
        "photos",
        &["-i", "study", "-o", "photos.json", "--skip-bad"],
    ));
    let m = json(&d.path().join("photos.json"));
    assert_eq!(m["items"].as_array().unwrap().len(), 4);
    let skipped = m["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 6);
    assert_eq!(skipped[0]["file"], "p05/copy.jpg");
    let step = &m["provenance"][0];
    assert_eq!(
        (
            step["summary"]["skipped"].as_u64(),
            step["summary"]["duplicates"].as_u64()
        ),
        (Some(6), Some(1))
    );
}

#[test]
fn a_csv_names_the_photos_and_its_columns_travel_with_them() {
    let d = tempfile::tempdir().unwrap();
    let s = d.path().join("study");
    study(&s);
    std::fs::write(
        s.join("list.csv"),
        "\u{feff}participant,photo,session\nP-1,p01/a.jpg,1\nP-2,p02/a.jpg,2\n,,\n",
    )
    .unwrap();
    ok(run(d.path(), "photos", &["-i", "study/list.csv", "-o", "photos.json"]));
    let m = json(&d.path().join("photos.json"));
    let p1 = item(&m, "p01/a");
    assert_eq!(
        (p1["participant"].as_str(), p1["session"].as_str()),
        (Some("P-1"), Some("1"))
    );
    assert_eq!(m["items"].as_array().unwrap().len(), 2, "the blank row is passed over");
    assert_eq!(m["provenance"][0]["inputs"][0]["path"], "study/list.csv");
    // a CSV named by its bare file name, from its own folder
    ok(stage("photos", &s)
        .args(["-i", "list.csv", "-o", "../bare.json"])
        .output()
        .unwrap());
    assert_eq!(json(&d.path().join("bare.json"))["items"], m["items"]);
    // an id column gives the ids
    std::fs::write(s.join("ids.csv"), "id,image\nanna,p01/a.jpg\nben,p02/a.jpg\n").unwrap();
    ok(run(d.path(), "photos", &["-i", "study/ids.csv", "-o", "ids.json"]));
    let ids: Vec<String> = (json(&d.path().join("ids.json"))["items"].as_array().unwrap().iter())
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, ["anna", "ben"]);
    // refusals that name the file and the problem
    for (csv, want) in [
        (
            "id,image\nx,p01/a.jpg\nX,p02/a.jpg\n",
            "photos p01/a.jpg and p02/a.jpg would have the same id \"x\"",
        ),
        (
            "image,width\np01/a.jpg,3\n",
            "column \"width\" would overwrite the item field",
        ),
        (
            "image,group\np01/a.jpg,3\n",
            "column \"group\" would overwrite the item field",
        ),
        (
            "id,image\nx,p01/a.jpg\nx.tif/y,p02/a.jpg\n",
            "photos p01/a.jpg and p02/a.jpg clash: the first's output files",
        ),
        ("picture\np01/a.jpg\n", "has no column naming the photos"),
        ("image\nmissing.jpg\n", "missing.jpg: does not exist"),
    ] {
        std::fs::write(s.join("bad.csv"), csv).unwrap();
        fails(photos(d.path(), &["-i", "study/bad.csv", "-o", "bad.json"]), want);
        assert!(!d.path().join("bad.json").exists());
    }
}

#[test]
fn shards_read_their_part_and_merge_into_the_whole() {
    let d = tempfile::tempdir().unwrap();
    let s = d.path().join("study");
    study(&s);
    // photos (all, then in two parts, --skip-bad) and the parts merged: the merged manifest
    let sharded = || {
        for (out, shard) in [("all.json", None), ("s0.json", Some("0/2")), ("s1.json", Some("1/2"))] {
            let mut c = stage("photos", d.path());
            c.args(["-i", "study", "-o", out, "--skip-bad"]);
            if let Some(k) = shard {
                c.args(["--shard", k]);
            }
            ok(c.output().unwrap());
        }
        stage("manifest-merge", d.path())
            .args(["s0.json", "s1.json", "-o", "merged.json"])
            .output()
            .unwrap()
    };
    let same_as_unsharded = || {
        let (all, merged) = (json(&d.path().join("all.json")), json(&d.path().join("merged.json")));
        assert_eq!(all["items"], merged["items"]);
        assert_eq!(all["skipped"], merged["skipped"]);
        all
    };
    ok(sharded());
    same_as_unsharded();
    // names whose walk order is not their id order (a-2.png before a.jpg), a photo left out,
    // and a copy in another part: the parts still merge into the whole, the copy is refused
    let a2 = encode::phone_png(
        &image::DynamicImage::ImageRgb8(scene(50, 70)),
        phone(1, Space::Srgb, None),
    );
    put(&s, "p01/a-2.png", &a2.unwrap());
    put(&s, "p00/empty.jpg", b"");
    ok(sharded());
    let all = same_as_unsharded();
    let ids: Vec<&str> = (all["items"].as_array().unwrap().iter())
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids[..2], ["p01/a", "p01/a-2"], "id order");
    put(&s, "p05/copy.jpg", &std::fs::read(s.join("p02/a.jpg")).unwrap());
    fails(sharded(), "have the same bytes");
    fails(
        photos(d.path(), &["-i", "nowhere", "-o", "x.json"]),
        "nowhere does not exist: give a folder of photos or a CSV listing them",
    );
}
