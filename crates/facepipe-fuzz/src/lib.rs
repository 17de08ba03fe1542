//! Fuzzing that runs on the stable toolchain: each target is one of facepipe's readers of
//! untrusted bytes, driven by a seeded mutation loop (bit flips, byte and block edits,
//! interesting values, splices between seeds) from valid seed inputs. A reader may accept or
//! refuse an input; it may never panic. `cargo-fuzz` would need nightly; this needs nothing.
//!
//! `facepipe-fuzz TARGET N [SECONDS]` runs one target (see [`TARGETS`]); `make fuzz` runs them
//! all for 10⁶ inputs each, and `make test` runs a short pass of each.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::time::{Duration, Instant};

use facepipe_core::rng::SplitMix64;

/// A fuzz target: its name, its seed inputs, and the reader it drives.
pub struct Target {
    pub name: &'static str,
    pub what: &'static str,
    pub seeds: fn() -> Vec<Vec<u8>>,
    /// Reads one input; `Ok` or `Err` are both fine. `scratch` is a private temporary folder.
    pub read: fn(&[u8], &Path) -> anyhow::Result<()>,
}

/// Every target.
pub const TARGETS: [Target; 7] = [
    Target {
        name: "xml",
        what: "training.xml reader (xml-pairs)",
        seeds: seeds::xml,
        read: |b, _| xml_pairs::parse_pairs(&String::from_utf8_lossy(b), "fuzz.xml").map(drop),
    },
    Target {
        name: "manifest",
        what: "manifest reader (facepipe-core)",
        seeds: seeds::manifest,
        read: |b, _| facepipe_core::Manifest::parse(b).map(drop),
    },
    Target {
        name: "reference",
        what: "reference CSV reader (cheek-lab)",
        seeds: seeds::reference,
        read: |b, _| cheek_lab::reference::parse(b, "fuzz.csv", &cheek_lab::reference::Columns::default()).map(drop),
    },
    Target {
        name: "label",
        what: "RGB label decoders (rgb2class: streamed PNG, then any image)",
        seeds: seeds::label,
        read: |b, _| {
            let p = Path::new("fuzz.png");
            let mut rows = 0u64;
            let streamed = rgb2class::stream_rgb8_png_from(std::io::Cursor::new(b), p, |_, _, r| {
                rows += r.len() as u64;
                Ok(())
            });
            if let Ok(Some(_)) = streamed {
                return Ok(());
            }
            let img = facepipe_core::images::decode_bytes(b)?;
            rgb2class::decode_label_image(img, p, false).map(drop)
        },
    },
    Target {
        name: "mask",
        what: "class-mask decoders (rgb2class's TIFF reader, the image crate within limits)",
        seeds: seeds::mask,
        read: |b, _| {
            let a = rgb2class::read_mask_from(std::io::Cursor::new(b), Path::new("fuzz.tif")).map(drop);
            let b = facepipe_core::images::decode_bytes(b).map(drop);
            a.and(b)
        },
    },
    Target {
        name: "weights",
        what: "weight-file readers (.safetensors, and .pth through burn-store)",
        seeds: seeds::weights,
        read: |b, scratch| {
            if b.starts_with(b"PK") {
                let f = scratch.join("w.pth");
                std::fs::write(&f, b)?;
                unet::model::weights::read_tensors(b, "pth", &f).map(drop)
            } else {
                unet::model::weights::read_tensors(b, "safetensors", Path::new("fuzz.safetensors")).map(drop)
            }
        },
    },
    Target {
        name: "model-report",
        what: "model.json and metrics.csv as the report reads and draws them (report)",
        seeds: seeds::model_files,
        read: |b, scratch| {
            let dir = scratch.join("model");
            std::fs::create_dir_all(&dir)?;
            // the mutant is one of the two files; the other is the valid seed
            let (json, csv) = if b.starts_with(b"phase") {
                (seeds::MODEL_JSON.as_bytes(), b)
            } else {
                (b, seeds::METRICS_CSV.as_bytes())
            };
            std::fs::write(dir.join("model.json"), json)?;
            std::fs::write(dir.join("metrics.csv"), csv)?;
            let cfg = report::Config {
                output: scratch.join("page.html"),
                manifest: None,
                model: Some(dir),
                eval: None,
                cheeks: vec![],
                title: "fuzz".into(),
                force: true,
            };
            report::render("fuzz", &report::Inputs::read(&cfg)?);
            Ok(())
        },
    },
];

