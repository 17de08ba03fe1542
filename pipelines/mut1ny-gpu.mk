# The reference workflow on the real Mut1ny data, on a GPU: fine_tune(1), lr_find,
# fit_one_cycle(12, slice(1e-5, 1e-4)) with early stopping (patience 2), fastai's DynamicUnet,
# 448x448 inputs, batch 12, seed 2020, 35 % validation.
#
#   make -f pipelines/mut1ny-gpu.mk DATA_DIR=/data/mut1ny PRETRAINED=resnet34-b627a593.pth
#
# PRETRAINED is torchvision's ImageNet resnet34 file (or a .safetensors with its names); the
# reference used ImageNet weights, so leave it out only on purpose. Everything else is the main
# Makefile's, built with CUDA.
#
# Cheek colour against hand measurements: REFERENCE=measurements.csv, one row per face, laid
# out as pipelines/reference-template.csv (ids `ITEM_ID#0`, the item id being the image path
# without extension, e.g. `samples/g000/face_00000#0`), or name your columns, e.g.
#   CHEEK_ARGS="--ref-id image --join id --ref-left lL,la,lb --ref-right rL,ra,rb --white d50"
# (--white d50 for values read off Photoshop's Lab). Without REFERENCE the cheeks are measured
# and not compared.

ifeq ($(origin DATA_DIR),undefined)
$(error set DATA_DIR to the Mut1ny folder that holds training.xml)
endif
PRETRAINED ?=
OUT_DIR ?= runs/mut1ny
DEVICE ?= cuda
TRAIN_ARGS ?= --arch fastai --size 448 --bs 12 $(if $(PRETRAINED),--pretrained $(PRETRAINED))
EVAL_ARGS ?= --split all --bs 24
BUILD ?= cargo build --release --workspace --bins --quiet --features unet-train/cuda,unet-eval/cuda

include Makefile
