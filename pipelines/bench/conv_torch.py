#!/usr/bin/env python3
"""PyTorch twin of `cargo run --release -p unet --example conv_bench`: one convolution's
forward, input gradient and weight gradient on the CPU, with GFLOP/s.

    python3 pipelines/bench/conv_torch.py BATCH CIN COUT SIZE K STRIDE [REPS] [THREADS]
"""
import sys
import time

import torch
import torch.nn.functional as F

a = [int(v) for v in sys.argv[1:]]
batch, cin, cout, size, k, stride = (a + [4, 64, 64, 64, 3, 1][len(a):])[:6]
reps = a[6] if len(a) > 6 else 5
torch.set_num_threads(a[7] if len(a) > 7 else 2)
x = torch.randn(batch, cin, size, size, requires_grad=True)
w = torch.randn(cout, cin, k, k, requires_grad=True)
y = F.conv2d(x, w, padding=k // 2, stride=stride)
dy = torch.randn_like(y)
flop = 2.0 * batch * cout * y.shape[2] * y.shape[3] * cin * k * k


def best(f):
    ts = []
    for _ in range(reps + 1):
        t = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t)
    return min(ts[1:])


with torch.no_grad():
    fwd = best(lambda: F.conv2d(x, w, padding=k // 2, stride=stride))
bwi = best(lambda: torch.ops.aten.convolution_backward(dy, x, w, None, [stride] * 2, [k // 2] * 2, [1, 1], False, [0, 0], 1, [True, False, False]))
bww = best(lambda: torch.ops.aten.convolution_backward(dy, x, w, None, [stride] * 2, [k // 2] * 2, [1, 1], False, [0, 0], 1, [False, True, False]))
print(
    f"pytorch  conv b{batch} {cin}->{cout} {size}² k{k} s{stride}: forward {fwd * 1e3:.2f} ms ({flop / fwd / 1e9:.0f} GFLOP/s), "
    f"input grad {bwi * 1e3:.2f} ms ({flop / bwi / 1e9:.0f}), weight grad {bww * 1e3:.2f} ms ({flop / bww / 1e9:.0f})"
)
