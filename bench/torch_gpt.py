"""Peer: the GPT that ringtrain's presets build, in torch.nn, trained the way `ringtrain train` trains it.

usage: torch_gpt.py --data DIR|synthetic-tokens:T:V --threads N --batch B --steps S
                    [--layers L --heads H --channels C --context K --tied] [--lr LR --weight-decay WD --seed S]
                    [--warmup-steps W --clip-grad-norm X --init MODEL.h5 --print-losses]
                    [--device cpu|cuda --math fp32|tf32|bf16]

The model is ringtrain's `embedding(V,C,context=K),block(H) x L,layernorm,linear(V,per_token=1,bias=0)`
(gpt-tiny by default): token and learned position embeddings, pre-LayerNorm blocks with causal multi-head
attention (one qkv projection with bias, an output projection with bias) and a 4C MLP with exact GELU, a final
LayerNorm and an output layer, untied or (--tied, gpt2-124m) sharing the token table. Initialisation follows ringtrain's (tables and weights N(0, 0.02)...
though what matters for a comparison of trained losses is only that both are sensible).
Optimizer: torch.optim.AdamW, decay on every 2-D parameter (ringtrain's kernels) and none on biases and norms.
Data: the HDF5 token shards of `ringtrain prep --format text` (x [N, T] uint8, y [N, T] int64): training windows
in a fresh random order every epoch, the validation split scored at the end; or random tokens for speed.
Prints one line: tokens_per_s (after 3 warm-up steps), train_loss (mean of the last 10% of steps), val_loss.
"""
import argparse, glob, math, os, sys, time

ap = argparse.ArgumentParser()
ap.add_argument("--data", required=True)
ap.add_argument("--threads", type=int, default=1)
ap.add_argument("--batch", type=int, default=16)
ap.add_argument("--steps", type=int, default=100)
ap.add_argument("--layers", type=int, default=4)
ap.add_argument("--heads", type=int, default=4)
ap.add_argument("--channels", type=int, default=128)
ap.add_argument("--context", type=int, default=128)
ap.add_argument("--lr", type=float, default=1e-3)
ap.add_argument("--weight-decay", type=float, default=0.01)
ap.add_argument("--warmup-steps", type=int, default=0, help="linear warm-up from 0, as ringtrain's --warmup-epochs")
ap.add_argument("--clip-grad-norm", type=float, default=0.0, help="as ringtrain's (0: off)")
ap.add_argument("--seed", type=int, default=0)
ap.add_argument("--tied", action="store_true")
ap.add_argument("--device", default="cpu")
ap.add_argument("--math", default="fp32", choices=("fp32", "tf32", "bf16"))
ap.add_argument("--init", help="start from the weights of a ringtrain model file of the same GPT")
ap.add_argument("--print-losses", action="store_true", help="print every step's training loss")
a = ap.parse_args()
# BLAS and OpenMP pools are sized before torch loads, or OpenBLAS takes every core whatever --threads says.
for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[v] = str(a.threads)
import numpy as np, torch, torch.nn as nn, torch.nn.functional as F

torch.set_num_threads(a.threads)
torch.manual_seed(a.seed)
dev = torch.device(a.device)
torch.backends.cuda.matmul.allow_tf32 = a.math == "tf32"


class Block(nn.Module):
    def __init__(self, c, heads):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(c), nn.LayerNorm(c)
        self.qkv, self.attn_proj = nn.Linear(c, 3 * c), nn.Linear(c, c)
        self.fc, self.proj = nn.Linear(c, 4 * c), nn.Linear(4 * c, c)

    def attention(self, x):
        b, t, c = x.shape
        q, k, v = self.qkv(x).split(c, dim=2)
        q, k, v = (z.view(b, t, self.heads, c // self.heads).transpose(1, 2) for z in (q, k, v))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(c // self.heads)
        mask = torch.ones(t, t, dtype=torch.bool, device=x.device).triu(1)
        y = att.masked_fill(mask, float("-inf")).softmax(-1) @ v
        return self.attn_proj(y.transpose(1, 2).reshape(b, t, c))

    def forward(self, x):
        x = x + self.attention(self.ln1(x))
        return x + self.proj(F.gelu(self.fc(self.ln2(x))))


class GPT(nn.Module):
    def __init__(self, vocab, c, context, layers, heads, tied):
        super().__init__()
        self.token, self.position = nn.Embedding(vocab, c), nn.Embedding(context, c)
        self.blocks = nn.ModuleList(Block(c, heads) for _ in range(layers))
        self.ln = nn.LayerNorm(c)
        self.head = nn.Linear(c, vocab, bias=False)
        for name, p in self.named_parameters():
            if p.dim() >= 2: nn.init.normal_(p, 0.0, 0.02)
            elif name.endswith("bias"): nn.init.zeros_(p)
        if tied: self.head.weight = self.token.weight

    def forward(self, idx):
        x = self.token(idx) + self.position(torch.arange(idx.shape[1], device=idx.device))
        for block in self.blocks: x = block(x)
        return self.head(self.ln(x))


def load_ringtrain_weights(net, path):
    """A ringtrain model file's datasets ("block2/attention/qkv_weight", ...) into the torch modules."""
    import h5py
    names = {"embedding1/token": "token.weight", "embedding1/position": "position.weight",
             "layernorm1/weight": "ln.weight", "layernorm1/bias": "ln.bias", "linear1/weight": "head.weight"}
    ours = {"ln1/weight": "ln1.weight", "ln1/bias": "ln1.bias", "ln2/weight": "ln2.weight", "ln2/bias": "ln2.bias",
            "attention/qkv_weight": "qkv.weight", "attention/qkv_bias": "qkv.bias",
            "attention/proj_weight": "attn_proj.weight", "attention/proj_bias": "attn_proj.bias",
            "fc/weight": "fc.weight", "fc/bias": "fc.bias", "proj/weight": "proj.weight", "proj/bias": "proj.bias"}
    for i in range(len(net.blocks)):
        names.update({f"block{i + 1}/{k}": f"blocks.{i}.{v}" for k, v in ours.items()})
    params = dict(net.named_parameters())
    with h5py.File(path, "r") as f, torch.no_grad():
        for theirs, mine in names.items():
            if theirs in f:
                params[mine].copy_(torch.from_numpy(np.asarray(f[theirs])))


def load_split(pattern):
    import h5py
    xs, ys = [], []
    for path in sorted(glob.glob(pattern)):
        with h5py.File(path, "r") as f:
            xs.append(np.asarray(f["x"], dtype=np.int64)); ys.append(np.asarray(f["y"], dtype=np.int64))
    if not xs: sys.exit(f"no shards match {pattern}")
    return torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys))


