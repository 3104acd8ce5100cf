"""`bastion health` against a real bastion-node serving SmolLM2, with the fake NVML standing in
for a driver: the table names the worker (kind, backend, health) and each GPU's name, PCI
address, temperature and memory in use; the JSON lines carry the same figures, and the tokens
of a request just answered; a node that does not answer is reported down and makes the exit
code 1; --config reads the site's own address from its config.

  node_health_cli_test.py BASTION_NODE BASTION_CLI FAKE_NVML
"""
import json
import os
import re
import subprocess
import sys
import urllib.request

from gateway_client_host import API_KEY
from node_host import MODEL_ID, free_port, real_node


def health(cli, *args):
    r = subprocess.run([cli, "health", *args], capture_output=True, text=True, timeout=30)
    return r.returncode, r.stdout, r.stderr


def complete(port):
    body = json.dumps({"model": MODEL_ID, "prompt": "The capital of France is",
                       "max_tokens": 4, "temperature": 0}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/completions", data=body,
                                 headers={"Authorization": f"Bearer {API_KEY}",
                                          "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.load(r)


def main():
    node_binary, cli, fake_nvml = sys.argv[1:4]
    os.environ["BASTION_NVML_LIBRARY"] = fake_nvml  # the node samples it at start
    with real_node(node_binary) as node:
        at = f"127.0.0.1:{node.http_port}"
        rc, out, err = health(cli, "--node", at)
        print(out, err)
        assert rc == 0, (rc, out, err)
        assert f"{at}  {at}  alive, ready (serving as primary)" in out, out
        # Columns are as wide as their widest cell.
        assert re.search(r"^  cpu-0 +cpu +cpu +healthy +0 +0 +0/512 ", out, re.M), out
        assert re.search(r"^  0 +Fake H200 +0000:18:00.0 +41 C +123 W +37% +2.0 of 141.0 GiB",
                         out, re.M), out
        assert re.search(r"^  1 +Fake L4 +0001:af:00.0 ", out, re.M), out

        answer = complete(node.http_port)
        generated = answer["usage"]["completion_tokens"]
        assert generated > 0, answer

        down = f"127.0.0.1:{free_port()}"  # nothing listens there
        rc, out, err = health(cli, "--node", at, "--node", down, "--json")
        lines = [json.loads(line) for line in out.splitlines()]
        assert rc == 1, (rc, out, err)
        assert len(lines) == 2, out
        up, gone = lines
        assert up["all_well"] is True and up["alive"] is True and up["ready"] is True, up
        worker = up["workers"][0]
        assert worker["id"] == "cpu-0" and worker["kind"] == "cpu", worker
        assert worker["tokens_generated"] >= generated and worker["steps"] > 0, worker
        assert worker["kv_blocks_total"] == 512, worker
        answered = up["latency_seconds"]["interactive"]
        assert answered["answers"] >= 1 and answered["time_to_first_token_p50"].startswith("<= "), \
            answered
        gpu = up["gpus"][0]
        assert gpu["name"] == "Fake H200" and gpu["memory_used_bytes"] == 2 * 1024 ** 3, gpu
        assert gone["all_well"] is False and "refused" in gone["error"], gone

        config = os.path.join(node.dir.name, "node.toml")
        rc, out, err = health(cli, "--config", config)
        assert rc == 0, (rc, out, err)
        assert out.startswith(f"prod  {at}  alive, ready"), out

        rc, out, err = health(cli)
        assert rc == 2 and "--config is required (or --node HOST:PORT)" in err, (rc, err)
    print("bastion health: all checks passed")


if __name__ == "__main__":
    main()
