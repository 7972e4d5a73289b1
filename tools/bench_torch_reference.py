"""The PyTorch reference of `benchmark.py step`: MiSLAS's stage-one step written plainly.

ResNet-32 (LDAM's option-A shortcuts), mixup cross-entropy, SGD with momentum
and coupled weight decay, channels_last; `torch.compile` with
`--torch_compile`, bf16 autocast with `--mixed_precision=mixed_bfloat16`.
"""

import json
import sys

from bench_common import best_of, peak_rss_mb


def torch_reference_worker(args):
    """The same stage-one step written plainly in PyTorch (ResNet-32, mixup CE, SGD)."""
    import numpy as np
    import torch
    from torch import nn
    from torch.nn import functional as F

    torch.manual_seed(0)

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.b1 = nn.BatchNorm2d(cout)
            self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.b2 = nn.BatchNorm2d(cout)
            self.pad = cout - cin if stride != 1 or cin != cout else 0
            self.stride = stride

        def forward(self, x):
            out = F.relu(self.b1(self.c1(x)))
            out = self.b2(self.c2(out))
            short = x
            if self.pad:  # LDAM's option A: subsample and zero-pad channels
                short = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad // 2, self.pad // 2))
            return F.relu(out + short)

    class ResNet32(nn.Module):
        def __init__(self, classes):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
            layers, cin = [], 16
            for cout, stride in ((16, 1), (32, 2), (64, 2)):
                for i in range(5):
                    layers.append(Block(cin, cout, stride if i == 0 else 1))
                    cin = cout
            self.blocks = nn.Sequential(*layers)
            self.fc = nn.Linear(64, classes)

        def forward(self, x):
            return self.fc(self.blocks(self.stem(x)).mean((2, 3)))

    model = ResNet32(args.classes).to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), 0.1, momentum=0.9, weight_decay=5e-4)
    step_model = torch.compile(model) if args.torch_compile else model
    rng = np.random.default_rng(0)
    n = args.batch * args.steps
    x = torch.from_numpy(rng.normal(size=(n, 3, args.image_size, args.image_size)).astype("float32"))
    x = x.contiguous(memory_format=torch.channels_last)
    y = torch.from_numpy(rng.integers(0, args.classes, size=n))

    # The bf16 counterpart of Keras' `mixed_bfloat16`: float32 weights,
    # the forward pass autocast to bfloat16.
    bf16 = args.mixed_precision == "mixed_bfloat16"

    def step(xb, yb):
        lam = float(np.random.beta(1.0, 1.0))
        index = torch.randperm(xb.shape[0])
        mixed = lam * xb + (1 - lam) * xb[index]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = step_model(mixed)
        logits = logits.float()
        loss = lam * F.cross_entropy(logits, yb) + (1 - lam) * F.cross_entropy(logits, yb[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    model.train()
    for i in range(max(2, args.steps // 5)):
        step(x[i * args.batch:(i + 1) * args.batch], y[i * args.batch:(i + 1) * args.batch])
    def epoch():
        for i in range(args.steps):
            step(x[i * args.batch:(i + 1) * args.batch], y[i * args.batch:(i + 1) * args.batch])

    seconds, cores = best_of(args.repeats, epoch)
    name = "torch_reference" + ("_compiled" if args.torch_compile else "") + ("_bf16" if bf16 else "")
    print(f"  {'pytorch':10s} {name:12s} {n / seconds:9.1f} img/s  ({cores:.2f} cores busy)",
          file=sys.stderr, flush=True)
    print(json.dumps({name: {"img_per_s": n / seconds, "step_ms": 1000 * seconds / args.steps,
                             "cores_busy": cores}, "peak_rss_mb": peak_rss_mb()}))
