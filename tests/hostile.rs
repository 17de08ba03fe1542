//! A hostile user's probe of every stage binary, kept as a test: odd paths, special files,
//! impossible numbers, broken and bomb-sized inputs. Each must end in a clear error (exit 1, or
//! 2 for bad usage) that names the stage, never a panic or an abort, and must leave nothing
//! behind where its output would have gone.

use std::path::Path;
use std::process::Command;

use facepipe_testutil::bin_dir;

/// Runs `stage args` in `dir` with stdin closed; checks the exit code, that stderr is a plain
/// error message, and that `out` (the output it was asked for) was not created.
fn refused(dir: &Path, stage: &str, args: &[&str], code: i32, out: &str) {
    let o = Command::new(bin_dir().join(stage))
        .current_dir(dir)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(code), "{stage} {args:?}: {err}");
    for bad in [
        "panicked",
        "RUST_BACKTRACE",
        "double free",
        "Segmentation",
        "IoError(",
        " { ",
    ] {
        assert!(!err.contains(bad), "{stage} {args:?}: {err}");
    }
    let first = err.lines().next().unwrap_or_default();
    assert!(
        first.starts_with(&format!("{stage}: error: ")) || first.starts_with("error: "),
        "{stage} {args:?}: {err}"
    );
    if !out.is_empty() {
        assert!(!dir.join(out).exists(), "{stage} {args:?} left {out}");
    }
}

#[test]
fn the_probe_gets_errors_not_crashes() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let run = |stage: &str, args: &[&str]| {
        let o = Command::new(bin_dir().join(stage))
            .current_dir(d)
            .args(args)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{stage} {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    run("demo-faces", &["--out", "data", "--count", "6", "--size", "64", "-q"]);
    run("xml-pairs", &["--xml", "data/training.xml", "-o", "pairs.json"]);
    run(
        "rgb2class",
        &["-i", "pairs.json", "-o", "masks.json", "--out-dir", "masks", "-q"],
    );
    run("split", &["-i", "masks.json", "-o", "split.json"]);
    std::fs::write(d.join("bomb.png"), facepipe_core::images::bomb_png(30_000, 30_000)).unwrap();
    std::fs::write(d.join("junk.safetensors"), b"\x08\x00\x00\x00\x00\x00\x00\x00{}{}{}{}").unwrap();
    std::fs::write(d.join("junk.pth"), b"PK\x03\x04not a zip at all").unwrap();

    // paths that are not what they should be
    refused(d, "xml-pairs", &["--xml", "/dev/null", "-o", "o1.json"], 1, "o1.json");
    refused(d, "xml-pairs", &["--xml", "data", "-o", "o2.json"], 1, "o2.json");
    refused(d, "xml-pairs", &["--xml", "bomb.png", "-o", "o3.json"], 1, "o3.json");
    refused(d, "split", &["-i", "/dev/null", "-o", "o4.json"], 1, "o4.json");
    refused(d, "split", &["-i", "split.json", "-o", "data"], 1, "");
    refused(d, "split", &["-i", "split.json", "-o", "no/such/dir/o5.json"], 1, "no");
    refused(
        d,
        "rgb2class",
        &["-i", "pairs.json", "-o", "o6.json", "--out-dir", "split.json"],
        1,
        "o6.json",
    );
    refused(d, "manifest-check", &["/dev/null", "data", "split.json"], 1, "");
    // impossible numbers are usage errors
    refused(
        d,
        "split",
        &["-i", "split.json", "-o", "o7.json", "--valid-pct", "NaN"],
        2,
        "o7.json",
    );
    refused(d, "demo-faces", &["--out", "d2", "--count", "0"], 2, "d2");
    refused(d, "demo-faces", &["--out", "d3", "--size", "100000"], 2, "d3");
    refused(
        d,
        "rgb2class",
        &["-i", "pairs.json", "-o", "o8.json", "--out-dir", "m8", "--threads", "0"],
        2,
        "m8",
    );
    for size in ["0", "7", "100000"] {
        refused(
            d,
            "unet-train",
            &["-i", "split.json", "--out-dir", "r1", "--size", size],
            2,
            "r1",
        );
    }
    refused(
        d,
        "cheek-lab",
        &["-i", "split.json", "-o", "c1.csv", "--cheek-out", "NaN"],
        2,
        "c1.csv",
    );
    refused(
        d,
        "cheek-lab",
        &["-i", "split.json", "-o", "c2.csv", "--min-skin", "2"],
        2,
        "c2.csv",
    );
    refused(
        d,
        "cheek-lab",
        &["-i", "split.json", "-o", "c3.csv", "--ref-left", "a,b"],
        2,
        "c3.csv",
    );
    // broken weight files and a zero-epoch run
    let train = ["-i", "split.json", "--out-dir", "r2", "--size", "32", "--bs", "2"];
    for w in ["junk.safetensors", "junk.pth", "split.json", "data"] {
        refused(d, "unet-train", &[&train[..], &["--pretrained", w]].concat(), 1, "r2");
    }
    std::fs::write(
        d.join("zero.json"),
        r#"{"steps": [{"fit_one_cycle": {"epochs": 0, "lr_max": 1e-3}}]}"#,
    )
    .unwrap();
    refused(
        d,
        "unet-train",
        &[&train[..], &["--recipe", "zero.json"]].concat(),
        1,
        "r2",
    );
    refused(
        d,
        "unet-train",
        &[
            "-i",
            "split.json",
            "--out-dir",
            "split.json",
            "--size",
            "32",
            "--bs",
            "2",
        ],
        1,
        "",
    );
    refused(
        d,
        "unet-eval",
        &[
            "--model",
            "data",
            "-i",
            "split.json",
            "-o",
            "o9.json",
            "--out-dir",
            "e1",
        ],
        1,
        "e1",
    );
    // a decompression bomb where a mask or a photo should be
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(d.join("split.json")).unwrap()).unwrap();
    m["items"][0]["mask"] = "bomb.png".into();
    std::fs::write(d.join("bomb.json"), m.to_string()).unwrap();
    refused(
        d,
        "cheek-lab",
        &["-i", "bomb.json", "-o", "c4.csv", "--mask-field", "mask"],
        1,
        "c4.csv",
    );
    refused(
        d,
        "unet-train",
        &["-i", "bomb.json", "--out-dir", "r3", "--size", "32", "--bs", "2"],
        1,
        "r3",
    );
    m["items"][0]["mask"] = m["items"][1]["mask"].clone();
    m["items"][0]["image"] = "bomb.png".into();
    std::fs::write(d.join("bomb2.json"), m.to_string()).unwrap();
    refused(
        d,
        "cheek-lab",
        &["-i", "bomb2.json", "-o", "c5.csv", "--mask-field", "mask"],
        1,
        "c5.csv",
    );
    // -o and --report both stdout
    refused(
        d,
        "cheek-lab",
        &["-i", "split.json", "-o", "-", "--report", "-", "--mask-field", "mask"],
        1,
        "-",
    );
}
