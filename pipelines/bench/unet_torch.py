#!/usr/bin/env python3
"""PyTorch twin of `cargo run --release -p unet --example bench`: one training step (forward,
cross-entropy, backward, Adam) and one inference batch of a UNet-ResNet34 on the CPU, with the
same shapes, 12 classes, and the process's peak memory.

    python3 pipelines/bench/unet_torch.py ARCH SIZE BS [STEPS] [THREADS]

UNET_BENCH_DEVICE=cuda runs it on the GPU (timings synchronised) and adds the peak GPU memory
PyTorch allocated.

ARCH `smp` is segmentation_models_pytorch's Unet('resnet34'); `fastai` is a transcription of
fastai's DynamicUnet over torchvision's resnet34 (fastai 2.8's DynamicUnet: BN'd skips, PixelShuffle+ICNR
upsampling, middle convs, last cross with the input and a ResBlock; 41.2 M parameters), so
fastai itself need not be installed. Needs torch, torchvision and segmentation_models_pytorch
(a ~3 GB install from PyPI: kept out of CI; `make bench-unet` skips it when absent).
"""
import os
import resource
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def conv_relu(ni, nf, ks=3):
    return nn.Sequential(nn.Conv2d(ni, nf, ks, padding=ks // 2), nn.ReLU(inplace=True))


class PixelShuffleICNR(nn.Sequential):
    def __init__(self, ni, nf):
        super().__init__(nn.Conv2d(ni, nf * 4, 1), nn.ReLU(inplace=True), nn.PixelShuffle(2))


class UnetBlock(nn.Module):
    def __init__(self, up_in, x_in, final_div=True):
        super().__init__()
        self.shuf = PixelShuffleICNR(up_in, up_in // 2)
        self.bn = nn.BatchNorm2d(x_in)
        ni = up_in // 2 + x_in
        nf = ni if final_div else ni // 2
        self.conv1, self.conv2 = conv_relu(ni, nf), conv_relu(nf, nf)

    def forward(self, up_in, s):
        up = self.shuf(up_in)
        if up.shape[-2:] != s.shape[-2:]:
            up = F.interpolate(up, s.shape[-2:], mode="nearest")
        return self.conv2(self.conv1(F.relu(torch.cat([up, self.bn(s)], 1))))


class FastaiUnet(nn.Module):
    def __init__(self, n_classes):
        import torchvision

        super().__init__()
        r = torchvision.models.resnet34(weights=None)
        self.stem = nn.Sequential(r.conv1, r.bn1, r.relu)
        self.pool, self.layers = r.maxpool, nn.ModuleList([r.layer1, r.layer2, r.layer3, r.layer4])
        self.bn = nn.BatchNorm2d(512)
        self.middle = nn.Sequential(conv_relu(512, 1024), conv_relu(1024, 512))
        self.blocks = nn.ModuleList(
            [UnetBlock(512, 256), UnetBlock(512, 128), UnetBlock(384, 64), UnetBlock(256, 64, final_div=False)]
        )
        self.shuf = PixelShuffleICNR(96, 96)
        self.res1, self.res2 = conv_relu(99, 99), conv_relu(99, 99)
        self.head = nn.Conv2d(99, n_classes, 1)

    def forward(self, x):
        stem = self.stem(x)
        feats, y = [], self.pool(stem)
        for layer in self.layers:
            y = layer(y)
            feats.append(y)
        y = self.middle(F.relu(self.bn(feats[3])))
        for block, s in zip(self.blocks, [feats[2], feats[1], feats[0], stem]):
            y = block(y, s)
        y = self.shuf(y)
        if y.shape[-2:] != x.shape[-2:]:
            y = F.interpolate(y, x.shape[-2:], mode="nearest")
        y = torch.cat([y, x], 1)
        return self.head(F.relu(self.res2(self.res1(y)) + y))


def build(arch, n_classes=12):
    """The PyTorch twin of facepipe's `--arch` (random weights)."""
    if arch == "fastai":
        return FastaiUnet(n_classes)
    import segmentation_models_pytorch as smp

    return smp.Unet("resnet34", encoder_weights=None, classes=n_classes)


def args():
    """ARCH SIZE BS [STEPS] [THREADS] from the command line, with the bench's defaults."""
    a = sys.argv[1:]

    def num(i, default):
        return int(a[i]) if len(a) > i else default

    return (a[0] if a else "smp"), num(1, 128), num(2, 4), num(3, 3), num(4, 2)


def main():
    arch, size, bs, steps, threads = args()
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = build(arch)
    device = os.environ.get("UNET_BENCH_DEVICE", "cpu")
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    net = net.to(device)
    x = torch.randn(bs, 3, size, size, device=device)
    y = torch.randint(0, 12, (bs, size, size), device=device)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4, betas=(0.9, 0.99), eps=1e-5, weight_decay=0.01)
    net.train()
    train = []
    train_too = os.environ.get("UNET_BENCH_MODE") != "infer"
    for i in range(steps + 1 if train_too else 0):
        t = time.perf_counter()
        opt.zero_grad()
        loss = F.cross_entropy(net(x), y, ignore_index=255)
        loss.backward()
        opt.step()
        sync()
        if i:
            train.append(time.perf_counter() - t)
    net.eval()
    infer = []
    with torch.no_grad():
        for i in range(steps + 1):
            t = time.perf_counter()
            net(x).softmax(1).cpu()
            if i:
                infer.append(time.perf_counter() - t)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    train_ms = f"{min(train) * 1000:.0f} ms" if train else "skipped"
    gpu = f", peak GPU {torch.cuda.max_memory_reserved() / 2**20:.0f} MiB" if device.startswith("cuda") else ""
    print(
        f"pytorch {torch.__version__} {arch} {size}x{size} bs {bs}: train step {train_ms}, "
        f"inference {min(infer) * 1000:.0f} ms, peak RSS {peak:.0f} MiB{gpu}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
