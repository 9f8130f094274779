#!/usr/bin/python3
"""ringtrain's GPT layers against PyTorch: the same model in torch.nn from the same weights.

The unit test TransformerReference.WritesWeightsLogitsLossAndGradients (run here with
RINGTRAIN_TRANSFORMER_REFERENCE naming its output) builds embedding(11,16,context=10), block(2), block(4),
layernorm and a per-token output layer tied to the token table, and writes its parameters under their
model-file names, the tokens, labels, logits, the mean cross-entropy over every position and that loss's
gradients. This script builds nanoGPT's modules (CausalSelfAttention with a causal mask and softmax,
LayerNorm, exact GELU, the head sharing the embedding's weight) in float64, loads those weights, and checks
logits and loss to 1e-4 relative and every gradient to 1e-4 of its largest element.

usage: transformer_vs_torch.py RINGTRAIN_TESTS
"""
import math
import os
import subprocess
import sys
import tempfile

import h5py
import torch
import torch.nn.functional as F

TESTS = sys.argv[1]
TOLERANCE = 1e-4


def fail(message):
    print("FAIL: " + message)
    sys.exit(1)


class Attention(torch.nn.Module):
    def __init__(self, channels, heads):
        super().__init__()
        self.heads = heads
        self.qkv = torch.nn.Linear(channels, 3 * channels)
        self.proj = torch.nn.Linear(channels, channels)

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = self.qkv(x).split(c, dim=2)
        q, k, v = (z.view(b, t, self.heads, c // self.heads).transpose(1, 2) for z in (q, k, v))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(c // self.heads)
        causal = torch.tril(torch.ones(t, t, dtype=torch.bool))
        att = F.softmax(att.masked_fill(~causal, float("-inf")), dim=-1)
        return self.proj((att @ v).transpose(1, 2).reshape(b, t, c))


class Block(torch.nn.Module):
    def __init__(self, channels, heads):
        super().__init__()
        self.ln1 = torch.nn.LayerNorm(channels)
        self.attention = Attention(channels, heads)
        self.ln2 = torch.nn.LayerNorm(channels)
        self.fc = torch.nn.Linear(channels, 4 * channels)
        self.proj = torch.nn.Linear(4 * channels, channels)

    def forward(self, x):
        x = x + self.attention(self.ln1(x))
        return x + self.proj(F.gelu(self.fc(self.ln2(x))))


def main():
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "reference.h5")
        env = dict(os.environ, RINGTRAIN_TRANSFORMER_REFERENCE=path)
        done = subprocess.run([TESTS, "--gtest_filter=TransformerReference.*"], env=env, capture_output=True,
                              text=True, timeout=60)
        if done.returncode != 0 or not os.path.exists(path):
            fail(f"the reference test failed ({done.returncode}): {done.stdout[-2000:]}{done.stderr[-2000:]}")
        with h5py.File(path, "r") as f:
            params = {}
            f["params"].visititems(lambda name, d: params.update({name: d[()]}) if isinstance(d, h5py.Dataset) else None)
            grads = {}
            f["grads"].visititems(lambda name, d: grads.update({name: d[()]}) if isinstance(d, h5py.Dataset) else None)
            tokens = torch.tensor(f["tokens"][()]).long()
            labels = torch.tensor(f["labels"][()])
            logits_c = torch.tensor(f["logits"][()]).double()
            loss_c = float(f["loss"][0])

    torch.set_default_dtype(torch.float64)
    vocabulary, channels = params["embedding1/token"].shape
    context = params["embedding1/position"].shape[0]
    token = torch.nn.Embedding(vocabulary, channels)
    position = torch.nn.Embedding(context, channels)
    blocks = torch.nn.ModuleList([Block(channels, 2), Block(channels, 4)])
    final = torch.nn.LayerNorm(channels)
    # Every torch parameter by its ringtrain model-file name.
    named = {"embedding1/token": token.weight, "embedding1/position": position.weight,
             "layernorm1/weight": final.weight, "layernorm1/bias": final.bias}
    for i, block in enumerate(blocks):
        for name, p in block.named_parameters():
            part, kind = name.rsplit(".", 1)
            part = {"attention.qkv": "attention/qkv", "attention.proj": "attention/proj"}.get(part, part)
            sep = "_" if part.startswith("attention/") else "/"
            named[f"block{i + 1}/{part}{sep}{kind}"] = p
    if set(named) != set(params):
        fail(f"parameter names differ: torch {sorted(set(named) - set(params))}, "
             f"ringtrain {sorted(set(params) - set(named))}")
    with torch.no_grad():
        for name, p in named.items():
            p.copy_(torch.tensor(params[name]))

    t = tokens.shape[1]
    x = token(tokens) + position(torch.arange(t))
    for block in blocks:
        x = block(x)
    logits = final(x) @ token.weight.t()  # the head tied to the token table, as GPT-2's lm_head
    loss = F.cross_entropy(logits.reshape(-1, vocabulary), labels.reshape(-1))
    loss.backward()

    worst = (logits_c - logits.detach()).abs().max().item() / logits.detach().abs().max().item()
    if worst > TOLERANCE:
        fail(f"logits differ by {worst:.3g} of their largest")
    if abs(loss_c - loss.item()) > TOLERANCE * abs(loss.item()):
        fail(f"loss: ringtrain {loss_c}, torch {loss.item()}")
    checked = 2
    for name, p in named.items():
        want = p.grad
        got = torch.tensor(grads[name]).double()
        scale = max(want.abs().max().item(), 1e-12)
        diff = (got - want).abs().max().item()
        if diff > TOLERANCE * scale:
            fail(f"gradient of {name} differs by {diff:.3g} (largest element {scale:.3g})")
        checked += 1
    print(f"OK: logits, loss {loss.item():.6f} and {checked - 2} gradients agree with PyTorch to {TOLERANCE}")


main()