/// What a run did.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub inputs: u64,
    pub accepted: u64,
    pub refused: u64,
    /// Inputs that panicked (with the message), at most a few kept.
    pub panics: Vec<(Vec<u8>, String)>,
    pub panic_count: u64,
    pub seconds: f64,
}

/// Mutates `input` in place (one to four edits), drawing material from `seeds`.
pub fn mutate(rng: &mut SplitMix64, input: &mut Vec<u8>, seeds: &[Vec<u8>]) {
    const INTERESTING: [&[u8]; 10] = [
        &[0],
        &[0xff],
        &[0x7f],
        &[0x80],
        &[0xff, 0xff, 0xff, 0xff],
        &[0, 0, 0, 0x80],
        &[0xff, 0xff, 0xff, 0x7f],
        &[0, 0, 0, 0, 0, 0, 0xf0, 0x7f],
        b"-1",
        b"1e308",
    ];
    let edits = 1 + rng.below(4);
    for _ in 0..edits {
        let len = input.len() as u64;
        let pos = |rng: &mut SplitMix64| if len == 0 { 0 } else { rng.below(len) as usize };
        match rng.below(9) {
            0 if len > 0 => {
                let i = pos(rng);
                input[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = pos(rng);
                input[i] = rng.next_u64() as u8;
            }
            2 => {
                let i = pos(rng);
                let n = 1 + rng.below(8) as usize;
                let bytes: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
                input.splice(i..i, bytes);
            }
            3 if len > 1 => {
                let i = pos(rng);
                let n = (1 + rng.below(32) as usize).min(input.len() - i);
                input.drain(i..i + n);
            }
            4 if len > 1 => {
                // duplicate a block
                let i = pos(rng);
                let n = (1 + rng.below(64) as usize).min(input.len() - i);
                let block = input[i..i + n].to_vec();
                let at = pos(rng);
                input.splice(at..at, block);
            }
            5 if len > 0 => {
                let v = INTERESTING[rng.below(INTERESTING.len() as u64) as usize];
                let i = pos(rng);
                let end = (i + v.len()).min(input.len());
                input.splice(i..end, v.iter().copied());
            }
            6 if !seeds.is_empty() => {
                // splice in a piece of another seed
                let s = &seeds[rng.below(seeds.len() as u64) as usize];
                if !s.is_empty() {
                    let a = rng.below(s.len() as u64) as usize;
                    let n = (1 + rng.below(256) as usize).min(s.len() - a);
                    let at = pos(rng);
                    input.splice(at..at, s[a..a + n].iter().copied());
                }
            }
            7 if len > 0 => {
                input.truncate(pos(rng));
            }
            _ if len > 0 => {
                // a small integer change of one byte (lengths, counts, offsets)
                let i = pos(rng);
                input[i] = input[i].wrapping_add((rng.below(33) as u8).wrapping_sub(16));
            }
            _ => input.push(rng.next_u64() as u8),
        }
    }
    if input.len() > 1 << 20 {
        input.truncate(1 << 20);
    }
}

/// Runs `target` on up to `n` inputs (the seeds first, then mutants), stopping early after
/// `limit`. Panics are caught and kept; the default panic message is silenced meanwhile.
pub fn run(target: &Target, n: u64, limit: Duration, seed: u64) -> Stats {
    let seeds = (target.seeds)();
    let scratch = tempfile::tempdir().expect("a temporary folder");
    let mut rng = SplitMix64::new(seed);
    let mut stats = Stats::default();
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let t0 = Instant::now();
    // a corpus that grows with inputs that were accepted (they reach deeper code)
    let mut corpus: Vec<Vec<u8>> = seeds.clone();
    let mut input = Vec::new();
    while stats.inputs < n && t0.elapsed() < limit {
        let k = stats.inputs as usize;
        if k < seeds.len() {
            input.clone_from(&seeds[k]);
        } else {
            input.clone_from(&corpus[rng.below(corpus.len() as u64) as usize]);
            mutate(&mut rng, &mut input, &seeds);
        }
        let r = catch_unwind(AssertUnwindSafe(|| (target.read)(&input, scratch.path())));
        stats.inputs += 1;
        match r {
            Ok(Ok(())) => {
                stats.accepted += 1;
                if corpus.len() < 256 && rng.below(16) == 0 {
                    corpus.push(input.clone());
                }
            }
            Ok(Err(_)) => stats.refused += 1,
            Err(p) => {
                stats.panic_count += 1;
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                if stats.panics.len() < 5 {
                    stats.panics.push((input.clone(), msg));
                }
            }
        }
    }
    std::panic::set_hook(hook);
    stats.seconds = t0.elapsed().as_secs_f64();
    stats
}

pub mod seeds;
