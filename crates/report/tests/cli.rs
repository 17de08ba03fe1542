//! The report stage from the command line, on hand-written inputs: what it shows, and how it
//! refuses bad inputs and outputs that are not its own (tests/report_page.rs runs it on a
//! whole chain, in a browser).

use std::fs;
use std::path::Path;

use facepipe_testutil::{fails, run, stage, stderr_has};
use serde_json::json;

/// A model directory as unet-train writes it (through unet-train's own types), with two
/// epochs (the second with a class absent) and one lr_find sweep. Written the way files were
/// named before the `schema` rule, which the report still reads.
fn model_dir(dir: &Path) {
    use facepipe_formats::model::*;
    use facepipe_formats::recipe::Recipe;
    fs::create_dir_all(dir).unwrap();
    let record = |phase: &str, train_loss: f64, valid_loss: f64, skin: Option<f64>| EpochRecord {
        phase: phase.into(),
        epoch: 0,
        train_loss,
        valid_loss,
        dice: vec![Some(0.95), skin],
        iou: vec![Some(0.9), skin],
        mean_dice: 0.5,
        mean_iou: 0.4,
        mean_dice_fg: 0.3,
        mean_iou_fg: 0.2,
        pixel_accuracy: 0.85,
        lrs: [1e-4, 1e-4, 1e-3],
        seconds: 1.0,
        size: 64,
    };
    let records = [record("frozen", 1.5, 1.4, Some(0.2)), record("fit", 1.2, 1.1, None)];
    let files = |stem: &str| WeightFiles {
        burnpack: format!("{stem}.bpk"),
        safetensors: format!("{stem}.safetensors"),
        record: records[1].clone(),
        burnpack_sha256: None,
        safetensors_sha256: None,
    };
    let classes = vec![
        facepipe_core::Class::new(0, "background", [0, 0, 0]),
        facepipe_core::Class::new(1, "skin", [128, 128, 128]),
    ];
    let info = ModelInfo {
        schema: "facepipe.model".into(),
        schema_version: 1,
        arch: Arch::Smp,
        classes: classes.clone(),
        preprocessing: Preprocessing {
            input_size: 64,
            crop: "centre".into(),
            resize: "bilinear".into(),
            mean: [0.485, 0.456, 0.406],
            std: [0.229, 0.224, 0.225],
        },
        best: files("best"),
        last: files("last"),
        recipe: Recipe::default(),
        manifest: "/data/split.json".into(),
        manifest_sha256: "ab12".into(),
        n_train: 8,
        n_valid: 4,
        batch_size: 2,
        seed: 7,
        device: "cpu".into(),
        pretrained: None,
        lr_find: vec![LrFind {
            lrs: (0..60).map(|k| 1e-6 * 1.2f64.powi(k)).collect(),
            losses: (0..60).map(|k| 2.0 - (k as f64 / 30.0 - 1.0).powi(2) * -0.5).collect(),
            suggestions: Some(Suggestions {
                valley: 1e-4,
                minimum: 1e-5,
                steep: 3e-5,
            }),
            untrusted: None,
        }],
        fit_lrs: vec![FitLr {
            phase: "fit".into(),
            lr: ResolvedLr {
                lr_max: [1e-4, 1e-4, 1e-3],
                source: LrSource::Valley,
                reason: None,
            },
        }],
        epochs: 2,
        facepipe_version: "0.1.0".into(),
    };
    // the old names: `format`, `format_version`
    let text = serde_json::to_string(&info)
        .unwrap()
        .replace("\"schema\":", "\"format\":")
        .replace("\"schema_version\":", "\"format_version\":");
    fs::write(dir.join("model.json"), text).unwrap();
    let metrics = facepipe_formats::metrics::to_csv(&records, &classes).unwrap();
    fs::write(dir.join("metrics.csv"), metrics).unwrap();
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
    let metrics = fs::read_to_string(d.path().join("model/metrics.csv")).unwrap();
    fs::write(
        d.path().join("model/metrics.csv"),
        metrics.replace("1.2,1.1", "1.2,lots"),
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
        "eval.json: schema \"facepipe.model\" is not \"facepipe/eval\" (is it unet-eval's eval.json?)",
    );
    fs::write(
        d.path().join("eval/eval.json"),
        r#"{"format": "facepipe.eval", "format_version": 1, "items": "many"}"#,
    )
    .unwrap();
    attempt(&["--eval", "eval"], "eval.json: unexpected content");
    let cheeks = json!({"schema": "facepipe/cheek-lab", "schema_version": 1, "input": {"path": "p.json", "sha256": "00", "bytes": 1},
        "facepipe_version": "0.1.0", "mask_field": "mask", "white_point": "d65", "faces_mode": "largest",
        "averaging": "mean-rgb", "patch_px": 50.0, "reference_face_width": 300.0, "min_skin": 0.5,
        "items": 1, "faces": 1, "cheeks_measured": 2, "cheeks_not_measurable": 0, "not_measurable": {},
        "fwhr_measured": 1, "warnings": [], "agreement": null, "csv": "gone.csv"});
    fs::write(d.path().join("cheeks.json"), cheeks.to_string()).unwrap();
    attempt(&["--cheeks", "cheeks.json"], "gone.csv");
}
