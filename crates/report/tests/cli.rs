//! The report stage from the command line, on hand-written inputs: what it shows, and how it
//! refuses bad inputs and outputs that are not its own (tests/report_page.rs runs it on a
//! whole chain, in a browser).

use std::fs;
use std::path::Path;

use facepipe_testutil::{fails, run, stage, stderr_has};
use serde_json::json;

const METRICS: &str = "phase,epoch,train_loss,valid_loss,pixel_accuracy,mean_dice,mean_iou,mean_dice_fg,mean_iou_fg,iou_background,iou_skin,lr_group0,lr_group1,lr_group2,seconds
frozen,0,1.5,1.4,0.8,0.5,0.4,0.3,0.2,0.9,0.2,1e-4,1e-4,1e-3,1.0
fit,0,1.2,1.1,0.85,0.6,0.5,0.4,0.3,0.92,,2e-4,2e-4,2e-3,1.0
";

/// A model directory as unet-train writes it, with two epochs and one lr_find sweep.
fn model_dir(dir: &Path) {
    fs::create_dir_all(dir).unwrap();
    let record = json!({"phase": "fit", "epoch": 0, "train_loss": 1.2, "valid_loss": 1.1,
        "mean_iou_fg": 0.3, "mean_dice_fg": 0.4, "pixel_accuracy": 0.85});
    let lrs: Vec<f64> = (0..60).map(|k| 1e-6 * 1.2f64.powi(k)).collect();
    let losses: Vec<f64> = (0..60).map(|k| 2.0 - (k as f64 / 30.0 - 1.0).powi(2) * -0.5).collect();
    let info = json!({
        "format": "facepipe.model", "format_version": 1, "arch": "smp",
        "classes": [{"id": 0, "name": "background", "rgb": [0, 0, 0]}, {"id": 1, "name": "skin", "rgb": [128, 128, 128]}],
        "preprocessing": {"input_size": 64}, "best": {"record": record}, "last": {"record": record},
        "recipe": {"loss": "ce", "steps": []}, "manifest": "/data/split.json", "manifest_sha256": "ab12",
        "n_train": 8, "n_valid": 4, "batch_size": 2, "seed": 7, "device": "cpu", "pretrained": null,
        "lr_find": [{"lrs": lrs, "losses": losses, "suggestions": {"valley": 1e-4, "minimum": 1e-5, "steep": 3e-5}}],
        "fit_lrs": [{"phase": "fit", "lr_max": [1e-4, 1e-4, 1e-3], "source": "valley"}],
        "epochs": 2, "facepipe_version": "0.1.0"
    });
    fs::write(dir.join("model.json"), info.to_string()).unwrap();
    fs::write(dir.join("metrics.csv"), METRICS).unwrap();
}

#[test]
fn a_model_alone_gives_a_page_with_its_charts_and_notes_for_the_rest() {
    let d = tempfile::tempdir().unwrap();
    model_dir(&d.path().join("model"));
    let out = run(
        d.path(),
        "report",
        &["-o", "page.html", "--model", "model", "--title", "run <7>", "-v"],
    );
    stderr_has(&out, "bytes in");
    let html = fs::read_to_string(d.path().join("page.html")).unwrap();
    assert!(html.contains("<title>run &lt;7&gt;</title>"));
    for chart in ["Loss", "Validation IoU per class", "Learning rate", "lr_find 1"] {
        assert!(html.contains(&format!(">\n{chart}\n</text>")), "{chart:?} chart");
    }
    assert!(html.contains("valley 1.00e-4"), "the suggestions are marked");
    assert!(
        html.contains("unfrozen") || html.contains("fit starts"),
        "phase changes are marked"
    );
    for missing in [
        "No manifest given",
        "No unet-eval directory given",
        "No cheek-lab report given",
    ] {
        assert!(html.contains(missing), "{missing:?}");
    }
    // a rerun replaces its own page; a file it did not write is refused, and kept, unless --force
    run(d.path(), "report", &["-o", "page.html", "--model", "model"]);
    fs::write(d.path().join("notes.html"), "<p>mine</p>").unwrap();
    let refused = stage("report", d.path())
        .args(["-o", "notes.html", "--model", "model"])
        .output()
        .unwrap();
    fails(refused, "notes.html");
    assert_eq!(fs::read_to_string(d.path().join("notes.html")).unwrap(), "<p>mine</p>");
    run(d.path(), "report", &["-o", "notes.html", "--model", "model", "--force"]);
    assert!(report::is_ours(&fs::read(d.path().join("notes.html")).unwrap()));
}

#[test]
fn bad_inputs_are_named_and_nothing_is_written() {
    let d = tempfile::tempdir().unwrap();
    let attempt = |args: &[&str], want: &str| {
        let out = stage("report", d.path())
            .args(["-o", "page.html"])
            .args(args)
            .output()
            .unwrap();
        fails(out, want);
        assert!(!d.path().join("page.html").exists(), "no page after {args:?}");
    };
    attempt(&[], "nothing to report");
    attempt(&["--model", "nowhere"], "nowhere/model.json");
    model_dir(&d.path().join("model"));
    fs::write(
        d.path().join("model/metrics.csv"),
        METRICS.replace("1.2,1.1", "1.2,lots"),
    )
    .unwrap();
    attempt(
        &["--model", "model"],
        "metrics.csv: line 3, column \"valid_loss\": \"lots\" is not a number",
    );
    fs::create_dir(d.path().join("eval")).unwrap();
    fs::write(d.path().join("eval/eval.json"), r#"{"format": "facepipe.model"}"#).unwrap();
    attempt(
        &["--eval", "eval"],
        "eval.json: format \"facepipe.model\" is not \"facepipe.eval\"",
    );
    fs::write(
        d.path().join("eval/eval.json"),
        r#"{"format": "facepipe.eval", "items": "many"}"#,
    )
    .unwrap();
    attempt(&["--eval", "eval"], "eval.json: unexpected content");
    let cheeks = json!({"format": "facepipe.cheek-lab", "input": {"path": "p.json", "sha256": "00", "bytes": 1},
        "facepipe_version": "0.1.0", "mask_field": "mask", "white_point": "d65", "faces_mode": "largest",
        "averaging": "mean-rgb", "patch_px": 50.0, "reference_face_width": 300.0, "min_skin": 0.5,
        "items": 1, "faces": 1, "cheeks_measured": 2, "cheeks_not_measurable": 0, "not_measurable": {},
        "fwhr_measured": 1, "agreement": null, "csv": "gone.csv"});
    fs::write(d.path().join("cheeks.json"), cheeks.to_string()).unwrap();
    attempt(&["--cheeks", "cheeks.json"], "gone.csv");
}
