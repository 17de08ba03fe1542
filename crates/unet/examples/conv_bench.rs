//! Times facepipe's CPU convolution kernels alone (forward, input gradient, weight gradient)
//! on one layer shape and prints GFLOP/s, for comparison with a framework's convolution on the
//! same shape (`pipelines/bench/conv_torch.py`).
//!
//! ```text
//! cargo run --release -p unet --example conv_bench -- BATCH CIN COUT SIZE K STRIDE [REPS]
//! ```

use std::time::Instant;

use unet::kernels::conv::{self, ConvShape};

fn main() {
    let a: Vec<usize> = std::env::args().skip(1).filter_map(|s| s.parse().ok()).collect();
    let [batch, cin, cout, size, k, stride] =
        [0, 1, 2, 3, 4, 5].map(|i| a.get(i).copied().unwrap_or([4, 64, 64, 64, 3, 1][i]));
    let reps = a.get(6).copied().unwrap_or(5);
    let s = ConvShape {
        batch,
        cin,
        h: size,
        w: size,
        cout,
        kh: k,
        kw: k,
        stride: [stride, stride],
        pad: [k / 2, k / 2],
        dilation: [1, 1],
    };
    let [oh, ow] = s.out_hw();
    let x: Vec<f32> = (0..batch * cin * size * size)
        .map(|i| (i % 17) as f32 * 0.1 - 0.8)
        .collect();
    let w: Vec<f32> = (0..cout * cin * k * k).map(|i| (i % 13) as f32 * 0.01 - 0.06).collect();
    let dy: Vec<f32> = (0..batch * cout * oh * ow)
        .map(|i| (i % 7) as f32 * 0.1 - 0.3)
        .collect();
    let flop = 2.0 * (batch * cout * oh * ow * cin * k * k) as f64;
    let time = |f: &dyn Fn() -> Vec<f32>| {
        (0..=reps)
            .map(|_| {
                let t = Instant::now();
                std::hint::black_box(f());
                t.elapsed().as_secs_f64()
            })
            .skip(1)
            .fold(f64::INFINITY, f64::min)
    };
    let fwd = time(&|| conv::forward(&s, &x, &w, None));
    let bwi = time(&|| conv::backward_input(&s, &w, &dy));
    let bww = time(&|| conv::backward_weight(&s, &x, &dy));
    eprintln!(
        "facepipe conv b{batch} {cin}->{cout} {size}² k{k} s{stride}: forward {:.2} ms ({:.0} GFLOP/s), input grad {:.2} ms ({:.0}), weight grad {:.2} ms ({:.0})",
        fwd * 1e3,
        flop / fwd / 1e9,
        bwi * 1e3,
        flop / bwi / 1e9,
        bww * 1e3,
        flop / bww / 1e9
    );
}
