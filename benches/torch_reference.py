"""The Lens Detector in PyTorch, for a side-by-side speed check with `lens-inspect bench model`.

Same architecture as src/model/net.rs: conv 16,16,32,32,64,64,128,128 (3x3, padding 1) with
batch norm and ELU, 2x2 max-pools after the 2nd, 4th and 6th convolutions; the 12 x 12 map's
positions as 144 tokens with sinusoidal positional encoding; 2 transformer encoder layers
(d_model 128, 4 heads, feed-forward 256, GELU, post-norm, dropout 0.1); mean pool; MLP 128-64-1.
Measures cutouts/s for inference (batch 64, eval mode, no grad) and training steps (batch 32,
BCE with logits, Adam), 2 threads, after one warm-up, on random inputs.
Usage: python benches/torch_reference.py [--arch lens-detector|cnn] [--repeats 5]
(PyTorch from PyPI, CPU; run it outside the repo's tests: nothing here is needed by them.)
"""
import argparse
import json
import math
import time

import torch
import torch.nn as nn


class Backbone(nn.Module):
    def __init__(self):
        super().__init__()
        layers, c_in = [], 4
        for k, c in enumerate([16, 16, 32, 32, 64, 64, 128, 128]):
            layers += [nn.Conv2d(c_in, c, 3, padding=1), nn.BatchNorm2d(c), nn.ELU()]
            if k % 2 == 1 and k < 7:
                layers.append(nn.MaxPool2d(2))
            c_in = c
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


def positional(n, d):
    pos = torch.arange(n).unsqueeze(1)
    div = torch.exp(torch.arange(0, d, 2) * (-math.log(10000.0) / d))
    pe = torch.zeros(n, d)
    pe[:, 0::2] = torch.sin(pos * div)
    pe[:, 1::2] = torch.cos(pos * div)
    return pe


class LensDetector(nn.Module):
    def __init__(self, attention=True):
        super().__init__()
        self.backbone = Backbone()
        self.attention = attention
        if attention:
            layer = nn.TransformerEncoderLayer(128, 4, 256, dropout=0.1, activation="gelu", batch_first=True)
            self.encoder = nn.TransformerEncoder(layer, 2)
            self.register_buffer("pe", positional(1024, 128))
        self.mlp = nn.Sequential(nn.Linear(128, 64), nn.ELU(), nn.Dropout(0.1), nn.Linear(64, 1))

    def forward(self, x):
        f = self.backbone(x)
        b, c, h, w = f.shape
        t = f.reshape(b, c, h * w).transpose(1, 2)
        if self.attention:
            t = self.encoder(t + self.pe[: h * w])
        return self.mlp(t.mean(1)).squeeze(1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", default="lens-detector", choices=["lens-detector", "cnn"])
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    torch.set_num_threads(2)
    torch.manual_seed(1)
    net = LensDetector(attention=a.arch == "lens-detector")
    net.eval()
    x = torch.randn(64, 4, 101, 101)
    with torch.no_grad():
        net(x)
        t = time.perf_counter()
        for _ in range(a.repeats):
            net(x)
        inference = 64 * a.repeats / (time.perf_counter() - t)
    net.train()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x = torch.randn(32, 4, 101, 101)
    y = torch.randint(0, 2, (32,)).float()
    loss_fn = nn.BCEWithLogitsLoss()

    def step():
        opt.zero_grad()
        loss_fn(net(x), y).backward()
        opt.step()

    step()
    t = time.perf_counter()
    for _ in range(a.repeats):
        step()
    train = 32 * a.repeats / (time.perf_counter() - t)
    print(json.dumps({"arch": a.arch, "threads": 2, "inference_batch": 64, "inference_cutouts_per_s": inference,
                      "train_batch": 32, "train_cutouts_per_s": train, "torch": torch.__version__}))


if __name__ == "__main__":
    main()
