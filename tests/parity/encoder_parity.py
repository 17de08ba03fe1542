#!/usr/bin/env python3
"""Parity of our ResNet34 encoder with torchvision's.

Saves a torchvision resnet34 with seeded random weights (BatchNorm running statistics and
affine parameters randomised too, so that a swapped or skipped tensor shows), in eval mode,
as .pth and as .safetensors; runs our encoder (crates/unet/examples/encoder_features.rs) on
the same batch with each file; compares the stem and the four stages' feature maps. Passes
when the largest absolute difference is below 1e-4 (relative to feature scale ~1).

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
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
    net.eval()
    x = torch.randn(2, 3, 96, 80)
    with torch.no_grad():
        stem = net.relu(net.bn1(net.conv1(x)))
        l1 = net.layer1(net.maxpool(stem))
        l2 = net.layer2(l1)
        l3 = net.layer3(l2)
        l4 = net.layer4(l3)
    want = {"stem": stem, "layer1": l1, "layer2": l2, "layer3": l3, "layer4": l4}
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
                diff = (got[k] - v).abs().max().item()
                scale = v.abs().max().item()
                print(f"{weights:16s} {k:7s} {tuple(v.shape)} max|diff| {diff:.2e} (max|value| {scale:.2f})")
                worst_all = max(worst_all, diff)
    if worst_all >= 1e-4:
        print(f"encoder parity: FAILED, max abs diff {worst_all:.2e} >= 1e-4")
        sys.exit(1)
    print(f"encoder parity: ok, max abs diff {worst_all:.2e} < 1e-4")


if __name__ == "__main__":
    main()
