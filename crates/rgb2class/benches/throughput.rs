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

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let Some(pairs) = args.first().map(PathBuf::from) else {
        eprintln!("usage: throughput PAIRS.json [ROUNDS]   (make bench prepares the data)");
        std::process::exit(2);
    };
    let rounds: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(5);
    let m = facepipe_core::Manifest::read(&pairs)
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
    let threads = rayon::current_num_threads();
    println!(
        "{} label images, {mpx:.1} Mpx, {threads} threads, best of {rounds} interleaved rounds",
        labels.len()
    );

    let classes = facepipe_core::palette::mut1ny();
    let mapper = rgb2class::Mapper::new(&classes, OffPalette::Nearest);
    let disk = tempfile::tempdir_in(pairs.parent().unwrap()).expect("temp dir");
    let shm = Path::new("/dev/shm")
        .is_dir()
        .then(|| tempfile::tempdir_in("/dev/shm").expect("tmpfs dir"));
    let mut runs: Vec<(String, MaskCompression, PathBuf)> = [
        MaskCompression::Packbits,
        MaskCompression::Deflate,
        MaskCompression::None,
    ]
    .into_iter()
    .map(|c| {
        (
            format!("rgb2class --compression {:<8} (disk)", format!("{c:?}").to_lowercase()),
            c,
            disk.path().to_path_buf(),
        )
    })
    .collect();
    if let Some(s) = &shm {
        runs.push((
            "rgb2class --compression packbits (tmpfs)".into(),
            MaskCompression::Packbits,
            s.path().to_path_buf(),
        ));
    }
    // The mapping alone, on labels decoded to memory beforehand.
    let decoded: Vec<(u32, Vec<u8>)> = labels
        .par_iter()
        .map(|l| {
            let (w, _, rgb) = rgb2class::decode_label(l, false).unwrap();
            (w, rgb)
        })
        .collect();
    let map_only = (0..rounds)
        .map(|_| {
            time(|| {
                decoded
                    .par_iter()
                    .map(|(w, rgb)| {
                        let mut out = vec![0u8; rgb.len() / 3];
                        let mut counts = vec![0u64; classes.len() + 1];
                        mapper.map(rgb, *w, 0, &mut out, &mut counts).unwrap()
                    })
                    .sum::<u64>()
            })
        })
        .fold(f64::INFINITY, f64::min);
    drop(decoded);
    let mut best = vec![f64::INFINITY; 3 + runs.len()];
    for r in 0..rounds {
        let mut t = vec![
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
                        let (mut out, mut counts, mut off) = (Vec::new(), vec![0u64; classes.len() + 1], 0);
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
        ];
        for (k, (_, compression, dir)) in runs.iter().enumerate() {
            let cfg = Config {
                input: pairs.clone(),
                out_dir: dir.join(format!("{k}-{r}")),
                palette: None,
                off_palette: OffPalette::Nearest,
                compression: *compression,
                force: false,
                shard: None,
            };
            t.push(time(|| {
                rgb2class::run(&cfg, &indicatif::ProgressBar::hidden()).expect("rgb2class run")
            }));
        }
        best.iter_mut().zip(t).for_each(|(b, t)| *b = b.min(t));
    }
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
    if let Some(np) = numpy_baseline(&pairs, &disk.path().join("numpy")) {
        println!("numpy + Pillow, 1 core (disk)              {np:8.1} Mpx/s");
        println!(
            "rgb2class default ({threads} threads, disk) / numpy + Pillow (1 core): {:.1}×",
            mpx / best[3] / np
        );
    }
}
