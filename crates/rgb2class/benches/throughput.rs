//! rgb2class throughput against (a) decoding the same label PNGs with the same crates (the
//! image crate's whole-image decode, and the png crate row by row as rgb2class does;
//! percentages are against the faster of the two) and (b) a vectorised numpy + Pillow version
//! of the same job on one core. Everything is measured in one run, the variants interleaved
//! round by round and the best round of each kept: these machines are noisy, so compare the
//! ratios, not the absolute numbers.
//!
//! Masks are written to a fresh folder on the disk each round (the first conversion of a
//! dataset, the common case) and, to separate the tool's own work from the file system's,
//! also to tmpfs (`/dev/shm`) where there is one.
//!
//! `cargo bench -p rgb2class --bench throughput -- PAIRS.json [ROUNDS]` (see `make bench`).

#![allow(clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use rayon::prelude::*;
use rgb2class::{Config, MaskCompression, OffPalette};

fn time<T>(f: impl FnOnce() -> T) -> f64 {
    let t = Instant::now();
    std::hint::black_box(f());
    t.elapsed().as_secs_f64()
}

/// Runs the numpy + Pillow baseline if python3 has both; returns its Mpx/s.
fn numpy_baseline(pairs: &Path, out: &Path) -> Option<f64> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../pipelines/bench/rgb2class_numpy.py");
    let ok = Command::new("python3")
        .args(["-c", "import numpy, PIL"])
        .output()
        .ok()?
        .status
        .success();
    if !ok {
        println!("numpy + Pillow baseline skipped: python3 lacks numpy or Pillow (pip install numpy pillow)");
        return None;
    }
    let o = Command::new("python3")
        .arg(script)
        .arg(pairs)
        .arg(out)
        .env("OMP_NUM_THREADS", "1")
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&o.stdout);
    text.split_whitespace().nth(1)?.parse().ok()
}

/// The bench's command line: the pairs manifest and the number of rounds.
fn args() -> (PathBuf, usize) {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let Some(pairs) = args.first().map(PathBuf::from) else {
        eprintln!("usage: throughput PAIRS.json [ROUNDS]   (make bench prepares the data)");
        std::process::exit(2);
    };
    let rounds: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(5);
    (pairs, rounds)
}

/// The label images of the pairs manifest and their size in megapixels.
fn labels_of(pairs: &Path) -> (Vec<PathBuf>, f64) {
    let m = facepipe_core::Manifest::read(pairs)
        .expect("reading pairs manifest")
        .manifest;
    let labels: Vec<PathBuf> = m
        .items
        .iter()
        .filter_map(|i| i.label_rgb.as_ref().map(PathBuf::from))
        .collect();
    let mpx: f64 = labels
        .iter()
        .map(|l| {
            let (w, h) = image::image_dimensions(l).expect("label size");
            f64::from(w) * f64::from(h) / 1e6
        })
        .sum();
    (labels, mpx)
}

/// One full rgb2class variant: its name in the report, compression and the folder it writes
/// under.
type Variant = (String, MaskCompression, PathBuf);

/// The full runs: each compression to disk, and packbits to tmpfs where there is one.
fn variants(disk: &Path, shm: Option<&Path>) -> Vec<Variant> {
    let mut runs: Vec<Variant> = [
        MaskCompression::Packbits,
        MaskCompression::Deflate,
        MaskCompression::None,
    ]
    .into_iter()
    .map(|c| {
        (
            format!("rgb2class --compression {:<8} (disk)", format!("{c:?}").to_lowercase()),
            c,
            disk.to_path_buf(),
        )
    })
    .collect();
    if let Some(s) = shm {
        runs.push((
            "rgb2class --compression packbits (tmpfs)".into(),
            MaskCompression::Packbits,
            s.to_path_buf(),
        ));
    }
    runs
}

/// Best time of the mapping alone, on labels decoded to memory beforehand.
fn map_only(labels: &[PathBuf], mapper: &rgb2class::Mapper, n_counts: usize, rounds: usize) -> f64 {
    let decoded: Vec<(u32, Vec<u8>)> = labels
        .par_iter()
        .map(|l| {
            let (w, _, rgb) = rgb2class::decode_label(l, false).unwrap();
            (w, rgb)
        })
        .collect();
    (0..rounds)
        .map(|_| {
            time(|| {
                decoded
                    .par_iter()
                    .map(|(w, rgb)| {
                        let mut out = vec![0u8; rgb.len() / 3];
                        let mut counts = vec![0u64; n_counts];
                        mapper.map(rgb, *w, 0, &mut out, &mut counts).unwrap()
                    })
                    .sum::<u64>()
            })
        })
        .fold(f64::INFINITY, f64::min)
}

