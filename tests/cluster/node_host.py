"""Shared by the tests against a real serving node: write a single-site config for SmolLM2 in a
temporary folder, start `bastion-node --config` on free loopback ports, wait until it serves, and
stop it at the end; plus small readers for its /metrics and raw HTTP answers.

A missing model is not a failure of the code under test: exit 77 (CTest's skip) and say why.
"""
import hashlib
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

from gateway_client_host import API_KEY, SKIP

MODEL_ID = "smollm2"
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
CONTEXT_TOKENS = 2048
BODY_BYTES_MAX = 65536
IDLE_TIMEOUT_MS = 4000  # the node's header and body timeout; short so the slow-client test ends
START_TIMEOUT_S = 60


def model_path():
    cache = os.environ.get("BASTION_MODEL_CACHE",
                           os.path.join(os.path.expanduser("~"), ".cache", "bastion", "models"))
    path = os.path.join(cache, MODEL_FILE)
    if not os.path.isfile(path):
        print(f"SKIP: {path} not found (run scripts/fetch-model)")
        sys.exit(SKIP)
    return path


def free_port():
    # Another process may take the port before the node binds it; the node then fails to start
    # with "cannot listen" and real_node tries again with fresh ports.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def node_config(http_port, rpc_port, model):
    key_sha256 = hashlib.sha256(API_KEY.encode()).hexdigest()
    return f"""\
[node]
name = "test-1"
site = "prod"
threads = 2

[http]
listen = "127.0.0.1:{http_port}"
body_bytes_max = {BODY_BYTES_MAX}
connections_max = 64
idle_timeout_ms = {IDLE_TIMEOUT_MS}

[rpc]
listen = "127.0.0.1:{rpc_port}"

[[models]]
id = "{MODEL_ID}"
path = "{model}"
format = "gguf"
context_tokens_max = {CONTEXT_TOKENS}

[[workers]]
id = "cpu-0"
kind = "cpu"
models = ["{MODEL_ID}"]
batch_max = 8
threads = 2
kv_blocks = 512

[scheduler]
deadline_ms_default = 60000

[[api_keys]]
name = "test"
key_sha256 = "{key_sha256}"
classes = ["production", "interactive", "batch"]
"""


class real_node:
    """A bastion-node serving SmolLM2 on loopback. Its stdout and stderr go to a log file, shown
    when the test fails; leaving the context asserts the node was still running and stops it
    cleanly with SIGTERM."""

    def __init__(self, binary):
        self.model = model_path()
        self.dir = tempfile.TemporaryDirectory(prefix="bastion-node-test-")
        self.log_path = os.path.join(self.dir.name, "node.log")
        for attempt in range(3):
            if self._start(binary):
                return
            self._show_log()
            print(f"node_host: bastion-node did not start (attempt {attempt + 1}); retrying")
        raise AssertionError("bastion-node did not start serving")

    def _start(self, binary):
        self.http_port, self.rpc_port = free_port(), free_port()
        config = os.path.join(self.dir.name, "node.toml")
        with open(config, "w") as f:
            f.write(node_config(self.http_port, self.rpc_port, self.model))
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen([binary, "--config", config], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return self._stopped()
            with open(self.log_path) as f:
                text = f.read()
            if re.search(r"^  serving$", text, re.M):
                http = re.search(r"^  http +port (\d+)$", text, re.M)
                rpc = re.search(r"^  rpc +port (\d+)$", text, re.M)
                assert http and int(http.group(1)) == self.http_port, text
                assert rpc and int(rpc.group(1)) == self.rpc_port, text
                return True
            time.sleep(0.1)
        self.proc.kill()
        self.proc.wait()
        return self._stopped()

    def _stopped(self):
        self.log.close()
        return False

    def alive(self):
        return self.proc.poll() is None

    def _show_log(self, tail_bytes=6000):
        with open(self.log_path, errors="replace") as f:
            text = f.read()
        print(f"--- bastion-node log (last {tail_bytes} bytes) ---\n{text[-tail_bytes:]}\n---")

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc):
        try:
            if exc_type is not None:
                self._show_log()
            assert self.alive(), f"bastion-node died (exit {self.proc.returncode})"
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("bastion-node did not stop within 30 s of SIGTERM")
            assert rc == 0, f"bastion-node exited {rc} after SIGTERM"
        except AssertionError:
            if exc_type is None:
                self._show_log()
            raise
        finally:
            self.log.close()
            self.dir.cleanup()


def http_exchange(port, raw, read_timeout_s=10):
    """Sends raw bytes, then reads one answer: until it is complete (by its Content-Length),
    the server closes, or read_timeout_s passes. Returns (status or None, headers dict with
    lower-case names, body bytes, closed)."""
    with socket.create_connection(("127.0.0.1", port), timeout=read_timeout_s) as s:
        try:
            s.sendall(raw)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the node stopped reading; its answer, if any, is still there to read
        data, closed = read_until_closed(s, read_timeout_s, complete=http_complete)
    return parse_http(data) + (closed,)


def http_complete(data):
    status, headers, body = parse_http(data)
    return (status is not None and "content-length" in headers and
            len(body) >= int(headers["content-length"]))


def read_until_closed(s, timeout_s, complete=lambda data: False):
    """Reads from s until EOF or a reset (closed=True), timeout_s, or complete(data); returns
    (bytes, closed)."""
    data = b""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not complete(data):
        s.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            break
        except ConnectionResetError:
            return data, True
        if not chunk:
            return data, True
        data += chunk
    return data, False


def parse_http(data):
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    m = re.match(r"HTTP/1\.1 (\d{3}) ", lines[0]) if lines else None
    if not m:
        return None, {}, data
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        body = body[:int(headers["content-length"])]
    return int(m.group(1)), headers, body


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$")


def metrics(port):
    """The node's /metrics as {(name, ((label, value), ...)): value}."""
    status, _, body, _ = http_exchange(
        port, b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status == 200, status
    out = {}
    for line in body.decode().splitlines():
        m = _SAMPLE.match(line)
        if not m:
            continue
        labels = tuple(sorted(re.findall(r'(\w+)="([^"]*)"', m.group(2) or "")))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def counter(snapshot, name, **labels):
    return snapshot.get((name, tuple(sorted(labels.items()))), 0.0)
