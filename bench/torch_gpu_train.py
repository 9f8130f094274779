"""The PyTorch peer for bench/gpu_vs_torch.sh: the same mlp and cnn as ringtrain's presets, SGD with
momentum, trained on one GPU from Fashion-MNIST already resident in GPU memory (PyTorch's best case: no
input pipeline at all). Prints img/s over the steps after a warm-up.
usage: torch_gpu_train.py MODEL BATCH STEPS MATH     (MATH: fp32 | tf32 | bf16)
Fashion-MNIST's IDX files are read from $FMNIST_IDX (default /usr/share/datasets/fashion-mnist)."""
import gzip, os, sys, time
import numpy as np, torch, torch.nn as nn, torch.nn.functional as F

model_name, batch, steps, math = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
# fp32: IEEE products everywhere, like ringtrain --precision fp32; tf32: tensor cores for matmul and cuDNN.
torch.backends.cuda.matmul.allow_tf32 = math == "tf32"
torch.backends.cudnn.allow_tf32 = math == "tf32"
torch.backends.cudnn.benchmark = True  # measured algorithm choice, as ringtrain's cudnnFind
torch.manual_seed(0)
root = os.environ.get("FMNIST_IDX", "/usr/share/datasets/fashion-mnist")
with gzip.open(f"{root}/train-images-idx3-ubyte.gz", "rb") as f:
    x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 1, 28, 28)
with gzip.open(f"{root}/train-labels-idx1-ubyte.gz", "rb") as f:
    y = np.frombuffer(f.read(), np.uint8, offset=8).astype(np.int64)
dev = torch.device("cuda")
x = torch.from_numpy(x.astype(np.float32) / 255.0).to(dev)
y = torch.from_numpy(y).to(dev)

def mlp():
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(),
                         nn.Linear(128, 100), nn.ReLU(), nn.Linear(100, 10))
def cnn():
    return nn.Sequential(nn.Conv2d(1, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(7 * 7 * 64, 1024), nn.ReLU(), nn.Linear(1024, 10))
net = {"mlp": mlp, "cnn": cnn}[model_name]().to(dev)
opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
n = x.shape[0]
perm = torch.randperm(n, device=dev)
warmup = 20
for step in range(warmup + steps):
    if step == warmup:
        torch.cuda.synchronize()
        t0 = time.perf_counter()
    i = perm[(step * batch) % (n - batch):][:batch]
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=math == "bf16"):
        loss = F.cross_entropy(net(x[i]), y[i])
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
torch.cuda.synchronize()
dt = time.perf_counter() - t0
print(f"model={model_name} batch={batch} math={math} steps={steps} img_per_s={steps * batch / dt:.0f} "
      f"loss={loss.item():.4f}")
