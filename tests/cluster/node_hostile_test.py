"""Hostile and broken clients against a real bastion-node serving SmolLM2: garbage and truncated
HTTP, oversize bodies, invalid JSON and parameters, slow clients holding half-open connections, a
streaming client that stops reading, malformed Cap'n Proto on the RPC port, and RPC connections
that stay silent or stall in the middle of a message. Every one is
refused, answered with an error or dropped; the node keeps answering everyone else promptly,
stays alive, and counts what it refused in /metrics.

  node_hostile_test.py BASTION_NODE SCHEMA
"""
import json
import os
import select
import socket
import struct
import sys
import threading
import time

from gateway_client_host import API_KEY, require
from node_host import (BODY_BYTES_MAX, CONTEXT_TOKENS, IDLE_TIMEOUT_MS, MODEL_ID, counter,
                       http_exchange, metrics, parse_http, read_until_closed, real_node)

capnp = require("capnp")

REJECTED = "bastion_http_rejected_total"
RPC_REJECTED = "bastion_rpc_rejected_total"
SLOW_CLIENTS = 20
PROMPT_ANSWER_S = 8  # a one-token request on a loaded 2-core machine, with everything else going


def post_head(path, content_length, extra=""):
    return (f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {API_KEY}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {content_length}\r\n{extra}"
            "\r\n").encode()


def post_json(port, path, body, timeout_s=30):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    status, headers, payload, _ = http_exchange(
        port, post_head(path, len(data), "Connection: close\r\n") + data, timeout_s)
    try:
        return status, headers, json.loads(payload) if payload else None
    except json.JSONDecodeError:
        return status, headers, payload


def openai_error(body, status, expected_status, code=None, param=None):
    """Asserts the OpenAI error shape: {"error": {"message", "type", "param", "code"}}."""
    assert status == expected_status, (status, body)
    assert isinstance(body, dict) and set(body) == {"error"}, body
    err = body["error"]
    assert set(err) == {"message", "type", "param", "code"}, err
    assert isinstance(err["message"], str) and err["message"], err
    if code is not None:
        assert err["code"] == code, err
    if param is not None:
        assert err["param"] == param, err
    return err


def answers_promptly(port, what):
    """A normal one-token completion is answered within PROMPT_ANSWER_S."""
    t0 = time.monotonic()
    status, _, body = post_json(port, "/v1/completions",
                                {"model": MODEL_ID, "prompt": "Hello", "max_tokens": 1},
                                timeout_s=PROMPT_ANSWER_S)
    dt = time.monotonic() - t0
    assert status == 200 and body["choices"][0]["text"] is not None, (what, status, body)
    assert dt < PROMPT_ANSWER_S, f"{what}: a normal request took {dt:.1f} s"
    return dt


def check_garbage_and_truncated_http(port):
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"HELLO THERE\r\n\r\n")
        data, closed = read_until_closed(s, 5)
    status, _, body = parse_http(data)
    assert closed, "the node kept a connection open after a garbage request line"
    openai_error(json.loads(body), status, 400, code="bad_http")
    # Binary noise with no line end: the node waits for the header timeout, then closes.
    noise = bytes((i * 37 + 11) % 256 for i in range(2048) if (i * 37 + 11) % 256 != 10)
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(noise)
        data, closed = read_until_closed(s, IDLE_TIMEOUT_MS / 1000 + 3)
    assert closed, "the node kept a connection open after 2 KiB of binary noise"
    # Headers cut off, then the client hangs up; a body shorter than its Content-Length, then
    # the client hangs up. Nothing to answer; the node must just drop them.
    for raw in (b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Le",
                post_head("/v1/completions", 100) + b'{"model":'):
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(raw)
            s.shutdown(socket.SHUT_WR)
            _, closed = read_until_closed(s, 5)
        assert closed, f"the node kept a connection open after {raw[-12:]!r} and a hang-up"


def check_oversize_bodies(port):
    # Declared too large: refused with 413 before a byte of the body is sent.
    status, _, body, _ = http_exchange(port, post_head("/v1/completions", BODY_BYTES_MAX + 1))
    openai_error(json.loads(body), status, 413, code="body_too_large")
    # Chunked, no length: refused once it grows past the limit.
    piece = b"a" * 16384
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece)
                      for _ in range(BODY_BYTES_MAX // len(piece) + 2))
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {API_KEY}\r\n"
            "Transfer-Encoding: chunked\r\n\r\n").encode()
    status, _, body, _ = http_exchange(port, head + chunks, 5)
    openai_error(json.loads(body), status, 413, code="body_too_large")


