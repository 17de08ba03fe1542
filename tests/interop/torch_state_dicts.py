"""Writes the state-dict key names and shapes of the PyTorch models facepipe's UNets correspond
to, as JSON next to this script, for `cargo test -p unet --test interop` to check the names
unet-train writes against. Needs torch, segmentation_models_pytorch and fastai (not run by
`make test` or CI; the JSON files are committed):

    $TORCH_PYTHON tests/interop/torch_state_dicts.py

* smp_unet_resnet34.json: segmentation_models_pytorch.Unet("resnet34", classes=11)
* fastai_dynamic_unet_resnet34.json: fastai's DynamicUnet(create_body(resnet34()), n_out=11,
  img_size=(128, 128))
"""

import json
import pathlib
import sys

import torch

HERE = pathlib.Path(__file__).resolve().parent
N_CLASSES = 11


def describe(model):
    return [
        {"name": k, "shape": list(v.shape), "dtype": str(v.dtype).removeprefix("torch.")}
        for k, v in model.state_dict().items()
    ]


def main():
    import segmentation_models_pytorch as smp

    torch.manual_seed(0)
    out = {}
    smp_unet = smp.Unet("resnet34", encoder_weights=None, classes=N_CLASSES)
    out["smp_unet_resnet34.json"] = {
        "model": f'segmentation_models_pytorch {smp.__version__}: Unet("resnet34", classes={N_CLASSES})',
        "tensors": describe(smp_unet),
    }
    try:
        import fastai
        from fastai.vision.all import DynamicUnet, create_body, resnet34

        body = create_body(resnet34(), pretrained=False)
        dyn = DynamicUnet(body, n_out=N_CLASSES, img_size=(128, 128))
        out["fastai_dynamic_unet_resnet34.json"] = {
            "model": f"fastai {fastai.__version__}: DynamicUnet(create_body(resnet34()), n_out={N_CLASSES}, img_size=(128, 128))",
            "tensors": describe(dyn),
        }
    except ImportError as e:  # smp alone is enough for the smp list
        print(f"fastai not importable ({e}); its list is not written", file=sys.stderr)
    for name, doc in out.items():
        (HERE / name).write_text(json.dumps(doc, indent=1) + "\n")
        print(f"wrote {HERE / name}: {len(doc['tensors'])} tensors")


if __name__ == "__main__":
    main()
