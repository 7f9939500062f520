#!/usr/bin/env bash
# The C client (rpc-client.c) against the release agent (noop plugin) and the raw echo server
# (echo-server.c) in the same run, pinned to CPU 0 and unpinned. Build the agent first:
#   cargo build --release -p vaccel-agent --bin vaccel-rpc-agent
# then: benches/c/run.sh [RUNS]   (from the repository root)
# Per run and case it prints the raw and the agent's measurement and their ratio. The
# 4-connection throughput of one run is the median of ALTERNATIONS (default 5) agent runs,
# each against the mean of the raw runs just before and after it (raw, agent, raw, agent...,
# raw): on these VMs the raw server alone moves by 10-15% from one run to the next, so a
# single pair says little (benches/c/compare.sh shows that noise floor as "raw again").
set -euo pipefail
runs=${1:-3}
alternations=${ALTERNATIONS:-5}
root=$(cd "$(dirname "$0")/../.." && pwd)
agent_bin=${AGENT:-$root/target/release/vaccel-rpc-agent}
dir=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$dir"' EXIT
cc -O2 -pthread -o "$dir/rpc-client" "$root/benches/c/rpc-client.c"
cc -O2 -pthread -o "$dir/echo-server" "$root/benches/c/echo-server.c"
wait_for() { for _ in $(seq 100); do [ -S "$1" ] && return; sleep 0.05; done; echo "no $1" >&2; exit 1; }
field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p"; }
ratio() { echo "scale=3; $1 / $2" | bc; }
median() { sort -n | awk '{v[NR]=$1} END {printf "%.3f", NR % 2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
for pin in "taskset -c 0" ""; do
    label=${pin:+pinned}; label=${label:-unpinned}
    RUST_LOG=${RUST_LOG:-info} $pin "$agent_bin" -a "unix://$dir/agent.sock" --vaccel-config plugins=noop \
        >"$dir/agent.log" 2>&1 &
    agent=$!
    wait_for "$dir/agent.sock"
    reply=$($pin "$dir/rpc-client" agent "$dir/agent.sock" 1 100 1 | field reply_bytes)
    $pin "$dir/echo-server" "$dir/raw.sock" "$reply" &
    raw=$!
    wait_for "$dir/raw.sock"
    client() { $pin "$dir/rpc-client" "$1" "$dir/$1.sock" "$2" "$3" "$4" "$reply"; }
    for run in $(seq "$runs"); do
        # One connection: p50 latency, 1-byte and 1 MiB images.
        for image in 1 1048576; do
            calls=$(( image > 1 ? 300 : 20000 ))
            r=$(client raw "$image" "$calls" 1)
            a=$(client agent "$image" "$calls" 1)
            echo "$label run=$run image=$image conns=1 p50: raw $(echo "$r" | field p50_us) us," \
                "ours $(echo "$a" | field p50_us) us: $(ratio "$(echo "$a" | field p50_us)" "$(echo "$r" | field p50_us)")x" \
                "(p99 raw $(echo "$r" | field p99_us), ours $(echo "$a" | field p99_us))"
        done
        # Four connections: aggregate calls/s, alternated.
        before=$(client raw 1 20000 4 | field calls_per_s)
        ratios=()
        seen=""
        for _ in $(seq "$alternations"); do
            ours=$(client agent 1 20000 4 | field calls_per_s)
            after=$(client raw 1 20000 4 | field calls_per_s)
            ratios+=("$(ratio "$ours" "$(echo "($before + $after) / 2" | bc -l)")")
            seen="$seen $ours/$after"
            before=$after
        done
        echo "$label run=$run image=1 conns=4 calls/s: median $(printf '%s\n' "${ratios[@]}" | median)x" \
            "of ${ratios[*]} (ours/raw after each:$seen)"
    done
    kill "$agent" "$raw"; wait "$agent" "$raw" 2>/dev/null || true
    rm -f "$dir/agent.sock" "$dir/raw.sock"
done
