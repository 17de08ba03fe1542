//! What facepipe's end-to-end tests share, in one place (as ripgrep's `tests/util.rs` or uv's
//! test crate): where the stage binaries are, running one in a folder, checking how it ended,
//! reading and writing manifests, and listing a folder's files. A dev-dependency only.

use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The folder of the stage binaries: next to the running test's own folder (`deps/`), where
/// `make test` (`cargo build --release --workspace --bins` first) puts them. Panics, saying
/// how to build them, when they are not there.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("a test binary lives in target/PROFILE/deps")
        .to_path_buf();
    assert!(
        dir.join("split").is_file() && dir.join("unet-train").is_file(),
        "stage binaries not built in {}: run `make test` (it builds every stage first), or `cargo build --release --workspace --bins`",
        dir.display()
    );
    dir
}

/// A stage binary's path.
pub fn bin(name: &str) -> PathBuf {
    bin_dir().join(name)
}

/// A command running stage `name` in `dir`.
pub fn stage(name: &str, dir: &Path) -> Command {
    let mut c = Command::new(bin(name));
    c.current_dir(dir);
    c
}

/// Runs `name` with `args` in `dir` and requires success; returns its output.
pub fn run(dir: &Path, name: &str, args: &[&str]) -> Output {
    ok(stage(name, dir).args(args).output().expect("the stage starts"))
}

/// Requires a successful exit, showing stderr otherwise.
pub fn ok(out: Output) -> Output {
    assert!(
        out.status.success(),
        "failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Requires exit 1 (a failure, not a usage error) with `want` in stderr.
pub fn fails(out: Output, want: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(want), "wanted {want:?} in:\n{err}");
}

/// Requires exit 2 (bad usage) with `want` in stderr.
pub fn usage_error(out: Output, want: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(want), "wanted {want:?} in:\n{err}");
}

/// A JSON file, parsed.
pub fn json(path: &Path) -> Value {
    let bytes = fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

/// The Mut1ny palette as a manifest's `classes`.
pub fn mut1ny_classes() -> Value {
    serde_json::to_value(facepipe_core::palette::mut1ny()).expect("classes serialise")
}

/// Writes a manifest with these classes and items (no provenance).
pub fn write_manifest(path: &Path, classes: Value, items: Vec<Value>) {
    let m = json!({"schema": "facepipe/dataset", "schema_version": 1, "classes": classes,
        "items": items, "provenance": []});
    fs::write(path, serde_json::to_string_pretty(&m).expect("JSON")).expect("writing the manifest");
}

/// Every file below `dir`, relative path → bytes (lock files left out), sorted.
pub fn files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = vec![];
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).expect("a readable folder") {
            let p = e.expect("an entry").path();
            if p.is_dir() {
                todo.push(p);
            } else if !p.file_name().unwrap_or_default().to_string_lossy().ends_with(".lock") {
                let rel = p.strip_prefix(dir).expect("below dir").to_path_buf();
                out.push((rel, fs::read(&p).expect("a readable file")));
            }
        }
    }
    out.sort();
    out
}

/// A manifest (or any JSON) with what may change between machines or versions replaced by a
/// placeholder, for a snapshot: every `sha256` and `bytes` of a provenance input (weights and
/// images differ across platforms' float rounding and encoders), every `version`, and every
/// number of a `summary` that is not a whole number (scores of a trained model).
pub fn redact(v: &Value) -> Value {
    fn walk(v: &Value, in_summary: bool) -> Value {
        match v {
            Value::Object(o) => Value::Object(
                o.iter()
                    .map(|(k, x)| {
                        let r = match k.as_str() {
                            "sha256" | "bytes" | "version" if !x.is_object() => json!(format!("[{k}]")),
                            _ => walk(x, in_summary || k == "summary"),
                        };
                        (k.clone(), r)
                    })
                    .collect(),
            ),
            Value::Array(a) => Value::Array(a.iter().map(|x| walk(x, in_summary)).collect()),
            Value::Number(n) if in_summary && n.is_f64() => json!("[score]"),
            x => x.clone(),
        }
    }
    walk(v, false)
}

