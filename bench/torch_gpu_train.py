"""The PyTorch peer for bench/gpu_vs_torch.sh: the same models as ringtrain's presets (mlp and cnn here;
resnet20, resnet18, resnet50, resnet101 and vgg16 from bench/torch_resnet.py), SGD with momentum, trained
on one GPU from data already resident in GPU memory (PyTorch's best case: no input pipeline at all).
Prints img/s over the steps after a warm-up.
usage: torch_gpu_train.py MODEL BATCH STEPS MATH [--data fashion-mnist|synthetic:CxHxW:K]
  MATH: fp32 | tf32 | bf16. --data fashion-mnist (default): Fashion-MNIST's IDX files, read from $FMNIST_IDX
  (default /usr/share/datasets/fashion-mnist); synthetic:CxHxW:K: one batch of standard-normal inputs and
  uniform labels in [0, K), made once on the GPU and reused every step (Horovod's synthetic benchmark)."""
import gzip, os, sys, time
import numpy as np, torch, torch.nn as nn, torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_resnet  # its models; as a module it parses no arguments and sets no thread counts

model_name, batch, steps, math = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
data = sys.argv[sys.argv.index("--data") + 1] if "--data" in sys.argv else "fashion-mnist"
kind, channels, size, classes = torch_resnet.parse_data(data)
# fp32: IEEE products everywhere, like ringtrain --precision fp32; tf32: tensor cores for matmul and cuDNN.
torch.backends.cuda.matmul.allow_tf32 = math == "tf32"
torch.backends.cudnn.allow_tf32 = math == "tf32"
torch.backends.cudnn.benchmark = True  # measured algorithm choice, as ringtrain's cudnnFind
torch.manual_seed(0)
dev = torch.device("cuda")
if kind == "fashion-mnist":
    root = os.environ.get("FMNIST_IDX", "/usr/share/datasets/fashion-mnist")
    with gzip.open(f"{root}/train-images-idx3-ubyte.gz", "rb") as f:
        x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 1, 28, 28)
    with gzip.open(f"{root}/train-labels-idx1-ubyte.gz", "rb") as f:
        y = np.frombuffer(f.read(), np.uint8, offset=8).astype(np.int64)
    x = torch.from_numpy(x.astype(np.float32) / 255.0).to(dev)
    y = torch.from_numpy(y).to(dev)
    n = x.shape[0]
    perm = torch.randperm(n, device=dev)
    def batch_at(step):
        i = perm[(step * batch) % (n - batch):][:batch]
        return x[i], y[i]
else:
    xb = torch.randn(batch, channels, *size, device=dev)
    yb = torch.randint(0, classes, (batch,), device=dev)
    def batch_at(step):
        return xb, yb

def mlp():
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(),
                         nn.Linear(128, 100), nn.ReLU(), nn.Linear(100, 10))
def cnn():
    return nn.Sequential(nn.Conv2d(1, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(7 * 7 * 64, 1024), nn.ReLU(), nn.Linear(1024, 10))
if model_name in ("mlp", "cnn"):
    assert (channels, size, classes) == (1, (28, 28), 10), f"{model_name} is a Fashion-MNIST model, not for {data}"
    net = {"mlp": mlp, "cnn": cnn}[model_name]().to(dev)
else:
    net = torch_resnet.build(model_name, channels, size, classes).to(dev)
net.train()
opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
warmup = 20
for step in range(warmup + steps):
    if step == warmup:
        torch.cuda.synchronize()
        t0 = time.perf_counter()
    xs, ys = batch_at(step)
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=math == "bf16"):
        loss = F.cross_entropy(net(xs), ys)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
torch.cuda.synchronize()
dt = time.perf_counter() - t0
print(f"model={model_name} data={data} batch={batch} math={math} steps={steps} img_per_s={steps * batch / dt:.0f} "
      f"loss={loss.item():.4f}")
