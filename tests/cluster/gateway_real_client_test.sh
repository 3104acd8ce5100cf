#!/usr/bin/env bash
# Runs one real-client test script with the project venv's Python; skips (77) when the venv is
# missing, saying how to create it.
python="$1"
shift
if [ ! -x "$python" ]; then
  echo "SKIP: no project venv at $python; run scripts/bootstrap to create .venv"
  exit 77
fi
exec "$python" "$@"