/// unet-train's quickest model: smp at 32 px, batch 2, one epoch at 1e-3, no fine_tune and no
/// lr_find.
pub const TINY_TRAINING: [&str; 14] = [
    "--arch",
    "smp",
    "--size",
    "32",
    "--bs",
    "2",
    "--fine-tune-epochs",
    "0",
    "--no-lr-find",
    "--epochs",
    "1",
    "--lr",
    "1e-3",
    "-q",
];

/// Trains [`TINY_TRAINING`]'s model on the split manifest `split` into `out_dir` (both relative
/// to `dir`), requiring success.
pub fn train_tiny(dir: &Path, split: &str, out_dir: &str) -> Output {
    let mut args = vec!["-i", split, "--out-dir", out_dir];
    args.extend(TINY_TRAINING);
    run(dir, "unet-train", &args)
}

/// Requires `want` in the run's stderr (whatever its exit), showing the stderr otherwise: for
/// a warning or log line of a run [`ok`], [`fails`] or [`usage_error`] has checked.
pub fn stderr_has(out: &Output, want: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(want), "wanted {want:?} in stderr:\n{err}");
}

/// Requires `unwanted` nowhere in the run's stderr, showing the stderr otherwise.
pub fn stderr_lacks(out: &Output, unwanted: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains(unwanted), "did not want {unwanted:?} in stderr:\n{err}");
}

/// Requires `want` in the run's stdout, showing the stdout otherwise.
pub fn stdout_has(out: &Output, want: &str) {
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(want), "wanted {want:?} in stdout:\n{text}");
}

/// Runs `cmd` with `input` on its stdin (closed after it) and returns its output, whatever the
/// exit: for a stage reading a manifest from `-i -`. A stage that exits before reading all of
/// `input` (a usage error) is not an error here.
pub fn run_with_stdin(cmd: &mut Command, input: impl AsRef<[u8]>) -> Output {
    output_of(cmd, Some(input.as_ref()), None)
}

/// Runs `cmd` (stdin empty, as [`Command::output`]) and returns its output, whatever the exit;
/// kills it and panics if it has not ended within `limit`: for the runs a bug once made hang
/// (a FIFO or `/dev/stdout` as `-o`), so that such a bug fails the test instead of stalling it.
pub fn output_within(cmd: &mut Command, limit: Duration) -> Output {
    output_of(cmd, None, Some(limit))
}

/// Spawns `cmd` with `input` (or nothing) on stdin, collects stdout and stderr on their own
/// threads (a full pipe cannot stall the child), and waits for it, at most `limit` if given.
fn output_of(cmd: &mut Command, input: Option<&[u8]>, limit: Option<Duration>) -> Output {
    let stdin = if input.is_some() { Stdio::piped() } else { Stdio::null() };
    cmd.stdin(stdin).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("starting {:?}: {e}", cmd.get_program()));
    let writer = input.map(|bytes| {
        let mut pipe = child.stdin.take().expect("a piped stdin");
        let bytes = bytes.to_vec();
        thread::spawn(move || match pipe.write_all(&bytes) {
            Err(e) if e.kind() != ErrorKind::BrokenPipe => panic!("writing the stdin: {e}"),
            _ => {}
        })
    });
    let stdout = drain(child.stdout.take().expect("a piped stdout"));
    let stderr = drain(child.stderr.take().expect("a piped stderr"));
    let status = match limit {
        None => child.wait().expect("waiting for the child"),
        Some(limit) => {
            let start = Instant::now();
            loop {
                if let Some(status) = child.try_wait().expect("polling the child") {
                    break status;
                }
                if start.elapsed() > limit {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("{:?} did not end within {limit:?}", cmd.get_program());
                }
                thread::sleep(Duration::from_millis(10));
            }
        }
    };
    if let Some(w) = writer {
        w.join().expect("the stdin writer");
    }
    let stdout = stdout.join().expect("the stdout reader");
    let stderr = stderr.join().expect("the stderr reader");
    Output { status, stdout, stderr }
}

/// Reads `pipe` to its end on a thread of its own.
fn drain(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut bytes = vec![];
        pipe.read_to_end(&mut bytes).expect("reading the child's output");
        bytes
    })
}
