"""Asks a running Bastion node one question through both of its APIs and prints the answers:
the OpenAI-compatible HTTP API with the official `openai` client (unary and streaming), and the
Cap'n Proto RPC service with pycapnp, compiled from schemas/inference.capnp at run time.

  python cluster/clients/ask.py --http-port 8080 --rpc-port 8081 --model smollm2 \
      --api-key bastion-demo-key "What is the capital of France?"
"""
import argparse
import asyncio
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def ask_http(args):
    import openai

    client = openai.OpenAI(base_url=f"http://{args.host}:{args.http_port}/v1",
                           api_key=args.api_key, max_retries=0, timeout=120)
    messages = [{"role": "user", "content": args.question}]
    t0 = time.monotonic()
    reply = client.chat.completions.create(model=args.model, messages=messages,
                                           max_tokens=args.max_tokens, temperature=0)
    dt = time.monotonic() - t0
    print(f"[http unary    {dt:5.2f} s] {reply.choices[0].message.content!r} "
          f"(finish {reply.choices[0].finish_reason}, {reply.usage.completion_tokens} tokens)")

    t0 = time.monotonic()
    first = None
    pieces = []
    stream = client.chat.completions.create(model=args.model, messages=messages,
                                            max_tokens=args.max_tokens, temperature=0,
                                            stream=True, stream_options={"include_usage": True})
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            if first is None:
                first = time.monotonic() - t0
            pieces.append(chunk.choices[0].delta.content)
    dt = time.monotonic() - t0
    print(f"[http stream   {dt:5.2f} s, first token {first or 0:4.2f} s] {''.join(pieces)!r}")


async def ask_rpc_async(args, capnp):
    schema = capnp.load(os.path.join(ROOT, "schemas", "inference.capnp"), imports=["/usr/include"])
    conn = await capnp.AsyncIoStream.create_connection(host=args.host, port=args.rpc_port)
    client = capnp.TwoPartyClient(conn)
    inference = client.bootstrap().cast_as(schema.Inference)
    params = {"apiKey": args.api_key, "maxTokens": args.max_tokens, "priority": "production"}
    t0 = time.monotonic()
    reply = await inference.inference(
        modelId=args.model, inputData={"chat": [{"role": "user", "content": args.question}]},
        params=params)
    dt = time.monotonic() - t0
    result = reply.result
    if result.which() == "error":
        print(f"[rpc unary     {dt:5.2f} s] error {result.error.code}: {result.error.message}")
        return 1
    r = result.response
    print(f"[rpc unary     {dt:5.2f} s] {r.text!r} (finish {r.finishReason}, site {r.site}, "
          f"request {r.requestId})")

    class sink(schema.TokenSink.Server):
        def __init__(self):
            self.pieces = []
            self.result = None

        async def token(self, text, tokenId, **kwargs):
            self.pieces.append(text)

        async def done(self, result, **kwargs):
            self.result = result.to_dict()

    s = sink()
    t0 = time.monotonic()
    await inference.inferenceStream(
        modelId=args.model, inputData={"chat": [{"role": "user", "content": args.question}]},
        params=params, sink=s)
    dt = time.monotonic() - t0
    print(f"[rpc stream    {dt:5.2f} s] {len(s.pieces)} pieces: {''.join(s.pieces)!r}")
    return 0


def ask_rpc(args):
    import capnp

    return asyncio.run(capnp.run(ask_rpc_async(args, capnp)))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("question")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--http-port", type=int, default=8080)
    p.add_argument("--rpc-port", type=int, default=8081)
    p.add_argument("--model", default="smollm2")
    p.add_argument("--api-key", default="bastion-demo-key")
    p.add_argument("--max-tokens", type=int, default=48)
    args = p.parse_args()
    ask_http(args)
    return ask_rpc(args)


if __name__ == "__main__":
    sys.exit(main())
