"""Mean and standard deviation of every decoder parameter of fastai's DynamicUnet at
initialisation (resnet34 body, pretrained=False, 12 classes, 128x128, norm_type=None: what
unet_learner builds), as JSON for crates/unet/tests/init_stats.rs.

Run once with fastai installed; the output is committed:
    python tests/parity/fastai_init_stats.py > crates/unet/tests/data/fastai_init_stats.json
The encoder (layers.0, torchvision's resnet34) is left out: it is loaded from ImageNet weights
or, without them, initialised as torchvision does, which crates/unet's encoder tests cover.
"""
import json
import sys
import warnings

warnings.filterwarnings("ignore")
import fastai
import torch
from param_stats import param_stats
from fastai.vision.learner import create_body
from fastai.vision.models.unet import DynamicUnet
from torchvision.models import resnet34

torch.manual_seed(2020)
model = DynamicUnet(create_body(resnet34(), n_in=3, pretrained=False), 12, (128, 128), norm_type=None)
params = param_stats(model, "layers.0.")
json.dump({
    "source": "fastai DynamicUnet(create_body(resnet34(), pretrained=False), 12, (128, 128), norm_type=None)",
    "fastai": fastai.__version__,
    "torch": torch.__version__,
    "seed": 2020,
    "params": params,
}, sys.stdout, indent=1)
print()
