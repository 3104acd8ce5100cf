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
