"""The same value-and-grad in JAX, jit-compiled, for the sizes of bench/engine.ts: the
notebook code gradserve serves over HTTP, on whatever device JAX finds (a GPU on a GPU
host). Same loss_fn: tanh hidden layers, sigmoid output, JAX's clipped bce, mean; float32.
Prints ms per call (median of warm calls, results read back to the host) and GFLOP/s.
    python3 bench/jax_reference.py
"""
import time

import jax
import jax.numpy as jnp
import numpy as np

SIZES = [("S", [2, 4, 1], 4, 300), ("M", [64, 128, 128, 1], 1024, 100), ("L", [784, 512, 512, 1], 4096, 30)]


def loss_fn(params, x, y):
    h = x
    for layer in params[:-1]:
        h = jnp.tanh(h @ layer["W"] + layer["b"])
    p = jax.nn.sigmoid(h @ params[-1]["W"] + params[-1]["b"])
    p = jnp.clip(p, 1e-8, 1 - 1e-8)
    return -jnp.mean(y * jnp.log(p) + (1 - y) * jnp.log(1 - p))


value_and_grad = jax.jit(jax.value_and_grad(loss_fn))
rng = np.random.default_rng(1)
print(f"JAX {jax.__version__}, jit(value_and_grad) on {jax.devices()[0].device_kind}")
print("| size | ms (median) | GFLOP/s |\n| --- | --- | --- |")
for name, widths, batch, calls in SIZES:
    params = [
        {"W": jnp.asarray(rng.normal(0, 1 / np.sqrt(i), (i, o)), jnp.float32), "b": jnp.zeros(o, jnp.float32)}
        for i, o in zip(widths[:-1], widths[1:])
    ]
    x = jnp.asarray(rng.normal(size=(batch, widths[0])), jnp.float32)
    y = jnp.asarray(rng.integers(0, 2, (batch, 1)), jnp.float32)
    jax.block_until_ready(value_and_grad(params, x, y))  # compile
    ms = []
    for _ in range(calls):
        t0 = time.perf_counter()
        loss, grads = value_and_grad(params, x, y)
        jax.device_get((loss, grads))  # to the host, as a service must
        ms.append((time.perf_counter() - t0) * 1e3)
    median = sorted(ms)[len(ms) // 2]
    flops = 6 * batch * sum(i * o for i, o in zip(widths[:-1], widths[1:]))
    print(f"| {name} | {median:.3f} | {flops / median / 1e6:.2f} |")
