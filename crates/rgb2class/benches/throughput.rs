//! rgb2class throughput against (a) decoding the same label PNGs with the same crates (the
//! image crate's whole-image decode, and the png crate row by row as rgb2class does; the
//! percentages are against the faster of the two) and
//! (b) a vectorised numpy + Pillow version of the same job on one core, all measured in one
//! run: the machines are noisy, so compare the ratios, not the absolute numbers.
//!
//! `cargo bench -p rgb2class --bench throughput -- PAIRS.json [REPEATS]` (see `make bench`).

#![allow(clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use rayon::prelude::*;
use rgb2class::{Config, MaskCompression, OffPalette};

fn best_of<T>(reps: usize, mut f: impl FnMut(usize) -> T) -> f64 {
    (0..reps)
        .map(|r| {
            let t = Instant::now();
            std::hint::black_box(f(r));
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
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
        eprintln!("usage: throughput PAIRS.json [REPEATS]   (make bench prepares the data)");
        std::process::exit(2);
    };
    let reps: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(3);
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
        "{} label images, {mpx:.1} Mpx, {threads} threads, best of {reps}",
        labels.len()
    );

    let decode = best_of(reps, |_| {
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
    });
    println!("decode only (image crate)          {:8.1} Mpx/s", mpx / decode);
    let stream = best_of(reps, |_| {
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
    });
    println!(
        "decode only (png crate, by rows)   {:8.1} Mpx/s  (the decoder rgb2class uses)",
        mpx / stream
    );
    let decode = decode.min(stream);

    let classes = facepipe_core::palette::mut1ny();
    let mapper = rgb2class::Mapper::new(&classes, OffPalette::Nearest);
    let dm = best_of(reps, |_| {
        labels
            .par_iter()
            .map(|l| {
                let mut out = Vec::new();
                let mut counts = vec![0u64; classes.len() + 1];
                let mut off = 0;
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
    });
    println!(
        "decode + map by rows, no output    {:8.1} Mpx/s  {:5.1} % of decode-only",
        mpx / dm,
        100.0 * decode / dm
    );

    let out = tempfile::tempdir().expect("temp dir");
    let mut default_rate = 0.0;
    for compression in [
        MaskCompression::Packbits,
        MaskCompression::Deflate,
        MaskCompression::None,
    ] {
        // A fresh output folder each time: the first conversion of a dataset, the common case.
        let t = best_of(reps, |r| {
            let cfg = Config {
                input: pairs.clone(),
                out_dir: out.path().join(format!("{compression:?}-{r}")),
                palette: None,
                off_palette: OffPalette::Nearest,
                compression,
                force: false,
            };
            rgb2class::run(&cfg, &indicatif::ProgressBar::hidden()).expect("rgb2class run")
        });
        let name = format!("{compression:?}").to_lowercase();
        println!(
            "rgb2class --compression {name:<10} {:8.1} Mpx/s  {:5.1} % of decode-only",
            mpx / t,
            100.0 * decode / t
        );
        if compression == MaskCompression::Packbits {
            default_rate = mpx / t;
        }
    }
    if let Some(np) = numpy_baseline(&pairs, &out.path().join("numpy")) {
        println!("numpy + Pillow, 1 core             {np:8.1} Mpx/s");
        println!(
            "rgb2class (default, {threads} threads) / numpy + Pillow (1 core): {:.1}×",
            default_rate / np
        );
    }
}
