#!/usr/bin/env python3
"""A facepipe model directory's weights mean the same in PyTorch: loads the directory's
best.safetensors (strictly) into the PyTorch model its arch corresponds to
(segmentation_models_pytorch's Unet for smp, fastai's DynamicUnet for fastai), runs it and
facepipe's model (crates/unet/examples/model_probabilities.rs) on the same random batch, and
compares the class probabilities. Passes when the largest absolute difference is below 1e-4
and every pixel's class agrees.

    python3 tests/interop/torch_parity.py PATH/TO/model_probabilities MODEL_DIR [MODEL_DIR...]

Exits 0 with a "skipped" message where torch cannot be imported.
"""
import json
import subprocess
import sys
import tempfile
from pathlib import Path

try:
    import torch
    from safetensors.torch import load_file, save_file
except ImportError as e:  # pragma: no cover - environment dependent
    print(f"torch parity: skipped ({e})")
    sys.exit(0)


def torch_model(info):
    n, s = len(info["classes"]), info["preprocessing"]["input_size"]
    if info["arch"] == "smp":
        import segmentation_models_pytorch as smp

        return smp.Unet("resnet34", encoder_weights=None, classes=n)
    from fastai.vision.all import DynamicUnet, create_body, resnet34

    return DynamicUnet(create_body(resnet34(), pretrained=False), n_out=n, img_size=(s, s))


def check(tool, model_dir):
    info = json.loads((model_dir / "model.json").read_text())
    s = info["preprocessing"]["input_size"]
    model = torch_model(info).eval()
    print(f"{model_dir} ({info['arch']}): {model.load_state_dict(load_file(model_dir / 'best.safetensors'))}")
    torch.manual_seed(0)
    x = torch.randn(2, 3, s, s)
    with tempfile.TemporaryDirectory() as d:
        save_file({"x": x.contiguous()}, f"{d}/x.safetensors")
        subprocess.run([tool, str(model_dir), f"{d}/x.safetensors", f"{d}/p.safetensors"], check=True)
        ours = load_file(f"{d}/p.safetensors")["p"]
    with torch.no_grad():
        theirs = torch.softmax(model(x), dim=1)
    diff = (ours - theirs).abs().max().item()
    agree = (ours.argmax(1) == theirs.argmax(1)).float().mean().item()
    print(f"  max |p_facepipe - p_torch| = {diff:.2e}; same class on {100 * agree:.3f} % of pixels")
    return diff < 1e-4 and agree == 1.0


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    tool = sys.argv[1]
    ok = all([check(tool, Path(m)) for m in sys.argv[2:]])
    print("torch parity: " + ("ok" if ok else "FAILED"))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
