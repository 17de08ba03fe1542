#!/usr/bin/env python3
"""Parity of our ResNet34 encoder with torchvision's.

Saves a torchvision resnet34 with seeded random weights (BatchNorm affine parameters random
too, running statistics measured on the batch, so that a swapped or skipped tensor shows and
the features stay near the unit scale of a trained network), in eval mode,
as .pth and as .safetensors; runs our encoder (crates/unet/examples/encoder_features.rs) on
the same batch with each file; compares the stem and the four stages' feature maps with
torchvision's computed in float64 (and prints how far torchvision's own float32 result is from
it). Passes when the largest absolute difference is below 1e-4.

    python3 tests/parity/encoder_parity.py PATH/TO/encoder_features

Exits 0 with a "skipped" message where torch or torchvision cannot be imported.
"""
import subprocess
import sys
import tempfile
from pathlib import Path

try:
    import torch
    import torchvision
    from safetensors.torch import load_file, save_file
except ImportError as e:  # pragma: no cover - environment dependent
    print(f"encoder parity: skipped ({e}); pip install torch torchvision safetensors to run it")
    sys.exit(0)


def main():
    exe = sys.argv[1]
    torch.manual_seed(2020)
    net = torchvision.models.resnet34(weights=None)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.4, 0.9)
                m.bias.uniform_(-0.2, 0.2)
    x = torch.randn(2, 3, 96, 80)
    # running statistics measured on the batch itself (cumulative average over one pass), so
    # that every stage's features stay near unit scale, as with trained weights
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
    net.train()
    with torch.no_grad():
        net(x)
    net.eval()
    def features(n, inp):
        with torch.no_grad():
            stem = n.relu(n.bn1(n.conv1(inp)))
            l1 = n.layer1(n.maxpool(stem))
            l2 = n.layer2(l1)
            l3 = n.layer3(l2)
            l4 = n.layer4(l3)
        return {"stem": stem, "layer1": l1, "layer2": l2, "layer3": l3, "layer4": l4}

    want32 = features(net, x)
    import copy

    # the exact answer (float64), to tell our rounding from PyTorch's own
    want = {k: v.double() for k, v in features(copy.deepcopy(net).double(), x.double()).items()}
    torch_err = max((want32[k].double() - want[k]).abs().max().item() for k in want)
    print(f"PyTorch float32 vs float64: max|diff| {torch_err:.2e}")
    worst_all = 0.0
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        sd = {k: v.contiguous() for k, v in net.state_dict().items()}
        torch.save(sd, d / "w.pth")
        save_file({k: v for k, v in sd.items() if v.dtype == torch.float32}, str(d / "w.safetensors"))
        save_file({"x": x.contiguous()}, str(d / "x.safetensors"))
        for weights in ["w.pth", "w.safetensors"]:
            subprocess.run([exe, str(d / weights), str(d / "x.safetensors"), str(d / "out.safetensors")], check=True)
            got = load_file(str(d / "out.safetensors"))
            for k, v in want.items():
                assert got[k].shape == v.shape, (weights, k, got[k].shape, v.shape)
                diff = (got[k].double() - v).abs().max().item()
                scale = v.abs().max().item()
                print(f"{weights:16s} {k:7s} {tuple(v.shape)} max|diff| {diff:.2e} (max|value| {scale:.2f})")
                worst_all = max(worst_all, diff)
    if worst_all >= 1e-4:
        print(f"encoder parity: FAILED, max abs diff from the float64 reference {worst_all:.2e} >= 1e-4")
        sys.exit(1)
    print(f"encoder parity: ok, max abs diff from the float64 reference {worst_all:.2e} < 1e-4 (PyTorch float32: {torch_err:.2e})")


if __name__ == "__main__":
    main()