def check_invalid_requests(port):
    status, _, body = post_json(port, "/v1/completions", b'{"model": "smollm2", "prompt": ')
    openai_error(body, status, 400)
    status, _, body = post_json(port, "/v1/completions", b"\xff\xfe not json at all")
    openai_error(body, status, 400)
    status, _, body = post_json(port, "/v1/chat/completions",
                                {"model": "no-such-model",
                                 "messages": [{"role": "user", "content": "hi"}]})
    openai_error(body, status, 404, code="model_not_found", param="model")
    base = {"model": MODEL_ID, "prompt": "hi", "max_tokens": 4}
    long_text = "word " * (CONTEXT_TOKENS + 100)  # well over the context in any tokenizer
    # A prompt longer than the context is OpenAI's context_length_exceeded, whether the gateway
    # counts the token ids or the worker tokenizes the text.
    for change, param, code in (
            ({"temperature": -1}, "temperature", "invalid_argument"),
            ({"top_p": 2}, "top_p", "invalid_argument"),
            ({"max_tokens": 10**9}, "max_tokens", "invalid_argument"),
            ({"n": 50}, "n", "invalid_argument"),
            ({"prompt": list(range(CONTEXT_TOKENS + 10))}, "prompt", "context_length_exceeded"),
            ({"prompt": long_text}, "prompt", "context_length_exceeded")):
        status, _, body = post_json(port, "/v1/completions", {**base, **change})
        err = openai_error(body, status, 400, code=code, param=param)
        assert err["type"] == "invalid_request_error", (change, err)
    for stream in (False, True):  # a stream refused before its first event is a plain 400
        status, _, body = post_json(port, "/v1/chat/completions",
                                    {"model": MODEL_ID, "max_tokens": 4, "stream": stream,
                                     "messages": [{"role": "user", "content": long_text}]})
        err = openai_error(body, status, 400, code="context_length_exceeded", param="messages")
        assert err["type"] == "invalid_request_error", err


class slow_clients:
    """SLOW_CLIENTS connections that each send one header byte a second and never finish; a
    background thread feeds them and records when the node closes each one."""

    def __init__(self, port):
        self.head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"s" * 200
        self.socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(SLOW_CLIENTS)]
        self.t0 = time.monotonic()
        self.closed_after_s = {}
        self.answers = {}
        self.stop = False
        self.thread = threading.Thread(target=self._feed, daemon=True)
        self.thread.start()

    def _feed(self):
        sent = 0
        next_byte = time.monotonic()
        while not self.stop and len(self.closed_after_s) < len(self.socks):
            open_socks = [s for s in self.socks if s not in self.closed_after_s]
            if time.monotonic() >= next_byte and sent < len(self.head):
                for s in open_socks:
                    try:
                        s.send(self.head[sent:sent + 1])
                    except OSError:
                        self.closed_after_s[s] = time.monotonic() - self.t0
                sent += 1
                next_byte += 1.0
            readable, _, _ = select.select(open_socks, [], [], 0.1)
            for s in readable:
                try:
                    chunk = s.recv(4096)
                except OSError:
                    chunk = b""
                if chunk:
                    self.answers[s] = self.answers.get(s, b"") + chunk
                else:
                    self.closed_after_s[s] = time.monotonic() - self.t0

    def finish(self, wait_s):
        self.thread.join(wait_s)
        self.stop = True
        self.thread.join()
        for s in self.socks:
            s.close()


def check_slow_clients(port):
    clients = slow_clients(port)
    time.sleep(1.5)
    assert not clients.closed_after_s, "slow clients were closed before the header timeout"
    t0 = time.monotonic()
    status, _, _, _ = http_exchange(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
                                    b"Connection: close\r\n\r\n", 5)
    assert status == 200 and time.monotonic() - t0 < 2, "healthz slow while slow clients hang"
    dt = answers_promptly(port, "while 20 slow clients hang")
    clients.finish(IDLE_TIMEOUT_MS / 1000 + 6)
    timeout_s = IDLE_TIMEOUT_MS / 1000
    closed = sorted(clients.closed_after_s.values())
    assert len(closed) == SLOW_CLIENTS, f"only {len(closed)} of {SLOW_CLIENTS} slow clients closed"
    assert timeout_s - 0.5 <= closed[0] and closed[-1] <= timeout_s + 4, closed
    statuses = {parse_http(a)[0] for a in clients.answers.values()}
    assert statuses <= {408}, f"slow clients were answered {statuses}, not 408"
    print(f"slow clients: a normal request took {dt:.2f} s; all {SLOW_CLIENTS} closed after "
          f"{closed[0]:.1f}..{closed[-1]:.1f} s (header timeout {timeout_s:.0f} s), "
          f"answers {statuses or 'none'}")


