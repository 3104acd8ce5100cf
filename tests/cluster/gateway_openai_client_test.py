"""The official `openai` Python client against the gateway's HTTP API: completions and chat,
unary and streaming, and the client's own error types for our error answers."""
import sys

from gateway_client_host import API_KEY, host, require

openai = require("openai")


def main(binary):
    with host(binary) as h:
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{h.http_port}/v1", api_key=API_KEY,
                               max_retries=0, timeout=10)

        models = [m.id for m in client.models.list()]
        assert models == ["echo", "tiny"], models

        c = client.completions.create(model="echo", prompt="the quick brown fox", max_tokens=10)
        assert c.choices[0].text == "the quick brown fox", c
        assert c.choices[0].finish_reason == "stop"
        assert c.usage.completion_tokens == 4 and c.usage.total_tokens == 11, c.usage
        assert len(c.id) == 32

        chat = client.chat.completions.create(
            model="echo", messages=[{"role": "user", "content": "hello there"}], max_tokens=5,
            extra_headers={"X-Request-Id": "openai-py-1"})
        assert chat.id == "openai-py-1"
        assert chat.choices[0].message.role == "assistant"
        assert chat.choices[0].message.content == "hello there", chat

        pieces, finish, usage = [], None, None
        for chunk in client.completions.create(model="echo", prompt="one two three", stream=True):
            for choice in chunk.choices:
                pieces.append(choice.text)
                finish = choice.finish_reason or finish
            usage = chunk.usage or usage
        assert "".join(pieces) == "one two three", pieces
        assert finish == "stop"
        assert usage.completion_tokens == 3

        pieces, roles, usage = [], [], None
        stream = client.chat.completions.create(
            model="echo", messages=[{"role": "user", "content": "a b c"}], stream=True,
            stream_options={"include_usage": True})
        for chunk in stream:
            for choice in chunk.choices:
                pieces.append(choice.delta.content or "")
                if choice.delta.role:
                    roles.append(choice.delta.role)
            if chunk.usage:
                assert chunk.choices == []
                usage = chunk.usage
        assert "".join(pieces) == "a b c", pieces
        assert roles == ["assistant"]
        assert usage.total_tokens == 10, usage

        try:
            client.completions.create(model="no-such-model", prompt="x")
            raise AssertionError("unknown model accepted")
        except openai.NotFoundError as e:
            assert e.status_code == 404 and e.code == "model_not_found", e
        try:
            client.completions.create(model="echo", prompt="x", temperature=5)
            raise AssertionError("temperature 5 accepted")
        except openai.BadRequestError as e:
            assert e.param == "temperature", e
        bad = openai.OpenAI(base_url=f"http://127.0.0.1:{h.http_port}/v1", api_key="sk-wrong",
                            max_retries=0)
        try:
            bad.models.list()
            raise AssertionError("wrong key accepted")
        except openai.AuthenticationError as e:
            assert e.status_code == 401
    print("openai client: completions and chat, unary and streaming, errors: ok")


if __name__ == "__main__":
    main(sys.argv[1])
