#!/usr/bin/env bash
# Agent builds against each other and against the raw echo server, interleaved in one run:
# for each round, 4 connections (aggregate calls/s) and 1 connection (p50) of 1-byte genops,
# raw first, then the vectored echo (the agent's recvmsg/writev, no protocol work), then each
# agent given; pinned to CPU 0 and unpinned. Prints each one's ratio to raw.
#   benches/c/compare.sh AGENT_BINARY...   (ROUNDS, default 6; CALLS per connection, 30000)
set -euo pipefail
rounds=${ROUNDS:-6}
calls=${CALLS:-30000}
[ $# -ge 1 ] || { echo "usage: $0 AGENT_BINARY..." >&2; exit 2; }
root=$(cd "$(dirname "$0")/../.." && pwd)
dir=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$dir"' EXIT
cc -O2 -pthread -o "$dir/rpc-client" "$root/benches/c/rpc-client.c"
cc -O2 -pthread -o "$dir/echo-server" "$root/benches/c/echo-server.c"
wait_for() { for _ in $(seq 100); do [ -S "$1" ] && return; sleep 0.05; done; echo "no $1" >&2; exit 1; }
field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p"; }
ratio() { echo "scale=2; $1 / $2" | bc; }
for pin in "taskset -c 0" ""; do
    label=${pin:+pinned}; label=${label:-unpinned}
    pids=()
    i=0
    for agent in "$@"; do
        RUST_LOG=${RUST_LOG:-info} $pin "$agent" -a "unix://$dir/a$i.sock" --vaccel-config plugins=noop \
            >"$dir/agent$i.log" 2>&1 &
        pids+=($!)
        wait_for "$dir/a$i.sock"
        i=$((i + 1))
    done
    reply=$($pin "$dir/rpc-client" agent "$dir/a0.sock" 1 100 1 | field reply_bytes)
    $pin "$dir/echo-server" "$dir/raw.sock" "$reply" &
    pids+=($!)
    $pin "$dir/echo-server" "$dir/vec.sock" "$reply" vectored &
    pids+=($!)
    wait_for "$dir/raw.sock"
    wait_for "$dir/vec.sock"
    for round in $(seq "$rounds"); do
        for conns in 4 1; do
            raw=$($pin "$dir/rpc-client" raw "$dir/raw.sock" 1 "$calls" "$conns" "$reply")
            rt=$(echo "$raw" | field calls_per_s)
            rp=$(echo "$raw" | field p50_us)
            line="$label round=$round conns=$conns raw: ${rt} calls/s p50 ${rp} us"
            vec=$($pin "$dir/rpc-client" raw "$dir/vec.sock" 1 "$calls" "$conns" "$reply")
            line="$line | vectored echo: $(ratio "$(echo "$vec" | field calls_per_s)" "$rt")x calls/s"
            for j in $(seq 0 $((i - 1))); do
                out=$($pin "$dir/rpc-client" agent "$dir/a$j.sock" 1 "$calls" "$conns")
                line="$line | agent $((j + 1)): $(ratio "$(echo "$out" | field calls_per_s)" "$rt")x calls/s,"
                line="$line p50 $(ratio "$(echo "$out" | field p50_us)" "$rp")x"
            done
            echo "$line"
        done
    done
    kill "${pids[@]}"
    wait "${pids[@]}" 2>/dev/null || true
    rm -f "$dir"/*.sock
done
