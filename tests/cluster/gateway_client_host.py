"""Shared by the real-client tests: start gateway_test_host, read its ports, stop it at the end.

A missing Python package means the venv was not bootstrapped: exit 77 (CTest's skip) and say so.
"""
import subprocess
import sys

SKIP = 77
API_KEY = "sk-test-key"


def require(module_name):
    try:
        return __import__(module_name)
    except ImportError as e:
        print(f"SKIP: Python package '{module_name}' is missing ({e}); run scripts/bootstrap "
              "to create .venv from tools/requirements.txt")
        sys.exit(SKIP)


class host:
    def __init__(self, binary):
        self.proc = subprocess.Popen([binary], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True)
        line = self.proc.stdout.readline()
        fields = dict(kv.split("=") for kv in line.split())
        self.http_port = int(fields["http_port"])
        self.rpc_port = int(fields["rpc_port"])

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.proc.stdin.close()
        rc = self.proc.wait(timeout=20)
        assert rc == 0, f"gateway_test_host exited {rc}"


async def rpc_session(capnp, schema_path, port):
    """pycapnp connected to the Inference service on `port`: (client, inference capability,
    sink class); keep the client as long as the capability, it owns the connection. The sink collects streamed token texts in `tokens` and the final result, as a
    dict, in `result`."""
    # The schema imports /capnp/c++.capnp, which Debian installs under /usr/include.
    schema = capnp.load(schema_path, imports=["/usr/include"])

    class sink(schema.TokenSink.Server):
        def __init__(self):
            self.tokens = []
            self.result = None

        async def token(self, text, tokenId, **kwargs):
            self.tokens.append(text)

        async def done(self, result, **kwargs):
            self.result = result.to_dict()

    conn = await capnp.AsyncIoStream.create_connection(host="127.0.0.1", port=port)
    client = capnp.TwoPartyClient(conn)
    return client, client.bootstrap().cast_as(schema.Inference), sink
