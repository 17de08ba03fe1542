//! The report page as a reader gets it: `make all` on a few demo faces ends with report.html,
//! which headless Chromium opens (tests/browser/check_page.py) with every picture and chart
//! loaded, no error, nothing fetched from elsewhere, and a screenshot that is not blank.
//!
//! Without a Chromium (`make browser` installs Debian's) the browser checks are skipped with a
//! message; with FACEPIPE_REQUIRE_BROWSER set (CI) a missing browser fails them instead.

use std::path::{Path, PathBuf};
use std::process::Command;

use facepipe_testutil::{bin_dir, ok};
use serde_json::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// What check_page.py found, or `None` when no browser is installed (and none is required).
fn open_in_browser(page: &Path, shot: &Path) -> Option<Value> {
    let out = Command::new("python3")
        .arg(repo().join("tests/browser/check_page.py"))
        .args([page, shot])
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    if out.status.code() == Some(77) {
        assert!(
            std::env::var_os("FACEPIPE_REQUIRE_BROWSER").is_none(),
            "FACEPIPE_REQUIRE_BROWSER is set but no browser was found: {stdout}"
        );
        eprintln!("SKIPPED (browser checks): {stdout}");
        return None;
    }
    let found: Value = serde_json::from_str(&stdout).unwrap_or_else(|_| {
        panic!(
            "check_page.py ({}): {stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
    });
    Some(found)
}

fn problems(found: &Value) -> Vec<String> {
    found["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn make_all_ends_with_a_report_that_a_browser_shows_whole() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("out");
    // seconds of training, with every phase the page draws: fine_tune's two fits, lr_find, a fit
    let make = Command::new("make")
        .current_dir(repo())
        .args(["--no-print-directory", "all"])
        .arg(format!("OUT_DIR={}", out.display()))
        .arg(format!("BIN={}", bin_dir().display()))
        .args(["BUILD=:", "DEMO_COUNT=12", "DEMO_SIZE=64"])
        .arg("TRAIN_ARGS=--arch smp --size 32 --bs 2 --fine-tune-epochs 1 --epochs 1 --lr auto")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&ok(make).stdout).to_string();
    let page = out.join("report.html");
    assert!(
        said.contains(&format!("report: {}", page.display())),
        "make all ends by naming the page: {said}"
    );
    let html = std::fs::read_to_string(&page).unwrap();
    for section in [
        "Dataset",
        "Training",
        "Evaluation",
        "Cheek colour",
        "Provenance",
        "lr_find 1",
    ] {
        assert!(html.contains(section), "{section:?} missing from the page");
    }
    assert!(!html.contains("<script"), "the page runs no script");
    assert!(!html.contains("not from one run"), "make all's inputs are one run's");
    inputs_of_other_runs_are_named_on_the_page(&out);
    make_measure_runs_on_a_folder_of_photos(&out);

    let shot = d.path().join("shot.png");
    let Some(found) = open_in_browser(&page, &shot) else {
        return;
    };
    assert_eq!(problems(&found), Vec::<String>::new(), "{found:#}");
    let sections: Vec<&str> = found["sections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert_eq!(
        sections,
        [
            "Overview",
            "Dataset",
            "Training",
            "Evaluation",
            "Cheek colour",
            "Provenance"
        ]
    );
    // the contact sheet and both QC sheets; loss, IoU, learning rate, lr_find, and a scatter per
    // cheek-lab run that measured a cheek (the seconds-trained model may find none)
    assert_eq!(found["imgs"].as_array().unwrap().len(), 3, "{found:#}");
    let scatters = ["cheeks.json", "cheeks_truth.json"]
        .iter()
        .filter(|r| facepipe_testutil::json(&out.join(r))["cheeks_measured"].as_u64() > Some(0))
        .count();
    assert!(scatters >= 1, "the true masks give cheeks");
    let svgs = found["svgs"].as_array().unwrap();
    assert_eq!(svgs.len(), 4 + scatters, "{found:#}");
    assert!(
        svgs.iter().all(|s| s["texts"].as_u64().unwrap() >= 5),
        "every chart has its labels: {svgs:?}"
    );
    not_blank(&shot, found["height"].as_u64().unwrap());
}

/// `report` on a model, an evaluation and cheeks that are not one run's says so at the top.
fn inputs_of_other_runs_are_named_on_the_page(out: &Path) {
    // the same model directory with a model.json of other bytes: "another model"
    let other = out.join("other-model");
    std::fs::create_dir_all(&other).unwrap();
    for f in ["model.json", "metrics.csv"] {
        std::fs::copy(out.join("model").join(f), other.join(f)).unwrap();
    }
    let mut mj = std::fs::read(other.join("model.json")).unwrap();
    mj.extend(b"\n");
    std::fs::write(other.join("model.json"), mj).unwrap();
    let page = out.join("mixed.html");
    let report = Command::new(bin_dir().join("report"))
        .arg("-o")
        .arg(&page)
        .arg("--manifest")
        .arg(out.join("pairs.json"))
        .arg("--model")
        .arg(&other)
        .arg("--eval")
        .arg(out.join("eval"))
        .arg("--cheeks")
        .arg(out.join("cheeks.json"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&ok(report).stderr).to_string();
    let html = std::fs::read_to_string(&page).unwrap();
    for said in [
        "was made with another model than",
        "predictions.json, which is neither",
        "split.json, which is neither",
    ] {
        assert!(html.contains(said), "{said:?} not on the page");
        assert!(err.contains(said), "{said:?} not warned: {err}");
    }
}

/// `make measure` on the demo's photos with the run's model: photos → unet-eval → cheek-lab →
/// report, one run's page.
fn make_measure_runs_on_a_folder_of_photos(out: &Path) {
    let make = Command::new("make")
        .current_dir(repo())
        .args(["--no-print-directory", "measure"])
        .arg(format!("PHOTOS={}", out.join("demo-data/samples").display()))
        .arg(format!("MODEL={}", out.join("model").display()))
        .arg(format!("MEASURE_DIR={}", out.join("measure").display()))
        .arg(format!("BIN={}", bin_dir().display()))
        .arg("BUILD=:")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&ok(make).stdout).to_string();
    assert!(said.contains("cheeks: ") && said.contains("report: "), "{said}");
    let photos = facepipe_testutil::json(&out.join("measure/photos.json"));
    assert_eq!(photos["items"].as_array().unwrap().len(), 12);
    assert!(out.join("measure/cheeks.csv").is_file());
    let html = std::fs::read_to_string(out.join("measure/report.html")).unwrap();
    assert!(!html.contains("not from one run"));
}

/// A screenshot of the whole page, in many colours and mostly not background.
fn not_blank(shot: &Path, page_height: u64) {
    let img = image::open(shot).expect("the screenshot is a PNG").to_rgb8();
    assert_eq!(img.width(), 1400);
    assert_eq!(u64::from(img.height()), page_height.min(16000), "the whole page");
    let mut colours = std::collections::HashSet::new();
    let mut inked = 0usize;
    for p in img.pixels() {
        colours.insert(p.0);
        if p.0.iter().any(|&c| c < 200) {
            inked += 1;
        }
    }
    let share = inked as f64 / (img.width() * img.height()) as f64;
    assert!(colours.len() > 1000, "{} colours", colours.len());
    assert!(
        share > 0.05,
        "only {:.1} % of the screenshot is drawn on",
        100.0 * share
    );
}

/// The checker itself fails a page with a broken picture, a remote one, an empty SVG and a
/// script error: a broken report would not pass.
#[test]
fn the_browser_check_catches_a_broken_page() {
    let d = tempfile::tempdir().unwrap();
    let page = d.path().join("bad.html");
    std::fs::write(
        &page,
        r#"<!DOCTYPE html><html><head><meta charset="utf-8"><title>bad</title></head><body>
<img alt="broken" src="data:image/png;base64,AAAA"><img alt="remote" src="http://127.0.0.1:9/x.png">
<svg width="0" height="0"></svg><script>console.error("boom"); throw new Error("thrown");</script></body></html>"#,
    )
    .unwrap();
    let Some(found) = open_in_browser(&page, &d.path().join("shot.png")) else {
        return;
    };
    let got = problems(&found).join("\n");
    for want in [
        "image not decoded: broken",
        "fetched from outside the page: http://127.0.0.1:9/x.png",
        "svg without size or text",
        "console error: boom",
        "exception: Error: thrown",
    ] {
        assert!(got.contains(want), "{want:?} not in:\n{got}");
    }
}