/// One round's times of the decode-only baselines and of decode + map by rows (nothing
/// written).
fn decode_round(labels: &[PathBuf], mapper: &rgb2class::Mapper, n_counts: usize) -> Vec<f64> {
    vec![
        time(|| {
            labels
                .par_iter()
                .map(|l| {
                    image::ImageReader::open(l)
                        .unwrap()
                        .with_guessed_format()
                        .unwrap()
                        .decode()
                        .unwrap()
                        .width()
                })
                .sum::<u32>()
        }),
        time(|| {
            labels
                .par_iter()
                .map(|l| {
                    rgb2class::stream_rgb8_png(l, |_, _, row| {
                        std::hint::black_box(row);
                        Ok(())
                    })
                    .unwrap()
                })
                .count()
        }),
        time(|| {
            labels
                .par_iter()
                .map(|l| {
                    let (mut out, mut counts, mut off) = (Vec::new(), vec![0u64; n_counts], 0);
                    rgb2class::stream_rgb8_png(l, |y, _, row| {
                        let w = row.len() / 3;
                        out.resize(w, 0);
                        off += mapper
                            .map(row, w as u32, y as usize * w, &mut out, &mut counts)
                            .unwrap();
                        Ok(())
                    })
                    .unwrap();
                    off
                })
                .sum::<u64>()
        }),
    ]
}

/// One round's time of each full run, each into a fresh folder (round `r`).
fn full_round(pairs: &Path, runs: &[Variant], r: usize) -> Vec<f64> {
    runs.iter()
        .enumerate()
        .map(|(k, (_, compression, dir))| {
            let cfg = Config {
                input: pairs.to_path_buf(),
                out_dir: dir.join(format!("{k}-{r}")),
                palette: None,
                off_palette: OffPalette::Nearest,
                compression: *compression,
                force: false,
                shard: None,
            };
            time(|| rgb2class::run(&cfg, &indicatif::ProgressBar::hidden()).expect("rgb2class run"))
        })
        .collect()
}

/// Prints the throughputs: `best` holds the decode-only baselines, decode + map, then the
/// full runs in the order of `runs`.
fn report(mpx: f64, best: &[f64], map_only: f64, runs: &[Variant]) {
    let decode = best[0].min(best[1]);
    println!("decode only (image crate)                  {:8.1} Mpx/s", mpx / best[0]);
    println!(
        "decode only (png crate, by rows)           {:8.1} Mpx/s  (the decoder rgb2class uses)",
        mpx / best[1]
    );
    let pct = |t: f64| 100.0 * decode / t;
    println!(
        "map only (labels already in memory)        {:8.1} Mpx/s",
        mpx / map_only
    );
    println!(
        "decode + map by rows, nothing written      {:8.1} Mpx/s  {:5.1} % of decode-only",
        mpx / best[2],
        pct(best[2])
    );
    for (k, (name, _, _)) in runs.iter().enumerate() {
        println!(
            "{name:<42} {:8.1} Mpx/s  {:5.1} % of decode-only",
            mpx / best[3 + k],
            pct(best[3 + k])
        );
    }
}

fn main() {
    let (pairs, rounds) = args();
    let (labels, mpx) = labels_of(&pairs);
    let threads = rayon::current_num_threads();
    println!(
        "{} label images, {mpx:.1} Mpx, {threads} threads, best of {rounds} interleaved rounds",
        labels.len()
    );

    let classes = facepipe_core::palette::mut1ny();
    let n_counts = classes.len() + 1;
    let mapper = rgb2class::Mapper::new(&classes, OffPalette::Nearest);
    let disk = tempfile::tempdir_in(pairs.parent().unwrap()).expect("temp dir");
    let shm = Path::new("/dev/shm")
        .is_dir()
        .then(|| tempfile::tempdir_in("/dev/shm").expect("tmpfs dir"));
    let runs = variants(disk.path(), shm.as_ref().map(tempfile::TempDir::path));
    let map_only = map_only(&labels, &mapper, n_counts, rounds);
    let mut best = vec![f64::INFINITY; 3 + runs.len()];
    for r in 0..rounds {
        let mut t = decode_round(&labels, &mapper, n_counts);
        t.extend(full_round(&pairs, &runs, r));
        best.iter_mut().zip(t).for_each(|(b, t)| *b = b.min(t));
    }
    report(mpx, &best, map_only, &runs);
    if let Some(np) = numpy_baseline(&pairs, &disk.path().join("numpy")) {
        println!("numpy + Pillow, 1 core (disk)              {np:8.1} Mpx/s");
        println!(
            "rgb2class default ({threads} threads, disk) / numpy + Pillow (1 core): {:.1}×",
            mpx / best[3] / np
        );
    }
}
