#!/usr/bin/python3
"""peer.py — the PyTorch side of bench/gpt2 (needs torch + numpy).

  peer.py make DIR         random GPT-2 124M weights: DIR/hf (config.json +
                           model.safetensors) and DIR/gpt2_124M.bin (llm.c)
  peer.py gen DIR P N REPS greedy generation with a KV cache in fp32 on 2 threads,
                           same prompt rule as bench_gen.c; prints tok/s and ids

The model is tests/fixtures/gpt2/refgpt2.py, the reference the C code is
tested against.
"""
import os
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "fixtures", "gpt2"))
import refgpt2  # noqa: E402

CFG_124M = {"n_layer": 12, "n_head": 12, "n_embd": 768, "n_positions": 1024,
            "vocab_size": 50257, "layer_norm_epsilon": 1e-5}


def make(d):
    import json
    p = refgpt2.random_params(CFG_124M, seed=124)
    os.makedirs(os.path.join(d, "hf"), exist_ok=True)
    with open(os.path.join(d, "hf", "config.json"), "w") as f:
        json.dump(refgpt2.hf_config(CFG_124M), f, indent=2)
    refgpt2.write_safetensors(os.path.join(d, "hf", "model.safetensors"), p, {"format": "pt"})
    refgpt2.write_llmc(os.path.join(d, "gpt2_124M.bin"), CFG_124M, p)


def load(d):
    """The fp32 parameters back from the safetensors file (numpy memmap)."""
    import json
    path = os.path.join(d, "hf", "model.safetensors")
    raw = np.memmap(path, dtype=np.uint8, mode="r")
    n = int(np.frombuffer(raw[:8].tobytes(), "<u8")[0])
    header = json.loads(raw[8:8 + n].tobytes())
    p = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        b, e = v["data_offsets"]
        p[k] = np.frombuffer(raw[8 + n + b:8 + n + e], dtype="<f4").reshape(v["shape"])
    return p


def gen(d, P, N, reps):
    torch.set_num_threads(2)
    m = refgpt2.GPT2(CFG_124M, load(d), torch.float32)
    V = CFG_124M["vocab_size"]
    prompt = [(i * 7919 + 13) % V for i in range(P)]
    times, ids = [], []
    with torch.inference_mode():
        for _ in range(reps):
            t = time.perf_counter()
            lg, past = m.logits(torch.tensor(prompt))
            ids = [int(torch.argmax(lg[-1]))]
            for _ in range(N - 1):
                lg, past = m.logits(torch.tensor(ids[-1:]), past)
                ids.append(int(torch.argmax(lg[-1])))
            times.append(time.perf_counter() - t)
    times.sort()
    tt = times[len(times) // 2]
    print("total_s %.4f" % tt)
    print("tok_per_s %.2f" % (N / tt))
    print("ids " + " ".join(map(str, ids)))


if __name__ == "__main__":
    if sys.argv[1] == "make":
        make(sys.argv[2])
    elif sys.argv[1] == "gen":
        gen(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
