"""Mean and standard deviation of every parameter of segmentation_models_pytorch's Unet at
initialisation (resnet34 encoder, encoder_weights=None, 12 classes: what `--arch smp`
corresponds to), as JSON for crates/unet/tests/init_stats.rs. The encoder is torchvision's
ResNet34 with torchvision's initialisation, which both archs share.

Run once with segmentation_models_pytorch installed; the output is committed:
    python tests/parity/smp_init_stats.py > crates/unet/tests/data/smp_init_stats.json
"""
import json
import sys
import warnings

warnings.filterwarnings("ignore")
import segmentation_models_pytorch as smp
import torch
from param_stats import param_stats

torch.manual_seed(2020)
model = smp.Unet("resnet34", encoder_weights=None, classes=12)
params = param_stats(model)
json.dump({
    "source": 'segmentation_models_pytorch.Unet("resnet34", encoder_weights=None, classes=12)',
    "segmentation_models_pytorch": smp.__version__,
    "torch": torch.__version__,
    "seed": 2020,
    "params": params,
}, sys.stdout, indent=1)
print()
