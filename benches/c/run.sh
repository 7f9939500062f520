#!/usr/bin/env bash
# The C client (rpc-client.c) against the release agent (noop plugin) and the raw echo server
# (echo-server.c) in the same run, pinned to CPU 0 and unpinned. Build the agent first:
#   cargo build --release -p vaccel-agent --bin vaccel-rpc-agent
# then: benches/c/run.sh [RUNS]   (from the repository root; prints one line per measurement)
set -euo pipefail
runs=${1:-3}
root=$(cd "$(dirname "$0")/../.." && pwd)
agent_bin=${AGENT:-$root/target/release/vaccel-rpc-agent}
dir=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$dir"' EXIT
cc -O2 -pthread -o "$dir/rpc-client" "$root/benches/c/rpc-client.c"
cc -O2 -pthread -o "$dir/echo-server" "$root/benches/c/echo-server.c"
wait_for() { for _ in $(seq 100); do [ -S "$1" ] && return; sleep 0.05; done; echo "no $1" >&2; exit 1; }
for pin in "taskset -c 0" ""; do
    label=${pin:+pinned}; label=${label:-unpinned}
    RUST_LOG=${RUST_LOG:-info} $pin "$agent_bin" -a "unix://$dir/agent.sock" --vaccel-config plugins=noop \
        >"$dir/agent.log" 2>&1 &
    agent=$!
    wait_for "$dir/agent.sock"
    reply=$($pin "$dir/rpc-client" agent "$dir/agent.sock" 1 100 1 | sed 's/.*reply_bytes=//')
    $pin "$dir/echo-server" "$dir/raw.sock" "$reply" &
    raw=$!
    wait_for "$dir/raw.sock"
    for run in $(seq "$runs"); do
        for image in 1 1048576; do
            calls=$(( image > 1 ? 300 : 20000 ))
            for conns in 1 4; do
                [ "$image" -gt 1 ] && [ "$conns" -gt 1 ] && continue
                echo "$label run=$run image=$image raw:   $($pin "$dir/rpc-client" raw "$dir/raw.sock" "$image" "$calls" "$conns" "$reply")"
                echo "$label run=$run image=$image ours:  $($pin "$dir/rpc-client" agent "$dir/agent.sock" "$image" "$calls" "$conns")"
            done
        done
    done
    kill "$agent" "$raw"; wait "$agent" "$raw" 2>/dev/null || true
    rm -f "$dir/agent.sock" "$dir/raw.sock"
done