def check_stream_non_reader(port):
    body = json.dumps({"model": MODEL_ID, "prompt": "1, 2, 3, 4, 5, 6, 7, 8, 9, 10,",
                       "max_tokens": CONTEXT_TOKENS // 2, "temperature": 0,
                       "stream": True}).encode()
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    s.sendall(post_head("/v1/completions", len(body)) + body)  # and never read
    time.sleep(2)
    before = metrics(port)
    assert counter(before, "bastion_gateway_requests_in_flight") >= 1, "the stream never started"
    dt = answers_promptly(port, "while a stream is not read")
    s.close()
    for _ in range(50):  # the node looks for gone clients every 250 ms
        m = metrics(port)
        if counter(m, "bastion_gateway_requests_in_flight") == 0:
            break
        time.sleep(0.1)
    assert counter(m, "bastion_gateway_requests_in_flight") == 0, "the unread stream still runs"
    print(f"stream non-reader: a normal request took {dt:.2f} s while it hung; cancelled on close")


def capnp_frame(segment_words, payload):
    # Cap'n Proto's stream framing: segment count - 1, segment sizes (padded to 8 bytes).
    table = struct.pack("<I", len(segment_words) - 1) + b"".join(
        struct.pack("<I", w) for w in segment_words)
    if len(table) % 8:
        table += b"\0" * 4
    return table + payload


def read_capnp_messages(data):
    msgs = []
    while len(data) >= 8:
        count = struct.unpack_from("<I", data)[0] + 1
        sizes = struct.unpack_from(f"<{count}I", data, 4)
        head = 4 + 4 * count + (4 if (4 + 4 * count) % 8 else 0)
        total = head + 8 * sum(sizes)
        if len(data) < total:
            break
        msgs.append(data[:total])
        data = data[total:]
    return msgs


def rpc_closes(port, raw, what, hold_s=5):
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(raw)
        _, closed = read_until_closed(s, hold_s)
    assert closed, f"RPC: the node kept the connection open after {what}"


