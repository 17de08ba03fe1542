//! The real `xml-pairs` binary on small fixtures made in a temp folder.

use std::fs;
use std::path::Path;

use std::process::Command;

use facepipe_testutil::{bin, fails, json, ok, stderr_has, usage_error};
use serde_json::Value;

fn dataset(dir: &Path, xml: &str, files: &[&str]) {
    for f in files {
        let p = dir.join(f);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, b"png").unwrap();
    }
    fs::write(dir.join("training.xml"), xml).unwrap();
}

const XML: &str = "\u{feff}<?xml version=\"1.0\"?>\r\n<trainingset>\r\n\
    <srcimg name=\"samples\\g1\\a.png\"/>\r\n<labelimg name=\"labels\\g1\\a.png\"/>\r\n\
    <bboxes><bbox x=\"1\"/></bboxes>\r\n\
    <srcimg name=\"samples\\g2\\b.png\"/>\r\n<labelimg name=\"labels\\g2\\b.png\"/>\r\n</trainingset>\r\n";
const FILES: &[&str] = &[
    "samples/g1/a.png",
    "labels/g1/a.png",
    "samples/g2/b.png",
    "labels/g2/b.png",
];

/// A command running the built `xml-pairs`.
fn xml_pairs() -> Command {
    Command::new(bin("xml-pairs"))
}

#[test]
fn writes_pairs_with_paths_relative_to_the_manifest() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("data");
    fs::create_dir_all(&data).unwrap();
    dataset(&data, XML, FILES);
    let out = d.path().join("out/pairs.json");
    fs::create_dir_all(out.parent().unwrap()).unwrap();
    let run = ok(xml_pairs()
        .args(["--xml"])
        .arg(data.join("training.xml"))
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap());
    assert!(
        run.stdout.is_empty(),
        "nothing on stdout, got:\n{}",
        String::from_utf8_lossy(&run.stdout)
    );
    let m = json(&out);
    assert_eq!(m["schema"], "facepipe/dataset");
    assert_eq!(m["items"].as_array().unwrap().len(), 2);
    assert_eq!(m["items"][0]["id"], "samples/g1/a");
    assert_eq!(m["items"][0]["image"], "../data/samples/g1/a.png");
    assert_eq!(m["items"][1]["label_rgb"], "../data/labels/g2/b.png");
    assert_eq!(m["items"][1]["group"], "g2");
    assert_eq!(m["root"], "../data");
    let step = &m["provenance"][0];
    assert_eq!(step["stage"], "xml-pairs");
    assert_eq!(step["inputs"][0]["path"], "../data/training.xml");
    assert_eq!(step["inputs"][0]["bytes"], XML.len());

    // A rerun gives the same bytes (no timestamps), and stdout output is the same document
    // with paths relative to the working directory.
    let first = fs::read(&out).unwrap();
    ok(xml_pairs()
        .arg("--xml")
        .arg(data.join("training.xml"))
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap());
    assert_eq!(first, fs::read(&out).unwrap());
    let stdout = ok(xml_pairs()
        .current_dir(&data)
        .args(["--xml", "training.xml"])
        .output()
        .unwrap())
    .stdout;
    let m2: Value = serde_json::from_slice(&stdout).unwrap();
    assert_eq!(m2["items"][0]["image"], "samples/g1/a.png");
}

