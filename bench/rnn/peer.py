#!/usr/bin/python3
"""peer.py — bench/rnn's PyTorch peer: one epoch of training a GRU
classifier on CoLA's training split, as lmpipe's rnn + train stages do it.

  embedding 50257 x E -> nn.GRU(E, H) on pack_padded_sequence (each batch
  padded to its longest row) -> h_n -> Linear(H, 2); cross-entropy; Adam;
  no clipping; batches of B in file order.

Usage: peer.py IDS_FILE E H B   (IDS_FILE from dump_ids: "label n ids...")
Prints s_per_epoch, tokens, and the mean training loss.
"""
import sys
import time

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

torch.set_num_threads(2)
V, PAD = 50257, 50256


class GRUClassifier(nn.Module):
    def __init__(self, E, H):
        super().__init__()
        self.embedding = nn.Embedding(V, E)
        self.rnn = nn.GRU(E, H, batch_first=True)
        self.head = nn.Linear(H, 2)

    def forward(self, ids, lens):
        packed = pack_padded_sequence(self.embedding(ids), lens, batch_first=True, enforce_sorted=False)
        _, h = self.rnn(packed)
        return self.head(h[-1])


def main():
    path, E, H, B = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    rows = []
    with open(path) as f:
        for line in f:
            v = [int(x) for x in line.split()]
            rows.append((v[0], v[2:2 + v[1]]))
    torch.manual_seed(1)
    model = GRUClassifier(E, H)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    total, tokens = 0.0, 0
    t0 = time.perf_counter()
    for s in range(0, len(rows), B):
        batch = rows[s:s + B]
        T = max(len(ids) for _, ids in batch)
        ids = torch.full((len(batch), T), PAD, dtype=torch.long)
        for i, (_, r) in enumerate(batch):
            ids[i, :len(r)] = torch.tensor(r)
        lens = torch.tensor([len(r) for _, r in batch])
        labels = torch.tensor([y for y, _ in batch])
        opt.zero_grad()
        loss = loss_fn(model(ids, lens), labels)
        loss.backward()
        opt.step()
        total += loss.item() * len(batch)
        tokens += int(lens.sum())
    t = time.perf_counter() - t0
    print("s_per_epoch %.4f" % t)
    print("tokens %d" % tokens)
    print("train_loss %.4f" % (total / len(rows)))


if __name__ == "__main__":
    main()
