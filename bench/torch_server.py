"""The alternative a Python user would build instead of gradserve: PyTorch (CPU) computing the
same value-and-grad (tanh hidden layers, sigmoid output, JAX's clipped bce, mean; float32)
behind Python's own threaded HTTP server, JSON in and out in gradserve's request and answer
format, no validation. The standard library's server is the lightest a Python service can
use (FastAPI or Flask add their own cost), so this is the alternative at its fastest.
Run by bench/http.ts in its own process, like the service (needs Debian's python3-torch).
    PORT=... python3 bench/torch_server.py
"""
import json
import os
import socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import torch
from torch_reference import loss_and_grads


def value_and_grad(body):
    params = [
        (torch.tensor(p["W"], dtype=torch.float32, requires_grad=True), torch.tensor(p["b"], dtype=torch.float32, requires_grad=True))
        for p in body["params"]
    ]
    x = torch.tensor(body["x"], dtype=torch.float32)
    y = torch.tensor(body["y"], dtype=torch.float32).reshape(x.shape[0], -1)
    loss, grads = loss_and_grads(params, x, y)
    return {
        "loss": loss.item(),
        "grads": [{"W": grads[2 * i].tolist(), "b": grads[2 * i + 1].tolist()} for i in range(len(params))],
    }


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as autocannon expects

    def setup(self):
        super().setup()
        # headers and body leave in two writes: without this, Nagle's algorithm holds the body
        # for the client's delayed ACK (40 ms a request); uvicorn and Node set it too
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def answer(self, status, payload):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        self.answer(200, value_and_grad(body))

    def do_GET(self):
        self.answer(200, {"status": "ready"})

    def log_message(self, *args):
        pass


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # a load generator closing its connections at the end is not news


Server(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