def check_malformed_capnp(port):
    rpc = capnp.load("/usr/include/capnp/rpc.capnp", imports=["/usr/include"])
    noise = bytes((i * 131 + 7) % 256 for i in range(4096))
    rpc_closes(port, noise, "4 KiB of noise")
    rpc_closes(port, struct.pack("<II", 0x7FFFFFFF, 0), "a table of 2^31 segments")
    rpc_closes(port, capnp_frame([0x7FFFFFFF], b""), "a segment of 2^31 words")

    bootstrap = rpc.Message.new_message()
    bootstrap.init("bootstrap").questionId = 0
    valid = bootstrap.to_bytes()
    with socket.create_connection(("127.0.0.1", port)) as s:  # cut short, then hang up
        s.sendall(valid[:len(valid) // 2])
        time.sleep(0.5)

    # A well-formed call on the bootstrap capability naming an interface it does not have: the
    # node answers with a typed exception and keeps the connection.
    call = rpc.Message.new_message()
    c = call.init("call")
    c.questionId = 1
    c.target.init("promisedAnswer").questionId = 0
    c.interfaceId = 0x1234567890ABCDEF
    c.methodId = 0
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(valid + call.to_bytes())
        data = b""
        deadline = time.monotonic() + 10
        returned = {}
        while time.monotonic() < deadline and 1 not in returned:
            more, closed = read_until_closed(s, 0.5)
            data += more
            for raw in read_capnp_messages(data):
                with rpc.Message.from_bytes(raw) as msg:
                    if msg.which() == "return":
                        ret = getattr(msg, "return")  # a Python keyword
                        returned[ret.answerId] = (
                            str(ret.which()),
                            str(ret.exception.type) if ret.which() == "exception" else None)
            if closed:
                break
        assert 1 in returned, f"no Return for the wrong-interface call ({len(data)} bytes back)"
        assert returned[1] == ("exception", "unimplemented"), returned


def check_rpc_idle(http_port, rpc_port):
    """RPC connections that hold a slot without using it are closed after the idle timeout: one
    that connects and sends nothing, one that sends half a message and stalls. They are closed
    within a few seconds of the timeout, never before it, and the node answers meanwhile."""
    rpc = capnp.load("/usr/include/capnp/rpc.capnp", imports=["/usr/include"])
    bootstrap = rpc.Message.new_message()
    bootstrap.init("bootstrap").questionId = 0
    valid = bootstrap.to_bytes()
    timeout_s = IDLE_TIMEOUT_MS / 1000
    silent = socket.create_connection(("127.0.0.1", rpc_port))
    half = socket.create_connection(("127.0.0.1", rpc_port))
    t0 = time.monotonic()
    half.sendall(valid[:len(valid) // 2])
    try:
        answers_promptly(http_port, "while idle RPC connections hold slots")
        closed_after = {}
        deadline = t0 + timeout_s + 6
        while len(closed_after) < 2 and time.monotonic() < deadline:
            for name, s in (("silent", silent), ("half", half)):
                if name in closed_after:
                    continue
                readable, _, _ = select.select([s], [], [], 0.05)
                if readable:
                    try:
                        chunk = s.recv(4096)
                    except OSError:
                        chunk = b""
                    if not chunk:
                        closed_after[name] = time.monotonic() - t0
    finally:
        silent.close()
        half.close()
    assert set(closed_after) == {"silent", "half"}, f"RPC idle connections still open: {closed_after}"
    for name, after in closed_after.items():
        assert timeout_s - 0.5 <= after <= timeout_s + 5, (name, after)
    print(f"RPC idle: silent closed after {closed_after['silent']:.1f} s, half a message after "
          f"{closed_after['half']:.1f} s (idle timeout {timeout_s:.0f} s)")


async def rpc_still_serves(schema_path, port):
    schema = capnp.load(schema_path, imports=["/usr/include"])
    conn = await capnp.AsyncIoStream.create_connection(host="127.0.0.1", port=port)
    inference = capnp.TwoPartyClient(conn).bootstrap().cast_as(schema.Inference)
    reply = await inference.inference(modelId=MODEL_ID, inputData={"prompt": "Hello"},
                                      params={"apiKey": API_KEY, "maxTokens": 1})
    assert reply.result.which() == "response", reply.result


def delta(after, before, name, **labels):
    return counter(after, name, **labels) - counter(before, name, **labels)


def main(binary, schema_path):
    import asyncio

    t_start = time.monotonic()
    with real_node(binary) as node:
        port = node.http_port
        before = metrics(port)
        check_garbage_and_truncated_http(port)
        check_oversize_bodies(port)
        check_invalid_requests(port)
        answers_promptly(port, "after garbage, oversize and invalid requests")
        check_slow_clients(port)
        check_stream_non_reader(port)
        check_malformed_capnp(node.rpc_port)
        check_rpc_idle(port, node.rpc_port)
        asyncio.run(capnp.run(rpc_still_serves(schema_path, node.rpc_port)))

        assert node.alive(), "bastion-node died"
        status, _, body, _ = http_exchange(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
                                           b"Connection: close\r\n\r\n", 5)
        assert status == 200 and json.loads(body) == {"status": "alive"}, (status, body)
        answers_promptly(port, "after everything")

        after = metrics(port)
        seen = {k: v - before.get(k, 0.0) for k, v in after.items()
                if k[0] in (REJECTED, RPC_REJECTED) and v != before.get(k, 0.0)}
        print("rejections counted:", {f"{k[0]}{dict(k[1])}": v for k, v in sorted(seen.items())})
        # What each check above sent, by the reason the node counts it under. A prompt too
        # long for the context is counted under its own reason, whether the gateway refused
        # it (the token ids) or the worker (which tokenizes): the token ids, the long
        # completion prompt and the two long chat messages.
        expected = {(REJECTED, "bad_http"): 1, (REJECTED, "body_too_large"): 2,
                    (REJECTED, "prompt_too_long"): 4,
                    (REJECTED, "invalid"): 2 + 4, (REJECTED, "unknown_model"): 1,
                    (REJECTED, "header_timeout"): 1 + SLOW_CLIENTS,
                    (RPC_REJECTED, "malformed"): 3, (RPC_REJECTED, "truncated"): 1,
                    (RPC_REJECTED, "unimplemented"): 1,
                    (RPC_REJECTED, "idle_timeout"): 1, (RPC_REJECTED, "message_timeout"): 1}
        for (name, reason), least in expected.items():
            got = delta(after, before, name, reason=reason)
            assert got >= least, f"{name}{{reason={reason}}} rose by {got}, expected {least}"
        gone = (delta(after, before, REJECTED, reason="client_gone") +
                delta(after, before, REJECTED, reason="client_stalled"))
        assert gone >= 2, f"a body cut short and an unread stream counted {gone} times, not 2"
        answered_400 = delta(after, before, "bastion_http_requests_total", route="completions",
                             code="400")
        assert answered_400 >= 2 + 6, f"{answered_400} completions answered 400, expected 8"
    print(f"hostile clients against the real node: ok ({time.monotonic() - t_start:.0f} s)")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
