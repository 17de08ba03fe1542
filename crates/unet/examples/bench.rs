//! Times one training step (forward, backward, optimiser) and one inference batch of a UNet on
//! the CPU, and reports the process's peak memory. Run one configuration per process (peak
//! memory is per process): `make bench-unet` runs them all next to PyTorch.
//!
//! ```text
//! cargo run --release -p unet --example bench -- smp 128 4 [steps]
//! ```
//!
//! `UNET_BENCH_DEVICE=cuda` runs it on the GPU (a build with `--features unet/cuda`); peak RSS
//! is then host memory only. `FACEPIPE_CPU_KERNELS=burn` times burn's own CPU operations
//! instead of facepipe's kernels (`make bench-kernels` runs both).
//!
//! `UNET_BENCH_MODE=infer` times inference only (large inputs, where a training step would
//! take minutes).
//!
//! It also times the data loader on one training batch of the same size (`make_batch`:
//! decode PNG photos and TIFF masks, random crop, resize, normalise), from files it writes
//! to a temporary folder, so the loader's cost can be put next to the step's.

use std::time::Instant;

use burn::tensor::{Int, Tensor, TensorData};
use unet::data::loader::{Sample, make_batch};
use unet::device::{BackendTask, DeviceSpec, dispatch};
use unet::kernels::TrainBackend;
use unet::model::{FastaiUnet, SmpUnet};
use unet::training::fit::{Infer, Segmenter};
use unet::training::loss::{Loss, Objective};
use unet::training::optim::GroupAdam;

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse::<f64>().ok()))
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

fn bench<AB: TrainBackend, M: Segmenter<AB>>(
    mut net: M,
    d: AB::Device,
    size: usize,
    bs: usize,
    steps: usize,
    train_too: bool,
) -> (f64, f64) {
    let n = bs * 3 * size * size;
    let x: Vec<f32> = (0..n).map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0).collect();
    let y: Vec<i64> = (0..bs * size * size).map(|i| ((i / 97) % 12) as i64).collect();
    let xt = || Tensor::<AB, 4>::from_data(TensorData::new(x.clone(), [bs, 3, size, size]), &d);
    let yt = || Tensor::<AB, 3, Int>::from_data(TensorData::new(y.clone(), [bs, size, size]), &d);
    let mut opt = GroupAdam::<AB>::new(&net);
    let (mut train, mut optim) = (vec![], vec![]);
    for i in 0..if train_too { steps + 1 } else { 0 } {
        let t = Instant::now();
        let loss = Loss::CrossEntropy.compute(net.logits(xt()), yt());
        let grads = loss.backward();
        AB::sync(&d).expect("device sync");
        let t_opt = Instant::now();
        net = opt.step(net, &grads, [1e-4, 1e-4, 1e-3], 0.9);
        // wait for the device (a no-op on the CPU)
        AB::sync(&d).expect("device sync");
        if i > 0 {
            train.push(t.elapsed().as_secs_f64());
            optim.push(t_opt.elapsed().as_secs_f64());
        }
    }
    let inner = net.valid();
    let xi = Tensor::from_data(TensorData::new(x.clone(), [bs, 3, size, size]), &d);
    let mut infer = vec![];
    for i in 0..steps + 1 {
        let t = Instant::now();
        // what unet-eval does: class probabilities, read back
        let p = burn::tensor::activation::softmax(inner.logits(xi.clone()), 1).into_data();
        std::hint::black_box(p);
        if i > 0 {
            infer.push(t.elapsed().as_secs_f64());
        }
    }
    let min = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min) * 1000.0;
    if train_too {
        eprintln!("optimiser step {:.0} ms of the training step", min(&optim));
    }
    (min(&train), min(&infer))
}

/// Minimum time to build one training batch of `bs` samples at `size` from PNG photos
/// (side `max(size, 256)`, like the demo's) and 8-bit TIFF masks.
fn loader_ms(size: usize, bs: usize, steps: usize) -> f64 {
    let dir = tempfile::tempdir().expect("temporary folder");
    let side = size.max(256) as u32;
    let samples: Vec<Sample> = (0..bs)
        .map(|i| {
            let photo = image::RgbImage::from_fn(side, side, |x, y| {
                let v = (x * 7 + y * 13 + i as u32 * 31) as u8;
                image::Rgb([v, v.wrapping_mul(3), 255 - v])
            });
            let mask = image::GrayImage::from_fn(side, side, |x, y| image::Luma([((x / 16 + y / 16) % 12) as u8]));
            let (image, mask_path) = (dir.path().join(format!("{i}.png")), dir.path().join(format!("{i}.tif")));
            photo.save(&image).expect("write photo");
            mask.save(&mask_path).expect("write mask");
            Sample {
                id: i.to_string(),
                image,
                mask: mask_path,
            }
        })
        .collect();
    let which: Vec<usize> = (0..bs).collect();
    let mut best = f64::INFINITY;
    for epoch in 0..=steps as u64 {
        let t = Instant::now();
        let b = make_batch(&samples, &which, size as u32, 12, true, 2020, epoch).expect("batch");
        std::hint::black_box(b);
        if epoch > 0 {
            best = best.min(t.elapsed().as_secs_f64() * 1000.0);
        }
    }
    best
}

struct Task {
    fastai: bool,
    size: usize,
    bs: usize,
    steps: usize,
    train_too: bool,
}

impl BackendTask for Task {
    type Output = (f64, f64);
    fn run<AB: TrainBackend>(self, d: AB::Device) -> anyhow::Result<(f64, f64)> {
        let Task {
            fastai,
            size,
            bs,
            steps,
            train_too,
        } = self;
        Ok(if fastai {
            bench(FastaiUnet::<AB>::new(12, &d), d, size, bs, steps, train_too)
        } else {
            bench(SmpUnet::<AB>::new(12, &d), d, size, bs, steps, train_too)
        })
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arch = args.get(1).map_or("smp", String::as_str);
    let size: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(128);
    let bs: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(4);
    let steps: usize = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(3);
    let train_too = std::env::var("UNET_BENCH_MODE").map_or(true, |m| m != "infer");
    let device: DeviceSpec = std::env::var("UNET_BENCH_DEVICE")
        .unwrap_or_else(|_| "cpu".into())
        .parse()
        .unwrap_or_else(|e| panic!("UNET_BENCH_DEVICE: {e}"));
    let task = Task {
        fastai: arch == "fastai",
        size,
        bs,
        steps,
        train_too,
    };
    let ops = if unet::kernels::cpu_kernels_enabled() {
        ""
    } else {
        "-burn-ops"
    };
    let label = format!("burn-{device}{ops}");
    let (train, infer) = dispatch(device, task).unwrap_or_else(|e| panic!("{e:#}"));
    let train = if train_too {
        format!("{train:.0} ms")
    } else {
        "skipped".into()
    };
    let rss = peak_rss_mib();
    let loader = loader_ms(size, bs, steps);
    eprintln!(
        "{label} {arch} {size}x{size} bs {bs}: train step {train}, inference {infer:.0} ms, peak RSS {rss:.0} MiB, loader {loader:.0} ms"
    );
}
