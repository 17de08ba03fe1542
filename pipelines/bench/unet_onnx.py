#!/usr/bin/env python3
"""ONNX Runtime's time for one inference batch of the PyTorch twin (`unet_torch.py`), the
fastest CPU runtime users of this network have: the twin, in eval mode with its softmax, is
exported with `torch.onnx.export` (opset 17) and run by onnxruntime's CPU provider with all
graph optimisations (BatchNorm folded into the convolutions, fused activations) on THREADS
intra-op threads. Prints the best of STEPS batches after a warm-up, the process's peak memory,
and the largest difference from PyTorch's probabilities on the same input (a check that the
exported graph is the same network).

    python3 pipelines/bench/unet_onnx.py ARCH SIZE BS [STEPS] [THREADS]

Needs torch, torchvision, segmentation_models_pytorch and onnxruntime (TORCH_PYTHON's venv;
`make bench-unet` skips this column when onnxruntime is absent).
"""
import os
import resource
import sys
import tempfile
import time

import torch

from unet_torch import args, build


class Probabilities(torch.nn.Module):
    """The network with its softmax over classes: what facepipe's inference returns."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x).softmax(1)


def main():
    import onnxruntime as ort

    arch, size, bs, steps, threads = args()
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = Probabilities(build(arch)).eval()
    x = torch.randn(bs, 3, size, size)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "unet.onnx")
        torch.onnx.export(net, (x,), path, opset_version=17, input_names=["x"], output_names=["p"], dynamo=False)
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    xn = x.numpy()
    times = []
    for i in range(steps + 1):
        t = time.perf_counter()
        p = session.run(None, {"x": xn})[0]
        if i:
            times.append(time.perf_counter() - t)
    with torch.no_grad():
        diff = float((net(x) - torch.from_numpy(p)).abs().max())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"onnxruntime {ort.__version__} {arch} {size}x{size} bs {bs}: inference {min(times) * 1000:.0f} ms, "
        f"peak RSS {peak:.0f} MiB, max |p - pytorch| {diff:.1e}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
