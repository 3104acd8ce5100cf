"""pycapnp calling the gateway's RPC service from schemas/inference.capnp: unary and streaming."""
import asyncio
import sys

from gateway_client_host import API_KEY, host, require, rpc_session

capnp = require("capnp")


async def run(schema_path, rpc_port):
    client, inference, sink = await rpc_session(capnp, schema_path, rpc_port)

    reply = await inference.inference(
        modelId="echo", inputData={"prompt": "pycapnp says hi"},
        params={"apiKey": API_KEY, "maxTokens": 8, "requestId": "pycapnp-1"})
    result = reply.result
    assert result.which() == "response", result
    assert result.response.text == "pycapnp says hi", result
    assert result.response.requestId == "pycapnp-1"
    assert result.response.finishReason == "stop"

    reply = await inference.inference(modelId="echo", inputData={"prompt": "x"},
                                      params={"apiKey": "wrong"})
    assert reply.result.which() == "error"
    assert reply.result.error.code == "unauthenticated"

    s = sink()
    reply = await inference.inferenceStream(
        modelId="echo",
        inputData={"chat": [{"role": "user", "content": "stream these words"}]},
        params={"apiKey": API_KEY, "maxTokens": 8}, sink=s)
    assert s.tokens == ["stream", " these", " words"], s.tokens
    assert s.result["response"]["text"] == "stream these words", s.result
    assert s.result["response"]["requestId"] == reply.requestId
    print("pycapnp client: unary, typed error and streaming: ok")


def main(binary, schema_path):
    with host(binary) as h:
        asyncio.run(capnp.run(run(schema_path, h.rpc_port)))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
