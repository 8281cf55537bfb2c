#!/usr/bin/env bash
# Load run of the worker on loopback: starts `infer serve` with the embedded
# haiku model, runs loadgen (16 clients x 200 requests by default: valid,
# streaming, malformed and disconnecting), stops the worker, prints the JSON.
# usage: ci/load.sh [BUILD_DIR] [CLIENTS] [REQUESTS]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}; clients=${2:-16}; requests=${3:-200}
model=${MODEL:-golden/models/haiku-qwen2-tiny-q8_0.gguf}
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
log=$(mktemp)
"$build/runtime/infer" serve -m "$model" --host 127.0.0.1 --port "$port" --threads 1 >"$log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -f "$log"' EXIT
for _ in $(seq 100); do
	curl -sf "http://127.0.0.1:$port/health" >/dev/null && break
	kill -0 $pid 2>/dev/null || { cat "$log"; echo "error: worker died at start"; exit 1; }
	sleep 0.1
done
"$build/harness/loadgen" --url "http://127.0.0.1:$port" --pid $pid \
	--clients "$clients" --requests "$requests" --seconds 600
