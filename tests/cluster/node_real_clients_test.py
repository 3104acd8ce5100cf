"""Clients nobody here wrote against a real bastion-node serving SmolLM2: the official `openai`
Python client (completions and chat, unary and streaming, its own exception types for our
errors) on the HTTP port, and pycapnp from schemas/inference.capnp on the RPC port.

  node_real_clients_test.py BASTION_NODE SCHEMA
"""
import asyncio
import sys
import time

from gateway_client_host import API_KEY, require, rpc_session
from node_host import MODEL_ID, real_node

openai = require("openai")
capnp = require("capnp")

QUESTION = "What is the capital of France?"


def check_openai(port):
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=API_KEY,
                           max_retries=0, timeout=60)

    assert [m.id for m in client.models.list()] == [MODEL_ID]

    # Greedy chat; the client's own X-Request-Id comes back as header and as the answer's id.
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL_ID, messages=[{"role": "user", "content": QUESTION}], temperature=0,
        max_tokens=40, extra_headers={"X-Request-Id": "real-client-chat-1"})
    assert raw.headers.get("x-request-id") == "real-client-chat-1", dict(raw.headers)
    chat = raw.parse()
    answer = chat.choices[0].message.content
    assert chat.id == "real-client-chat-1", chat.id
    assert "Paris" in answer, f"greedy answer does not say Paris: {answer!r}"
    assert chat.choices[0].message.role == "assistant"
    assert chat.choices[0].finish_reason == "stop", chat
    assert chat.model == MODEL_ID
    u = chat.usage
    assert u.prompt_tokens > 5 and 0 < u.completion_tokens <= 40, u
    assert u.total_tokens == u.prompt_tokens + u.completion_tokens, u

    # The same question streamed: one role delta, the same greedy text, usage in a last chunk
    # with no choices (stream_options.include_usage).
    pieces, roles, finish, usage = [], [], None, None
    stream = client.chat.completions.create(
        model=MODEL_ID, messages=[{"role": "user", "content": QUESTION}], temperature=0,
        max_tokens=40, stream=True, stream_options={"include_usage": True})
    for chunk in stream:
        for choice in chunk.choices:
            pieces.append(choice.delta.content or "")
            if choice.delta.role:
                roles.append(choice.delta.role)
            finish = choice.finish_reason or finish
        if chunk.usage:
            assert chunk.choices == [], chunk
            usage = chunk.usage
    assert roles == ["assistant"], roles
    assert "".join(pieces) == answer, (pieces, answer)
    assert finish == "stop"
    assert usage is not None and usage.total_tokens == u.total_tokens, usage

    # Raw completion, cut at max_tokens; greedy decoding gives the same text twice.
    prompt = "The capital of France is"
    c = client.completions.create(model=MODEL_ID, prompt=prompt, temperature=0, max_tokens=6)
    assert c.choices[0].finish_reason == "length", c
    assert c.usage.completion_tokens == 6 and c.usage.prompt_tokens > 0, c.usage
    again = client.completions.create(model=MODEL_ID, prompt=prompt, temperature=0, max_tokens=6)
    assert again.choices[0].text == c.choices[0].text, (again, c)
    assert again.id != c.id  # minted ids are unique

    pieces, finish, usage = [], None, None
    for chunk in client.completions.create(model=MODEL_ID, prompt=prompt, temperature=0,
                                           max_tokens=6, stream=True,
                                           stream_options={"include_usage": True}):
        for choice in chunk.choices:
            pieces.append(choice.text)
            finish = choice.finish_reason or finish
        usage = chunk.usage or usage
    assert "".join(pieces) == c.choices[0].text, (pieces, c.choices[0].text)
    assert finish == "length"
    assert usage.completion_tokens == 6, usage

    # Our error answers as the client's own exception types.
    try:
        client.chat.completions.create(model="no-such-model",
                                       messages=[{"role": "user", "content": "hi"}])
        raise AssertionError("unknown model accepted")
    except openai.NotFoundError as e:
        assert e.status_code == 404 and e.code == "model_not_found", e
    for params, name in (({"temperature": 5}, "temperature"), ({"top_p": 2}, "top_p"),
                         ({"max_tokens": 10**9}, "max_tokens")):
        try:
            client.completions.create(model=MODEL_ID, prompt="x", **params)
            raise AssertionError(f"{params} accepted")
        except openai.BadRequestError as e:
            assert e.status_code == 400 and e.param == name, (params, e)
    # A prompt longer than the model's context: OpenAI's own error shape for it, which the
    # client exposes as e.code and e.param (chat names "messages", completions "prompt").
    long_text = "word " * 3000
    for kind, call in (("messages", lambda: client.chat.completions.create(
                            model=MODEL_ID, max_tokens=4,
                            messages=[{"role": "user", "content": long_text}])),
                       ("prompt", lambda: client.completions.create(
                            model=MODEL_ID, prompt=long_text, max_tokens=4))):
        try:
            call()
            raise AssertionError(f"a {kind} longer than the context was accepted")
        except openai.BadRequestError as e:
            assert e.status_code == 400, e
            assert e.code == "context_length_exceeded" and e.param == kind, (e.code, e.param)
            assert e.type == "invalid_request_error", e.type
            assert isinstance(e.body, dict) and set(e.body) == {"message", "type", "param",
                                                                "code"}, e.body
    wrong = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="sk-wrong",
                          max_retries=0, timeout=10)
    try:
        wrong.completions.create(model=MODEL_ID, prompt="x", max_tokens=1)
        raise AssertionError("wrong key accepted")
    except openai.AuthenticationError as e:
        assert e.status_code == 401, e
    print(f"openai client on the real node: chat said {answer!r}; completions, streaming, "
          "errors: ok")


