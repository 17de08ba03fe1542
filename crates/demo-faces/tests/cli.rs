//! The real `demo-faces` binary.

use std::fs;

use assert_cmd::Command;
use predicates::prelude::*;

#[test]
fn writes_the_mut1ny_layout() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("demo");
    Command::cargo_bin("demo-faces")
        .unwrap()
        .args([
            "--count",
            "5",
            "--size",
            "80x64",
            "--seed",
            "3",
            "--group-size",
            "2",
            "--out",
        ])
        .arg(&out)
        .assert()
        .success()
        .stdout("");
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
    // rerunning over its own output is fine
    Command::cargo_bin("demo-faces")
        .unwrap()
        .args(["--count", "2", "--out"])
        .arg(&out)
        .assert()
        .success();
}

#[test]
fn bad_flags() {
    let d = tempfile::tempdir().unwrap();
    Command::cargo_bin("demo-faces")
        .unwrap()
        .args(["--size", "4"])
        .arg("--out")
        .arg(d.path())
        .assert()
        .code(2);
    Command::cargo_bin("demo-faces")
        .unwrap()
        .args(["--count", "0"])
        .arg("--out")
        .arg(d.path())
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--count"));
}
