#!/usr/bin/python3
"""torch_train.py — the PyTorch peer of train_bench.c: one full training step
of a GPT-2 124M-shape model (float32, all weights trainable, tied LM head,
tanh GELU, pre-LN blocks), AdamW with global-norm clipping, on random ids.
Prints "torch ms_per_step(median) min max".

usage: torch_train.py [reps] [B] [T] [threads]   (default 3 4 64 2)
"""
import math
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, C, NH):
        super().__init__()
        self.NH = NH
        self.ln_1, self.ln_2 = nn.LayerNorm(C), nn.LayerNorm(C)
        self.c_attn, self.attn_proj = nn.Linear(C, 3 * C), nn.Linear(C, C)
        self.c_fc, self.mlp_proj = nn.Linear(C, 4 * C), nn.Linear(4 * C, C)

    def forward(self, x, causal):
        B, T, C = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(C, dim=2)
        q, k, v = (z.view(B, T, self.NH, C // self.NH).transpose(1, 2) for z in (q, k, v))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(C // self.NH)
        att = att.masked_fill(~causal[:T, :T], float("-inf")).softmax(-1)
        x = x + self.attn_proj((att @ v).transpose(1, 2).reshape(B, T, C))
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


class GPT2(nn.Module):
    def __init__(self, L=12, NH=12, C=768, n_ctx=1024, V=50257):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(V, C), nn.Embedding(n_ctx, C)
        self.h = nn.ModuleList(Block(C, NH) for _ in range(L))
        self.ln_f = nn.LayerNorm(C)
        self.register_buffer("causal", torch.tril(torch.ones(n_ctx, n_ctx, dtype=torch.bool)))

    def forward(self, ids, targets):
        x = self.wte(ids) + self.wpe(torch.arange(ids.shape[1]))
        for b in self.h:
            x = b(x, self.causal)
        logits = self.ln_f(x) @ self.wte.weight.T
        return F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.view(-1))


def main():
    reps, B, T, threads = (int(a) for a in (sys.argv[1:] + ["3", "4", "64", "2"][len(sys.argv) - 1:]))
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = GPT2()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, betas=(0.9, 0.95), weight_decay=0.1)
    ids = torch.randint(0, 50257, (B, T))
    tgt = torch.randint(0, 50257, (B, T))
    ms = []
    for s in range(reps + 1):  # the first step warms up
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=False)
        loss = model(ids, tgt)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if s:
            ms.append((time.perf_counter() - t0) * 1e3)
    ms.sort()
    print("torch %.1f %.1f %.1f loss=%.4f" % (ms[len(ms) // 2], ms[0], ms[-1], loss.item()))


if __name__ == "__main__":
    main()
