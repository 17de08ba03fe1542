//! The real `demo-faces` binary.

use std::fs;

use facepipe_testutil::{fails, run, stage, usage_error};

#[test]
fn writes_the_mut1ny_layout() {
    let d = tempfile::tempdir().unwrap();
    run(
        d.path(),
        "demo-faces",
        &[
            "--count",
            "5",
            "--size",
            "80x64",
            "--seed",
            "3",
            "--group-size",
            "2",
            "--out",
            "demo",
        ],
    );
    let out = d.path().join("demo");
    let xml = fs::read_to_string(out.join("training.xml")).unwrap();
    assert!(xml.contains(
        "<srcimg name=\"samples\\g002\\face_00004.png\"/>\r\n  <labelimg name=\"labels\\g002\\face_00004.png\"/>"
    ));
    assert!(xml.contains("<bboxes>"));
    let img = image::open(out.join("samples/g001/face_00003.png")).unwrap();
    assert_eq!((img.width(), img.height()), (80, 64));
    let csv = fs::read_to_string(out.join("participants.csv")).unwrap();
    assert!(csv.starts_with("participant_id,item_id,face,image,"));
    assert!(csv.lines().count() >= 6);
}

#[test]
fn a_rerun_replaces_only_its_own_files() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("demo");
    let args = |count: &'static str| {
        [
            "--count",
            count,
            "--size",
            "64",
            "--group-size",
            "2",
            "--out-dir",
            "demo",
        ]
    };
    run(d.path(), "demo-faces", &args("5"));
    // a smaller rerun leaves no face of the larger run behind
    run(d.path(), "demo-faces", &args("2"));
    assert!(out.join("samples/g000/face_00001.png").is_file());
    assert!(!out.join("samples/g001").exists() && !out.join("labels/g002").exists());
    // a user's file is refused, then kept with --force
    fs::write(out.join("notes.txt"), "mine").unwrap();
    fails(
        stage("demo-faces", d.path()).args(args("2")).output().unwrap(),
        "notes.txt",
    );
    let forced: Vec<&str> = args("3").into_iter().chain(["--force"]).collect();
    run(d.path(), "demo-faces", &forced);
    assert_eq!(fs::read_to_string(out.join("notes.txt")).unwrap(), "mine");
    assert!(out.join("samples/g001/face_00002.png").is_file());
    // a folder written before demo-faces kept a ledger is recognised by its names
    fs::remove_file(out.join("notes.txt")).unwrap();
    fs::remove_file(out.join(demo_faces::LEDGER)).unwrap();
    run(d.path(), "demo-faces", &args("1"));
    assert!(!out.join("samples/g001").exists());
    // ... but only with its parameter file: files named like faces, in a folder with neither
    // ledger nor parameter file (a copy someone edited), are not taken for demo-faces' own
    fs::remove_file(out.join(demo_faces::LEDGER)).unwrap();
    fs::remove_file(out.join(demo_faces::MARKER)).unwrap();
    fails(
        stage("demo-faces", d.path()).args(args("1")).output().unwrap(),
        "samples/g000/face_00000.png",
    );
    assert!(out.join("samples/g000/face_00000.png").is_file());
}

#[test]
fn bad_flags() {
    let d = tempfile::tempdir().unwrap();
    let out = stage("demo-faces", d.path())
        .args(["--size", "4", "--out", "x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    usage_error(
        stage("demo-faces", d.path())
            .args(["--count", "0", "--out", "x"])
            .output()
            .unwrap(),
        "--count",
    );
}
