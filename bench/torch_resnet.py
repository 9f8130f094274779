"""Peer: PyTorch CPU training throughput of ringtrain's ResNet/VGG presets (torch.nn, no torchvision).
usage: torch_resnet.py MODEL BATCH STEPS THREADS [--data fashion-mnist|synthetic:CxHxW:K] [--warmup W] [--count]
  MODEL: resnet20 | resnet18 | resnet50 | resnet101 | vgg16 (the architectures of ringtrain's presets,
  layer for layer, PyTorch's default initialisation). SGD lr 0.05 momentum 0.9, cross-entropy, train mode.
  Runs W warm-up steps (default 5, not timed), then STEPS timed steps, and prints a line in
  shared/peers/torch_train.py's format (img_per_s_total=N). No evaluation: this is a throughput peer.
  --data fashion-mnist (default): the 60,000 training images through shared/peers/fmnist.py
         (Debian's dataset-fashion-mnist), scaled to [0, 1], indexed by a random permutation.
  --data synthetic:CxHxW:K: one batch of standard-normal inputs and uniform labels in [0, K), made once in
         memory and reused every step (as Horovod's pytorch_synthetic_benchmark.py does).
  --count: print the parameter count for the input shape and classes of --data and exit (loads no data).
Imported as a module (bench/torch_gpu_train.py does), it only defines build(model, channels, size, classes)."""
import os, sys

if __name__ == "__main__":
    if len(sys.argv) < 5:
        sys.exit(__doc__)
    model_name, batch, steps, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    # BLAS and OpenMP pools must be sized before torch loads, or they use every core whatever THREADS says.
    for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[v] = str(threads)

import time
import torch, torch.nn as nn, torch.nn.functional as F


def conv_bn(cin, cout, k, stride=1):
    """conv k x k (padding k // 2, no bias) + BatchNorm."""
    return [nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout)]


class Basic(nn.Module):
    """conv3x3(s) BN ReLU conv3x3 BN, + identity or conv1x1(s)+BN projection, ReLU after the add."""
    expansion = 1

    def __init__(self, cin, c, stride):
        super().__init__()
        self.body = nn.Sequential(*conv_bn(cin, c, 3, stride), nn.ReLU(inplace=True), *conv_bn(c, c, 3))
        self.short = nn.Sequential(*conv_bn(cin, c, 1, stride)) if stride != 1 or cin != c else nn.Identity()

    def forward(self, x):
        return F.relu(self.body(x) + self.short(x))


class Bottleneck(nn.Module):
    """torchvision v1.5: conv1x1(W) BN ReLU conv3x3(W, s) BN ReLU conv1x1(4W) BN, + identity or
    conv1x1(4W, s)+BN projection, ReLU after the add."""
    expansion = 4

    def __init__(self, cin, w, stride):
        super().__init__()
        self.body = nn.Sequential(*conv_bn(cin, w, 1), nn.ReLU(inplace=True), *conv_bn(w, w, 3, stride),
                                  nn.ReLU(inplace=True), *conv_bn(w, 4 * w, 1))
        self.short = (nn.Sequential(*conv_bn(cin, 4 * w, 1, stride)) if stride != 1 or cin != 4 * w
                      else nn.Identity())

    def forward(self, x):
        return F.relu(self.body(x) + self.short(x))


def resnet(block, blocks, widths, stem, classes):
    """stem, then stages of `blocks` blocks (stride 2 at the first block of every stage but the first),
    global average pool, Linear(classes)."""
    layers, cin = list(stem), stem[0].out_channels
    for i, (n, w) in enumerate(zip(blocks, widths)):
        for j in range(n):
            layers.append(block(cin, w, 2 if i > 0 and j == 0 else 1))
            cin = w * block.expansion
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, classes))


def imagenet_stem(channels):
    return [*conv_bn(channels, 64, 7, 2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1)]


VGG16 = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


