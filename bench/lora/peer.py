#!/usr/bin/python3
"""peer.py — the PyTorch side of bench/lora: one LoRA fine-tuning step of a
GPT-2 sequence classifier at 124M shapes, fp32, torch.set_num_threads(2).

  peer.py step DIR B T REPS

The model is the batched reference forward of
tests/fixtures/gpt2/make_grad_fixtures.py (refgpt2.py's GPT-2), unchanged:
LoRA is hand-written by handing it, for each adapted weight, an object whose
`x @ W` computes x W + scaling * (x A^T) B^T (PEFT's arithmetic), so autograd
differentiates the low-rank path and never forms a full weight gradient.
The base weights are frozen (requires_grad False); trained: every A, B and
the score head, with AdamW after clipping the global norm to 1 — the step of
bench_lora.c, on the same batch.  Weights: bench/gpt2/peer.py's random 124M
checkpoint (DIR/hf).
"""
import math
import os
import resource
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "gpt2"))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "fixtures", "gpt2"))
import peer as gpt2_peer  # noqa: E402  (bench/gpt2/peer.py: CFG_124M, load)
from make_grad_fixtures import hidden  # noqa: E402

R, ALPHA = 4, 8.0
KINDS = ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")


class LoraWeight:
    """Stands in for a Conv1D weight W [in, out] in `x @ W`."""

    def __init__(self, W, gen):
        fin, fout = W.shape
        self.W = W
        bound = 1 / math.sqrt(fin)  # kaiming_uniform_(a=sqrt(5)) on A [r, in]
        self.A = ((torch.rand(R, fin, generator=gen) * 2 - 1) * bound).requires_grad_()
        self.B = torch.zeros(fout, R, requires_grad=True)
        self.scaling = ALPHA / R

    def __rmatmul__(self, x):
        return x @ self.W + ((x @ self.A.T) @ self.B.T) * self.scaling


def step(d, B, T, reps):
    torch.set_num_threads(2)
    cfg = gpt2_peer.CFG_124M
    V, C = cfg["vocab_size"], cfg["n_embd"]
    p = {k: torch.from_numpy(v) for k, v in gpt2_peer.load(d).items()}  # frozen, mapped
    gen = torch.Generator().manual_seed(2)
    lora = []
    for l in range(cfg["n_layer"]):
        for kind in KINDS:
            key = "h.%d.%s.weight" % (l, kind)
            p[key] = LoraWeight(p[key], gen)
            lora += [p[key].A, p[key].B]
    score = (torch.randn(2, C, generator=gen) * 0.02).requires_grad_()
    params = lora + [score]
    opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.0)
    ids = torch.tensor([(i * 7919 + 13) % V for i in range(B * T)]).view(B, T)
    labels = torch.tensor([b % 2 for b in range(B)])
    times = []
    for r in range(reps + 1):
        t = time.perf_counter()
        opt.zero_grad()
        hid = hidden(p, ids, None, cfg)                # [B, T, C]; every row full length
        logits = hid[:, -1] @ score.T
        loss = torch.nn.functional.cross_entropy(logits, labels)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if r > 0:
            times.append(time.perf_counter() - t)
        print("step %d: loss %.5f" % (r, loss.item()), file=sys.stderr)
    times.sort()
    s = times[len(times) // 2]
    print("s_per_step %.4f" % s)
    print("tok_per_s %.1f" % (B * T / s))
    print("trainable %d" % sum(t.numel() for t in params))
    print("peak_rss_mib %.1f" % (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))
    print("last_loss %.6f" % loss.item())


if __name__ == "__main__":
    if sys.argv[1] == "step":
        step(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