async def check_pycapnp(schema_path, port):
    client, inference, sink = await rpc_session(capnp, schema_path, port)
    chat = {"chat": [{"role": "user", "content": QUESTION}]}

    reply = await inference.inference(
        modelId=MODEL_ID, inputData=chat,
        params={"apiKey": API_KEY, "maxTokens": 40, "temperature": 0.0,
                "requestId": "real-pycapnp-1"})
    result = reply.result
    assert result.which() == "response", result
    r = result.response
    assert "Paris" in r.text, f"greedy answer does not say Paris: {r.text!r}"
    assert r.requestId == "real-pycapnp-1"
    assert r.finishReason == "stop" and r.modelId == MODEL_ID, r
    assert r.usage.completionTokens > 0 and r.usage.promptTokens > 5, r.usage
    assert r.site == "prod"

    s = sink()
    t0 = time.monotonic()
    reply = await inference.inferenceStream(
        modelId=MODEL_ID, inputData=chat, params={"apiKey": API_KEY, "maxTokens": 40}, sink=s)
    # The call returns once the stream is set up; the sink's done() ends it.
    while s.result is None and time.monotonic() - t0 < 60:
        await asyncio.sleep(0.05)
    assert s.result is not None, "the stream never ended"
    streamed = s.result["response"]
    assert "".join(s.tokens) == streamed["text"] == r.text, (s.tokens, streamed, r.text)
    assert len(s.tokens) >= 2, s.tokens
    assert streamed["requestId"] == reply.requestId and reply.requestId, (streamed, reply)
    assert streamed["usage"]["completionTokens"] == r.usage.completionTokens

    reply = await inference.inference(modelId="no-such-model", inputData=chat,
                                      params={"apiKey": API_KEY, "requestId": "real-pycapnp-2"})
    assert reply.result.which() == "error", reply.result
    assert reply.result.error.code == "unknownModel", reply.result.error
    assert reply.result.error.requestId == "real-pycapnp-2"
    reply = await inference.inference(modelId=MODEL_ID, inputData=chat,
                                      params={"apiKey": API_KEY, "temperature": -1.0})
    assert reply.result.which() == "error" and reply.result.error.code == "invalidArgument"
    assert "temperature" in reply.result.error.message, reply.result.error
    too_long = {"chat": [{"role": "user", "content": "word " * 3000}]}
    reply = await inference.inference(modelId=MODEL_ID, inputData=too_long,
                                      params={"apiKey": API_KEY, "maxTokens": 4})
    assert reply.result.which() == "error" and reply.result.error.code == "invalidArgument"
    assert reply.result.error.reason == "promptTooLong", reply.result.error
    assert reply.result.error.message.startswith("inputData: "), reply.result.error
    print(f"pycapnp on the real node: answered {r.text!r}; streaming, typed errors: ok")


def main(binary, schema_path):
    with real_node(binary) as node:
        check_openai(node.http_port)
        asyncio.run(capnp.run(check_pycapnp(schema_path, node.rpc_port)))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
