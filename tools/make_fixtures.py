#!/usr/bin/python3
"""Writes the PyTorch reference fixtures in tests/fixtures/ (committed).

Each fixture runs one model of the source (docs/experiments.md, section 3) in
PyTorch on a batch of the bundled digits and records, as text, everything
tandem must reproduce: the input, the initial parameters and running
statistics, the training-mode output and loss, every parameter gradient, the
running statistics after the step, the parameters after `steps` SGD steps,
and an evaluation-mode output afterwards. tests/test_pytorch.c reads them.

Run with Debian's python3-torch:  /usr/bin/python3 tools/make_fixtures.py
(blocks2.txt, added later, was written with PyTorch 2.15 from PyPI, the
virtual environment bench/run.sh makes; the others with 1.13.)
"""
import gzip
import os
import sys

import torch
import torch.nn as nn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEST_ROWS = 180  # the source's split: the first 180 rows are the test set


def load_digits():
    with gzip.open(os.path.join(ROOT, "data", "digits.csv.gz"), "rt") as f:
        rows = [[int(v) for v in line.split(",")] for line in f if line.strip()]
    pixels = torch.tensor([r[:64] for r in rows], dtype=torch.float32)
    labels = torch.tensor([r[64] for r in rows], dtype=torch.int64)
    return pixels.reshape(-1, 1, 8, 8), labels


class Block(nn.Module):
    """The source's residual block: y = relu(x + f(x))."""

    def __init__(self, c):
        super().__init__()
        self.f = nn.Sequential(
            nn.Conv2d(c, c, 3, stride=1, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(),
            nn.Conv2d(c, c, 3, stride=1, padding=1, bias=False), nn.BatchNorm2d(c))

    def forward(self, x):
        return torch.relu(x + self.f(x))


def resnet(c):
    return nn.Sequential(
        nn.Conv2d(1, c, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(),
        nn.MaxPool2d(2), Block(c), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, 10))


def block_input(pixels, c):
    """Block(C) needs C channels: channel k of sample n is digit (n + k) / 16,
    every other pixel (4x4, small like the ResNet's 2x2 and still padded)."""
    n = pixels.shape[0]
    return torch.stack([pixels[(torch.arange(n) + k) % n, 0, ::2, ::2] / 16.0
                        for k in range(c)], dim=1)


def flat(tensors):
    return torch.cat([t.detach().reshape(-1) for t in tensors])


def statistics(model):
    return flat([t for m in model.modules() if isinstance(m, nn.BatchNorm2d)
                 for t in (m.running_mean, m.running_var)])


def write_tensor(out, name, values):
    values = values.detach().reshape(-1)
    out.write(f"tensor {name} {values.numel()}\n")
    for start in range(0, values.numel(), 8):
        out.write(" ".join(f"{float(v):.9g}" for v in values[start:start + 8]) + "\n")


def make(name, kind, channels, batch, steps, momentum, weight_decay, seed):
    torch.manual_seed(seed)
    pixels, labels = load_digits()
    x = pixels[TEST_ROWS:TEST_ROWS + batch]
    y = labels[TEST_ROWS:TEST_ROWS + batch]
    if kind == "resnet":
        model = resnet(channels)
    else:  # one block, or two in a row ("blocks")
        model = Block(channels) if kind == "block" else nn.Sequential(Block(channels),
                                                                      Block(channels))
        x = block_input(x, channels)
    # A fixed upstream gradient for the Block, whose output is not logits.
    upstream = torch.sin(torch.arange(x.numel(), dtype=torch.float32) * 0.37).reshape(x.shape)
    params0, stats0 = flat(model.parameters()), statistics(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=momentum,
                          weight_decay=weight_decay)
    model.train()
    for step in range(steps):
        opt.zero_grad()
        out = model(x)
        loss = nn.functional.cross_entropy(out, y) if kind == "resnet" else (out * upstream).sum()
        loss.backward()
        if step == 0:
            first = (out.detach().clone(), loss.detach().clone(),
                     flat(p.grad for p in model.parameters()), statistics(model))
        opt.step()
    model.eval()
    with torch.no_grad():
        eval_out = model(x)
    path = os.path.join(ROOT, "tests", "fixtures", f"{name}.txt")
    with open(path, "w") as out:
        out.write(f"# written by tools/make_fixtures.py with PyTorch {torch.__version__}\n")
        out.write(f"model {kind} {channels}\n")
        out.write(f"input {x.shape[0]} {x.shape[1]} {x.shape[2]} {x.shape[3]}\n")
        out.write(f"sgd {steps} 0.1 {momentum} {weight_decay}\n")
        write_tensor(out, "input", x)
        write_tensor(out, "labels", y.float())
        if kind != "resnet":
            write_tensor(out, "upstream", upstream)
        write_tensor(out, "params_initial", params0)
        write_tensor(out, "stats_initial", stats0)
        write_tensor(out, "output", first[0])
        write_tensor(out, "loss", first[1])
        write_tensor(out, "grads", first[2])
        write_tensor(out, "stats_after_step", first[3])
        write_tensor(out, "params_after", flat(model.parameters()))
        write_tensor(out, "stats_after", statistics(model))
        write_tensor(out, "eval_output", eval_out)
    print(f"wrote {os.path.relpath(path, ROOT)}")


def main():
    torch.set_num_threads(1)
    for c in (1, 2, 4):
        make(f"block{c}", "block", c, 16, 1, 0.0, 0.0, seed=c)
        make(f"resnet{c}", "resnet", c, 16, 1, 0.0, 0.0, seed=10 + c)
    make("resnet4_batch128", "resnet", 4, 128, 1, 0.0, 0.0, seed=4)
    make("resnet2_momentum", "resnet", 2, 16, 3, 0.9, 5e-4, seed=7)
    make("blocks2", "blocks", 2, 16, 2, 0.9, 0.0, seed=21)
    return 0


if __name__ == "__main__":
    sys.exit(main())
