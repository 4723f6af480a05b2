"""The same value-and-grad in PyTorch on the CPU, for the sizes of bench/engine.ts, which runs
it (when python3 can import torch: Debian's python3-torch) as the alternative a Python user
would compute with. Same loss_fn: tanh hidden layers, sigmoid output, JAX's clipped bce,
mean; float32; gradients read back as the host arrays a service would answer with.
Prints one JSON line: the torch version, its thread count, the BLAS it runs on (Debian's
torch uses the system's libblas.so.3: reference BLAS unless libopenblas0 is installed),
and ms per call (median of warm calls) per size.
    python3 bench/torch_reference.py [S,M,L]
"""
import json
import os
import sys
import time

import torch

SIZES = {"S": ([2, 4, 1], 4, 300), "M": ([64, 128, 128, 1], 1024, 30), "L": ([784, 512, 512, 1], 4096, 5)}


def loss_and_grads(params, x, y):
    """JAX's loss_fn in PyTorch: params are (W, b) pairs that require grad; also used by torch_server.py."""
    h = x
    for W, b in params[:-1]:
        h = torch.tanh(h @ W + b)
    W, b = params[-1]
    p = torch.sigmoid(h @ W + b).clamp(1e-8, 1 - 1e-8)
    loss = -(y * torch.log(p) + (1 - y) * torch.log(1 - p)).mean()
    return loss, torch.autograd.grad(loss, [t for pair in params for t in pair])


def value_and_grad(params, x, y):
    loss, grads = loss_and_grads(params, x, y)
    return loss.item(), [g.numpy() for g in grads]


def main():
    torch.manual_seed(1)
    results = {}
    for name in sys.argv[1].split(",") if len(sys.argv) > 1 else SIZES:
        widths, batch, calls = SIZES[name]
        params = [
            ((torch.randn(i, o) / i**0.5).requires_grad_(), torch.zeros(o).requires_grad_())
            for i, o in zip(widths[:-1], widths[1:])
        ]
        x = torch.randn(batch, widths[0])
        y = torch.randint(0, 2, (batch, 1)).float()
        value_and_grad(params, x, y)  # warm-up
        ms = []
        for _ in range(calls):
            t0 = time.perf_counter()
            value_and_grad(params, x, y)
            ms.append((time.perf_counter() - t0) * 1e3)
        results[name] = sorted(ms)[len(ms) // 2]
    blas = os.path.realpath("/usr/lib/x86_64-linux-gnu/libblas.so.3")
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "blas": blas, "ms": results}))


if __name__ == "__main__":
    main()