fn fails_with(xml: &str, files: &[&str], needles: &[&str]) {
    let d = tempfile::tempdir().unwrap();
    dataset(d.path(), xml, files);
    let out = d.path().join("pairs.json");
    let a = xml_pairs()
        .current_dir(d.path())
        .args(["--xml", "training.xml", "-o", "pairs.json"])
        .output()
        .unwrap();
    for n in needles {
        fails(a.clone(), n);
    }
    assert!(!out.exists(), "no output may be written on error");
    let leftovers: Vec<_> = fs::read_dir(d.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .collect();
    assert!(
        leftovers
            .iter()
            .all(|n| !n.to_string_lossy().starts_with(".facepipe-tmp")),
        "{leftovers:?}"
    );
}

#[test]
fn bad_xml_is_refused_with_file_line_and_column() {
    fails_with(
        "<s>\n<srcimg name=\"a.png\"/>\n<labelimg name=\"l.png\"/>\n</t>",
        &[],
        &["training.xml:4:", "malformed"],
    );
    fails_with(
        "<s>\n<srcimg name=\"a.png\"/>\n<labelimg name=\"l.p",
        &[],
        &["training.xml:3:1", "malformed"],
    );
    fails_with(
        "<s>\n<srcimg name=\"a.png\"/>\n<labelimg name=\"l.png\"/>\n",
        &[],
        &["truncated"],
    );
    fails_with(
        "<s>\n<srcimg name=\"a.png\"/>\n<srcimg name=\"b.png\"/>\n<labelimg name=\"l.png\"/></s>",
        &[],
        &["training.xml:2:1", "no <labelimg>"],
    );
    fails_with(
        "<s>\n\n<labelimg name=\"l.png\"/></s>",
        &[],
        &["training.xml:3:1", "no <srcimg>"],
    );
    fails_with(
        "<s>\n<srcimg file=\"a.png\"/><labelimg name=\"l.png\"/></s>",
        &[],
        &["training.xml:2:1", "`name`"],
    );
    fails_with(
        "<s><srcimg name=\"..\\..\\etc\\passwd\"/><labelimg name=\"l.png\"/></s>",
        &[],
        &["'..'"],
    );
    fails_with(
        "<s><srcimg name=\"/etc/passwd\"/><labelimg name=\"l.png\"/></s>",
        &[],
        &["absolute"],
    );
    fails_with(
        "<s><srcimg name=\"D:\\data\\a.png\"/><labelimg name=\"l.png\"/></s>",
        &[],
        &["drive-letter"],
    );
    fails_with("<s></s>", &[], &["no <srcimg>/<labelimg> pairs"]);
    fails_with(
        "<s><srcimg name=\"a.png\"/><labelimg name=\"l.png\"/>\n<srcimg name=\"a.png\"/><labelimg name=\"m.png\"/></s>",
        &["a.png", "l.png", "m.png"],
        &["duplicate pair"],
    );
}

#[test]
fn missing_files_are_all_listed_or_skipped_on_request() {
    let files = &["samples/g1/a.png", "labels/g1/a.png"];
    fails_with(
        XML,
        files,
        &["2 file(s)", "samples/g2/b.png", "labels/g2/b.png", "--skip-missing"],
    );

    let d = tempfile::tempdir().unwrap();
    dataset(d.path(), XML, files);
    let run = ok(xml_pairs()
        .current_dir(d.path())
        .args(["--xml", "training.xml", "-o", "pairs.json", "--skip-missing"])
        .output()
        .unwrap());
    stderr_has(&run, "warning");
    stderr_has(&run, "missing");
    let m = json(&d.path().join("pairs.json"));
    assert_eq!(m["items"].as_array().unwrap().len(), 1);
    assert_eq!(m["provenance"][0]["summary"]["pairs_skipped"], 1);
    assert_eq!(m["provenance"][0]["summary"]["missing_files"], 2);
}

#[test]
fn names_differing_only_in_case_resolve_to_the_real_files() {
    let d = tempfile::tempdir().unwrap();
    dataset(
        d.path(),
        XML,
        &[
            "Samples/G1/A.png",
            "labels/g1/a.PNG",
            "samples/g2/b.png",
            "labels/g2/b.png",
        ],
    );
    let run = ok(xml_pairs()
        .current_dir(d.path())
        .args(["--xml", "training.xml", "-o", "pairs.json"])
        .output()
        .unwrap());
    stderr_has(&run, "ignoring case");
    let m = json(&d.path().join("pairs.json"));
    assert_eq!(m["items"][0]["image"], "Samples/G1/A.png");
    assert_eq!(m["items"][0]["label_rgb"], "labels/g1/a.PNG");
}

#[test]
fn outputs_are_never_clobbered_or_half_written() {
    let d = tempfile::tempdir().unwrap();
    dataset(d.path(), XML, FILES);
    // A user's file is not a manifest: not overwritten without --force.
    fs::write(d.path().join("notes.json"), "{\"mine\": 1}").unwrap();
    let run = xml_pairs()
        .current_dir(d.path())
        .args(["--xml", "training.xml", "-o", "notes.json"])
        .output()
        .unwrap();
    stderr_has(&run, "notes.json");
    fails(run, "--force");
    assert_eq!(
        fs::read_to_string(d.path().join("notes.json")).unwrap(),
        "{\"mine\": 1}"
    );
    // Not even the input itself.
    fails(
        xml_pairs()
            .current_dir(d.path())
            .args(["--xml", "training.xml", "-o", "training.xml"])
            .output()
            .unwrap(),
        "training.xml",
    );
    assert_eq!(fs::read_to_string(d.path().join("training.xml")).unwrap(), XML);
    // An output folder that does not exist / cannot be written.
    fails(
        xml_pairs()
            .current_dir(d.path())
            .args(["--xml", "training.xml", "-o", "no/such/dir/pairs.json"])
            .output()
            .unwrap(),
        "no/such/dir",
    );
    // A missing input.
    fails(
        xml_pairs()
            .args(["--xml", "/nonexistent/training.xml"])
            .output()
            .unwrap(),
        "/nonexistent/training.xml",
    );
    // Usage errors exit 2.
    usage_error(xml_pairs().arg("--bogus").output().unwrap(), "--bogus");
}

#[test]
fn broken_pipe_is_not_a_crash() {
    let d = tempfile::tempdir().unwrap();
    dataset(d.path(), XML, FILES);
    let exe = bin("xml-pairs");
    let status = std::process::Command::new("bash")
        .current_dir(d.path())
        .arg("-c")
        .arg(format!(
            "set -o pipefail; {} --xml training.xml | head -c 10 >/dev/null",
            exe.display()
        ))
        .status()
        .unwrap();
    assert!(status.success());
}
