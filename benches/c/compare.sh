#!/usr/bin/env bash
# Agent builds against each other and against the raw echo server, interleaved in one run:
# for each round, 4 connections (aggregate calls/s) and 1 connection (p50) of 1-byte genops:
# raw, the vectored echo (the agent's recvmsg/writev, no protocol work), each agent given,
# then raw again; pinned to CPU 0 and unpinned. Each agent's ratio is to the mean of the two
# raw runs that bracket it; "raw again" (the second raw run over the first) shows how much
# the machine itself moved within the round. Ends with each column's median, minimum and
# maximum over the rounds.
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
ratio() { echo "scale=3; $1 / $2" | bc; }
# Median, minimum and maximum of the numbers on stdin.
stats() { sort -n | awk '{v[NR]=$1} END {m = NR % 2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2; printf "median %.2fx (%.2f-%.2f, %d rounds)", m, v[1], v[NR], NR}'; }
agents=("$@")
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
    rm -f "$dir"/col.*
    for round in $(seq "$rounds"); do
        for conns in 4 1; do
            raw=$($pin "$dir/rpc-client" raw "$dir/raw.sock" 1 "$calls" "$conns" "$reply")
            vec=$($pin "$dir/rpc-client" raw "$dir/vec.sock" 1 "$calls" "$conns" "$reply")
            outs=()
            for j in $(seq 0 $((i - 1))); do
                outs+=("$($pin "$dir/rpc-client" agent "$dir/a$j.sock" 1 "$calls" "$conns")")
            done
            again=$($pin "$dir/rpc-client" raw "$dir/raw.sock" 1 "$calls" "$conns" "$reply")
            r1=$(echo "$raw" | field calls_per_s)
            r2=$(echo "$again" | field calls_per_s)
            rt=$(echo "($r1 + $r2) / 2" | bc -l)
            rp=$(echo "($(echo "$raw" | field p50_us) + $(echo "$again" | field p50_us)) / 2" | bc -l)
            x=$(ratio "$r2" "$r1")
            echo "$x" >>"$dir/col.$conns.again"
            line="$label round=$round conns=$conns raw: ${r1} then ${r2} calls/s (again: ${x}x)"
            x=$(ratio "$(echo "$vec" | field calls_per_s)" "$rt")
            echo "$x" >>"$dir/col.$conns.vec"
            line="$line | vectored echo: ${x}x calls/s"
            for j in $(seq 0 $((i - 1))); do
                x=$(ratio "$(echo "${outs[$j]}" | field calls_per_s)" "$rt")
                p=$(ratio "$(echo "${outs[$j]}" | field p50_us)" "$rp")
                echo "$x" >>"$dir/col.$conns.agent$j"
                echo "$p" >>"$dir/col.$conns.p50.agent$j"
                line="$line | agent $((j + 1)): ${x}x calls/s, p50 ${p}x"
            done
            echo "$line"
        done
    done
    for conns in 4 1; do
        echo "$label conns=$conns summary, calls/s against raw:"
        echo "  raw again: $(stats <"$dir/col.$conns.again")"
        echo "  vectored echo: $(stats <"$dir/col.$conns.vec")"
        for j in $(seq 0 $((i - 1))); do
            echo "  agent $((j + 1)) ($(basename "${agents[$j]}")): $(stats <"$dir/col.$conns.agent$j"), p50 $(stats <"$dir/col.$conns.p50.agent$j")"
        done
    done
    kill "${pids[@]}"
    wait "${pids[@]}" 2>/dev/null || true
    rm -f "$dir"/*.sock
done
