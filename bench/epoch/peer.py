#!/usr/bin/python3
"""peer.py — the PyTorch side of bench/epoch: one CoLA training epoch of a
GPT-2 124M sequence classifier with LoRA r=4 (alpha 8, dropout 0.1) on
attn.c_attn, attn.c_proj, mlp.c_fc and mlp.c_proj, base frozen, a 2-class
score head on the last real token, cross-entropy, global-norm clipping to 1,
AdamW (lr 5e-4, weight decay 0.01) with 6% linear warmup then linear decay:
lora-cola.pipe's train settings, fp32, torch.set_num_threads(2).

  peer.py DIR IDS BATCHES FIXED_T STEPS

The model is bench/lora/peer.py's (refgpt2's batched reference forward,
with PEFT's LoRA arithmetic; LoRA dropout as PEFT applies it, on the
adapter's input only) over bench/gpt2/peer.py's random 124M weights
(DIR/hf).  The batches are lmpipe's own (dump_batches.c: same rows, same
order); each is right-padded to its longest row (FIXED_T 0) or padded/cut
to FIXED_T, with the attention mask, as HF GPT2ForSequenceClassification
gets it.  STEPS > 0 runs only the first STEPS batches (the schedule then
spans STEPS steps, as lmpipe's max_steps).
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

R, ALPHA, DROPOUT = 4, 8.0, 0.1
KINDS = ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")
LR, WD, WARMUP, PAD = 5e-4, 0.01, 0.06, 50256


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
        xd = torch.nn.functional.dropout(x, DROPOUT, training=True)
        return x @ self.W + ((xd @ self.A.T) @ self.B.T) * self.scaling


def main(d, ids_path, batches_path, fixed_T, steps):
    torch.set_num_threads(2)
    torch.manual_seed(1)
    cfg = gpt2_peer.CFG_124M
    C = cfg["n_embd"]
    rows = []
    for line in open(ids_path):
        v = [int(x) for x in line.split()]
        rows.append((v[0], v[2:2 + v[1]]))
    batches = [[int(x) for x in line.split()] for line in open(batches_path)]
    if steps > 0:
        batches = batches[:steps]
    t_setup = time.perf_counter()
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
    opt = torch.optim.AdamW(params, lr=LR, weight_decay=WD)
    total = len(batches)
    warm = int(WARMUP * total)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warm if s < warm else max(0.0, (total - s) / max(1, total - warm)))
    padded = real = 0
    loss_sum = 0.0
    t0 = time.perf_counter()
    for bi, idx in enumerate(batches):
        lens = [min(len(rows[i][1]), fixed_T) if fixed_T else len(rows[i][1]) for i in idx]
        T = fixed_T or max(lens)
        ids = torch.full((len(idx), T), PAD, dtype=torch.long)
        mask = torch.zeros(len(idx), T, dtype=torch.long)
        for j, i in enumerate(idx):
            ids[j, :lens[j]] = torch.tensor(rows[i][1][:lens[j]])
            mask[j, :lens[j]] = 1
        labels = torch.tensor([rows[i][0] for i in idx])
        padded += len(idx) * T
        real += sum(lens)
        opt.zero_grad()
        hid = hidden(p, ids, mask, cfg)                          # [B, T, C]
        last = hid[torch.arange(len(idx)), torch.tensor(lens) - 1]
        loss = torch.nn.functional.cross_entropy(last @ score.T, labels)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        loss_sum += loss.item() * len(idx)
        if bi % 20 == 0:
            print("step %d: T %d loss %.5f %.1f s" % (bi, T, loss.item(), time.perf_counter() - t0),
                  file=sys.stderr)
    s = time.perf_counter() - t0
    print("train_seconds %.3f" % s)
    print("setup_seconds %.3f" % (t0 - t_setup))
    print("steps %d" % total)
    print("real_tokens %d" % real)
    print("padded_tokens %d" % padded)
    print("train_loss %.6f" % (loss_sum / sum(len(b) for b in batches)))
    print("peak_rss_mib %.1f" % (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
