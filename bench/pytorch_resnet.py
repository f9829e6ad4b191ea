#!/usr/bin/python3
"""The source's protocol in PyTorch, for timing against tandem: ResNet(C) on
the bundled digits, SGD batch 128, lr 0.1, batches in data order, and after
every epoch an evaluation-mode pass over the training and test sets (loss and
error). Prints one line per C: `pytorch C ms_per_epoch final_train_err
final_test_err`.

Usage: python bench/pytorch_resnet.py EPOCHS THREADS C [C ...]   (bench/run.sh runs it)
TANDEM_TORCH_DEVICE=cuda runs it on the GPU (tools/gpu-check.sh): the data
and model live there, and every evaluation's .item() waits for the GPU.
"""
import gzip
import os
import sys
import time

import torch
import torch.nn as nn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_digits():
    with gzip.open(os.path.join(ROOT, "data", "digits.csv.gz"), "rt") as f:
        rows = [[int(v) for v in line.split(",")] for line in f if line.strip()]
    x = torch.tensor([r[:64] for r in rows], dtype=torch.float32).reshape(-1, 1, 8, 8)
    y = torch.tensor([r[64] for r in rows], dtype=torch.int64)
    device = os.environ.get("TANDEM_TORCH_DEVICE", "cpu")
    return tuple(t.to(device) for t in (x[180:], y[180:], x[:180], y[:180]))


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.f = nn.Sequential(
            nn.Conv2d(c, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU(),
            nn.Conv2d(c, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c))

    def forward(self, x):
        return torch.relu(x + self.f(x))


def resnet(c):
    return nn.Sequential(nn.Conv2d(1, c, 3, 2, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU(),
                         nn.MaxPool2d(2), Block(c), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(c, 10))


def evaluate(model, x, y):
    with torch.no_grad():
        out = model(x)
        return (nn.functional.cross_entropy(out, y).item(),
                (out.argmax(1) != y).float().mean().item())


def run(c, epochs, data):
    xtr, ytr, xte, yte = data
    torch.manual_seed(1)
    model = resnet(c).to(xtr.device)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    start = time.perf_counter()
    for _ in range(epochs):
        model.train()
        for i in range(0, len(xtr), 128):
            opt.zero_grad()
            nn.functional.cross_entropy(model(xtr[i:i + 128]), ytr[i:i + 128]).backward()
            opt.step()
        model.eval()
        train = evaluate(model, xtr, ytr)
        test = evaluate(model, xte, yte)
    seconds = time.perf_counter() - start
    return 1e3 * seconds / epochs, train[1], test[1]


def main():
    epochs, threads = int(sys.argv[1]), int(sys.argv[2])
    torch.set_num_threads(threads)
    data = load_digits()
    for c in (int(v) for v in sys.argv[3:]):
        run(c, 1, data)  # warm-up, as bench_train does (CUDA's and cuDNN's start-up)
        ms, train_err, test_err = run(c, epochs, data)
        print(f"pytorch {c} {ms:.3f} {train_err:.4f} {test_err:.4f}", flush=True)


if __name__ == "__main__":
    main()
