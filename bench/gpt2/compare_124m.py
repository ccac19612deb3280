#!/usr/bin/python3
"""compare_124m.py — the exactness checks of tests/check_gpt2.c repeated at full
GPT-2 124M shapes (random weights, made by peer.py): lmpipe's logits from the
HF folder and from the llm.c .bin against the float64 PyTorch reference
(refgpt2.py), greedy continuations, and strided perplexity.  Logits must be
within 1e-4 of float64, or within twice the error of the same model run in
torch float32 when fp32 arithmetic cannot reach 1e-4 (logits of magnitude ~75
over 12 layers).

Usage: bench/gpt2/compare_124m.py [WORKDIR]   (from a built tree; needs torch)
"""
import os
import subprocess
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
import peer  # noqa: E402
import refgpt2  # noqa: E402  (peer put its folder on the path)


def sh(*args):
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


def main():
    work = sys.argv[1] if len(sys.argv) > 1 else "/tmp/lmp-bench-gpt2"
    os.makedirs(work, exist_ok=True)
    exe = os.path.join(work, "bench_gen")
    sh("cc", "-O2", "-fopenmp", "-I" + TOP + "/core", "-I" + TOP, HERE + "/bench_gen.c", "-o", exe,
       "-L" + TOP + "/core/.libs", "-llmpipe", "-lopenblas", "-lm", "-Wl,-rpath," + TOP + "/core/.libs")
    if not os.path.exists(os.path.join(work, "hf", "model.safetensors")):
        print("making random 124M weights in", work)
        peer.make(work)
    torch.set_num_threads(2)
    cfg = peer.CFG_124M
    V = cfg["vocab_size"]
    params = peer.load(work)
    ref = refgpt2.GPT2(cfg, params, torch.float64)
    ref32 = refgpt2.GPT2(cfg, params, torch.float32)  # what fp32 itself costs
    rng = np.random.default_rng(7)
    ok = True

    with torch.inference_mode():
        # logits, both formats
        for T in (17, 256):
            ids = rng.integers(0, V, T).tolist()
            idf = os.path.join(work, "ids.txt")
            with open(idf, "w") as f:
                f.write(" ".join(map(str, ids)))
            want, _ = ref.logits(torch.tensor(ids))
            want = want.numpy()
            t32, _ = ref32.logits(torch.tensor(ids))
            err32 = float(np.abs(t32.numpy() - want).max())
            tol = max(1e-4, 2 * err32)  # 1e-4, unless fp32 arithmetic itself cannot do it
            print("logits T=%-4d %-14s max|dlogit| %.2e" % (T, "torch fp32", err32))
            for model in ("hf", "gpt2_124M.bin"):
                out = os.path.join(work, "logits.f32")
                sh(exe, "logits", os.path.join(work, model), idf, out)
                got = np.fromfile(out, dtype=np.float32).reshape(T, V)
                err = float(np.abs(got - want).max())
                print("logits T=%-4d %-14s max|dlogit| %.2e (max|logit| %.1f)%s" % (
                    T, model, err, float(np.abs(want).max()), "" if err <= tol else "  > %.1e !" % tol))
                ok &= err <= tol

        # greedy continuation of bench_gen's prompt
        P, N = 16, 32
        prompt = [(i * 7919 + 13) % V for i in range(P)]
        lg, past = ref.logits(torch.tensor(prompt))
        want_ids = [int(torch.argmax(lg[-1]))]
        for _ in range(N - 1):
            lg, past = ref.logits(torch.tensor(want_ids[-1:]), past)
            want_ids.append(int(torch.argmax(lg[-1])))
        for model in ("hf", "gpt2_124M.bin"):
            out = sh(exe, "gen", os.path.join(work, model), str(P), str(N), "1")
            got_ids = [int(x) for x in out.split("ids", 1)[1].split()]
            same = got_ids == want_ids
            print("greedy %d tokens %-14s %s" % (N, model, "identical" if same else "DIFFERENT"))
            ok &= same

        # strided perplexity: 1200 tokens, windows of 1024 every 512
        ids = rng.integers(0, V, 1200).tolist()
        idf = os.path.join(work, "ppl_ids.txt")
        with open(idf, "w") as f:
            f.write(" ".join(map(str, ids)))
        want_nll, count = ref.strided_nll(ids, 512)
        out = sh(exe, "ppl", os.path.join(work, "hf"), idf, "512")
        got = dict(kv.split("=") for kv in out.split())
        rel = abs(float(got["nll"]) - want_nll) / want_nll
        print("perplexity nll %.6f vs reference %.6f (rel %.1e), tokens %s vs %d" % (
            float(got["nll"]), want_nll, rel, got["tokens"], count))
        ok &= rel <= 1e-5 and int(got["tokens"]) == count
    print("ALL OK" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