def vgg16(channels, size, classes):
    layers, cin, h, w = [], channels, size[0], size[1]
    for v in VGG16:
        if v == "M":
            layers.append(nn.MaxPool2d(2)); h, w = h // 2, w // 2
        else:
            layers += [nn.Conv2d(cin, v, 3, padding=1), nn.ReLU(inplace=True)]; cin = v
    if h < 1 or w < 1:
        raise SystemExit(f"vgg16 needs inputs of at least 32x32, not {size[0]}x{size[1]}")
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(cin * h * w, 4096), nn.ReLU(inplace=True),
                         nn.Dropout(0.5), nn.Linear(4096, 4096), nn.ReLU(inplace=True), nn.Dropout(0.5),
                         nn.Linear(4096, classes))


def build(name, channels, size, classes):
    """The preset `name` for inputs [channels, size[0], size[1]] and `classes` outputs."""
    if name == "resnet20":  # He et al. 2016, section 4.2 (CIFAR), any input channels
        stem = [*conv_bn(channels, 16, 3), nn.ReLU(inplace=True)]
        return resnet(Basic, [3, 3, 3], [16, 32, 64], stem, classes)
    if name == "resnet18":
        return resnet(Basic, [2, 2, 2, 2], [64, 128, 256, 512], imagenet_stem(channels), classes)
    if name == "resnet50":
        return resnet(Bottleneck, [3, 4, 6, 3], [64, 128, 256, 512], imagenet_stem(channels), classes)
    if name == "resnet101":
        return resnet(Bottleneck, [3, 4, 23, 3], [64, 128, 256, 512], imagenet_stem(channels), classes)
    if name == "vgg16":
        return vgg16(channels, size, classes)
    raise SystemExit(f"unknown model {name} (resnet20, resnet18, resnet50, resnet101, vgg16)")


def parse_data(spec):
    """'fashion-mnist' or 'synthetic:CxHxW:K' -> (kind, channels, (H, W), classes)."""
    if spec == "fashion-mnist":
        return "fashion-mnist", 1, (28, 28), 10
    try:
        kind, shape, k = spec.split(":")
        c, h, w = (int(d) for d in shape.split("x"))
        assert kind == "synthetic" and min(c, h, w, int(k)) > 0
        return kind, c, (h, w), int(k)
    except (ValueError, AssertionError):
        raise SystemExit(f"--data {spec}: expected fashion-mnist or synthetic:CxHxW:K")


def option(name, default):
    return sys.argv[sys.argv.index(name) + 1] if name in sys.argv else default


if __name__ == "__main__":
    data = option("--data", "fashion-mnist")
    warmup = int(option("--warmup", 5))
    kind, channels, size, classes = parse_data(data)
    torch.set_num_threads(threads); torch.manual_seed(0)
    net = build(model_name, channels, size, classes)
    if "--count" in sys.argv:
        print(f"model={model_name} input={channels}x{size[0]}x{size[1]} classes={classes} "
              f"parameters={sum(p.numel() for p in net.parameters())}")
        sys.exit(0)
    if kind == "fashion-mnist":
        import numpy as np
        sys.path.insert(0, os.environ.get("PEERS", os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                                 "..", "..", "shared", "peers")))
        from fmnist import load
        xtr, ytr = load()[:2]
        x = torch.from_numpy(xtr.astype(np.float32) / 255.0); y = torch.from_numpy(ytr)
        perm = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(0))
        def batch_at(step):
            i = perm[(step * batch) % (x.shape[0] - batch):][:batch]
            return x[i], y[i]
    else:
        xb = torch.randn(batch, channels, *size); yb = torch.randint(0, classes, (batch,))
        def batch_at(step):
            return xb, yb
    net.train()
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    t0 = time.perf_counter()
    for step in range(warmup + steps):
        if step == warmup: t0 = time.perf_counter()
        xs, ys = batch_at(step)
        loss = F.cross_entropy(net(xs), ys)
        opt.zero_grad(); loss.backward(); opt.step()
    dt = time.perf_counter() - t0
    print(f"model={model_name} data={data} batch={batch} world=1 threads={threads} steps={steps} warmup={warmup} "
          f"img_per_s_per_rank={steps * batch / dt:.1f} img_per_s_total={steps * batch / dt:.1f} "
          f"loss={loss.item():.4f} seconds={dt:.1f}")