if a.data.startswith("synthetic-tokens:"):
    t, vocab = (int(z) for z in a.data.split(":")[1:3])
    g = torch.Generator().manual_seed(a.seed)
    xtr = torch.randint(0, vocab, (a.batch * 4, t + 1), generator=g)
    xtr, ytr = xtr[:, :-1].contiguous(), xtr[:, 1:].contiguous()
    xva = yva = None
else:
    xtr, ytr = load_split(os.path.join(a.data, "train-*.h5"))
    xva, yva = load_split(os.path.join(a.data, "val-*.h5"))
    vocab = 256
xtr, ytr = xtr.to(dev), ytr.to(dev)
net = GPT(vocab, a.channels, a.context, a.layers, a.heads, a.tied).to(dev)
if a.init: load_ringtrain_weights(net, a.init)
decay = [p for p in net.parameters() if p.dim() >= 2]
no_decay = [p for p in net.parameters() if p.dim() < 2]
opt = torch.optim.AdamW([{"params": decay, "weight_decay": a.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
                        lr=a.lr, betas=(0.9, 0.999), eps=1e-8)

n, t = xtr.shape
g = torch.Generator().manual_seed(a.seed)
order, pos, losses = torch.randperm(n, generator=g), 0, []
t0, tokens = None, 0
for step in range(a.steps):
    if step == 3:
        if a.device == "cuda": torch.cuda.synchronize()
        t0, tokens = time.perf_counter(), 0
    if pos + a.batch > n: order, pos = torch.randperm(n, generator=g), 0
    i = order[pos:pos + a.batch].to(dev); pos += a.batch
    with torch.autocast(a.device, dtype=torch.bfloat16, enabled=a.math == "bf16"):
        logits = net(xtr[i])
        loss = F.cross_entropy(logits.float().view(-1, vocab), ytr[i].view(-1))
    for group in opt.param_groups:
        group["lr"] = a.lr * min(1.0, (step + 1) / a.warmup_steps) if a.warmup_steps else a.lr
    opt.zero_grad(set_to_none=True); loss.backward()
    if a.clip_grad_norm > 0: torch.nn.utils.clip_grad_norm_(net.parameters(), a.clip_grad_norm)
    opt.step()
    losses.append(loss.detach()); tokens += a.batch * t
    if a.print_losses: print(f"step {step + 1} loss {loss.item():.4f}")
if a.device == "cuda": torch.cuda.synchronize()
dt = time.perf_counter() - t0 if t0 else float("nan")
losses = [z.item() for z in losses]
tail = losses[-max(1, len(losses) // 10):] or [float("nan")]
val = float("nan")
if xva is not None:
    xva, yva = xva.to(dev), yva.to(dev)
    net.eval(); total, count = 0.0, 0
    with torch.no_grad():
        for s in range(0, xva.shape[0], 64):
            out = net(xva[s:s + 64])
            total += F.cross_entropy(out.reshape(-1, vocab), yva[s:s + 64].reshape(-1), reduction="sum").item()
            count += yva[s:s + 64].numel()
    val = total / count
print(f"threads={a.threads} batch={a.batch} steps={a.steps} tokens_per_s={tokens / dt:.0f} "
      f"train_loss={sum(tail) / len(tail):.4f} val_loss={val:.4f}")
