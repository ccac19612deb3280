#!/usr/bin/python3
"""torch_peer.py — the peer for sgemm_bench.c: torch.mm (float32, CPU) at the
same shapes, same method (repeat >= 0.2 s, median of `reps`), for
`threads` threads.  Usage: torch_peer.py THREADS [REPS]"""
import statistics
import sys
import time

import torch

SHAPES = [  # (what, M, K, N, transpose A, transpose B) as in sgemm_bench.c
    ("qkv fwd      x@W", 256, 768, 2304, 0, 0),
    ("fc fwd       x@W", 256, 768, 3072, 0, 0),
    ("fcproj fwd   x@W", 256, 3072, 768, 0, 0),
    ("fc dinp      dout@W^T", 256, 3072, 768, 0, 1),
    ("fc dweight   x^T@dout", 768, 256, 3072, 1, 0),
    ("lmhead chunk x@wte^T", 64, 768, 50257, 0, 1),
    ("square", 1024, 1024, 1024, 0, 0),
]

threads = int(sys.argv[1])
reps = int(sys.argv[2]) if len(sys.argv) > 2 else 5
torch.set_num_threads(threads)
torch.manual_seed(0)
print("%-26s %5s %5s %6s %3s %7s %8s %8s %8s" % ("torch.mm", "M", "K", "N", "thr", "GFLOP",
                                                  "median", "min", "max"))
peak = 0.0
for what, M, K, N, ta, tb in SHAPES:
    a = torch.rand(K, M) .t() if ta else torch.rand(M, K)
    b = torch.rand(N, K).t() if tb else torch.rand(K, N)
    c = torch.empty(M, N)
    flop = 2.0 * M * K * N
    torch.mm(a, b, out=c)
    g = []
    for _ in range(reps):
        it, t0 = 0, time.perf_counter()
        while True:
            torch.mm(a, b, out=c)
            it += 1
            t = time.perf_counter() - t0
            if t >= 0.2:
                break
        g.append(flop * it / t / 1e9)
    med = statistics.median(g)
    peak = max(peak, med)
    print("%-26s %5d %5d %6d %3d %7.3f %8.1f %8.1f %8.1f" % (what, M, K, N, threads, flop / 1e9,
                                                             med, min(g), max(g)))
print("torch peak (best median) with %d thread(s): %.1f GFLOP/s" % (threads, peak))
