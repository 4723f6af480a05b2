"""Check your own backprop against gradserve, in plain Python (no numpy, no JAX).

The XOR lesson's network (2 -> 4 -> 1, tanh hidden layer, sigmoid output, mean binary
cross-entropy: the service's defaults) with gradients written out by hand, as a learner
would, compared tensor by tensor with POST /value-and-grad. Exits 1 if any disagree.

    python3 examples/check_backprop.py [http://127.0.0.1:8080]
    python3 examples/check_backprop.py --forget-mean   # a classic bug, and what the check says
"""

import json
import math
import os
import sys
import urllib.error
import urllib.request

args = [a for a in sys.argv[1:] if not a.startswith("--")]
FORGET_MEAN = "--forget-mean" in sys.argv
BASE = (args[0] if args else os.environ.get("GRADSERVE_URL", "http://127.0.0.1:8080")).rstrip("/")

params = [
    {"W": [[0.5, -0.3, 0.8, 0.1], [-0.6, 0.9, 0.2, -0.4]], "b": [0.0, 0.1, -0.1, 0.0]},
    {"W": [[0.7], [-0.5], [0.3], [0.9]], "b": [0.05]},
]
x = [[0, 0], [0, 1], [1, 0], [1, 1]]
y = [[0], [1], [1], [0]]


def matmul(a, b):
    return [[sum(a_ik * b[k][j] for k, a_ik in enumerate(row)) for j in range(len(b[0]))] for row in a]


def transpose(m):
    return [list(col) for col in zip(*m)]


def my_value_and_grad(params, x, y):
    """Your code: forward pass, loss, and reverse-mode gradients by hand (float64)."""
    (l0, l1) = params
    z1 = [[v + b for v, b in zip(row, l0["b"])] for row in matmul(x, l0["W"])]
    h = [[math.tanh(v) for v in row] for row in z1]
    z2 = [[v + b for v, b in zip(row, l1["b"])] for row in matmul(h, l1["W"])]
    p = [[1 / (1 + math.exp(-v)) for v in row] for row in z2]
    n = len(y) * len(y[0])  # the mean is over every element of the batch
    loss = -sum(t * math.log(q) + (1 - t) * math.log(1 - q) for pr, yr in zip(p, y) for q, t in zip(pr, yr)) / n
    # d loss / d z2 of sigmoid + cross-entropy is (p - y), divided by n for the mean
    scale = 1 if FORGET_MEAN else n
    dz2 = [[(q - t) / scale for q, t in zip(pr, yr)] for pr, yr in zip(p, y)]
    dh = matmul(dz2, transpose(l1["W"]))
    dz1 = [[g * (1 - v * v) for g, v in zip(gr, hr)] for gr, hr in zip(dh, h)]  # tanh' = 1 - tanh²
    grads = [
        {"W": matmul(transpose(x), dz1), "b": [sum(col) for col in zip(*dz1)]},
        {"W": matmul(transpose(h), dz2), "b": [sum(col) for col in zip(*dz2)]},
    ]
    return loss, grads


def post(path, body):
    request = urllib.request.Request(
        BASE + path, data=json.dumps(body).encode(), headers={"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request) as response:
            return json.load(response)
    except urllib.error.HTTPError as err:  # gradserve's 4xx says which field and why
        sys.exit(f"{path} answered {err.code}: {json.load(err).get('message')}")
    except urllib.error.URLError as err:  # nothing listening there
        sys.exit(f"cannot reach gradserve at {BASE}: {err.reason} (start it with npm start, or set GRADSERVE_URL)")


def agree(mine, theirs, rtol=1e-4, atol=1e-6):
    """np.allclose's rule: gradserve computes in float32, this code in float64."""
    return all(abs(a - b) <= atol + rtol * abs(b) for a, b in zip(mine, theirs))


flat = lambda t: [v for row in t for v in row] if isinstance(t[0], list) else list(t)  # noqa: E731
my_loss, my_grads = my_value_and_grad(params, x, y)
answer = post("/value-and-grad", {"params": params, "x": x, "y": y})

checks = [("loss", [my_loss], [answer["loss"]])]
for i, (mine, theirs) in enumerate(zip(my_grads, answer["grads"])):
    checks += [(f"grads[{i}].{k}", flat(mine[k]), flat(theirs[k])) for k in ("W", "b")]
wrong = 0
for name, mine, theirs in checks:
    worst = max(abs(a - b) for a, b in zip(mine, theirs))
    ok = agree(mine, theirs)
    wrong += not ok
    print(f"{name:13} {'agrees' if ok else 'DIFFERS'} (largest difference {worst:.1e})")
    if not ok:
        print(f"{'':13} yours   {[round(v, 6) for v in mine]}\n{'':13} service {[round(v, 6) for v in theirs]}")
ratios = {round(a / b, 3) for name, mine, theirs in checks for a, b in zip(mine, theirs) if not agree([a], [b]) and b}
if len(ratios) == 1:  # every difference the same factor: a scale missing or doubled, not a wrong formula
    print(f"each differing value is {ratios.pop():g} times the service's: look for a factor, such as the mean's 1/n")
print("your backprop matches gradserve" if wrong == 0 else f"{wrong} of {len(checks)} differ: look there first")
sys.exit(1 if wrong else 0)
