#!/usr/bin/env bash
# The main job, end to end: build everything in release mode, then run the example programs
# through the bundled plugins, as upstream's run-examples script does.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --workspace
bin=target/release
img=examples/data/example.jpg
labels=examples/data/imagenet.txt
lib=$bin/libmytestlib.so

run() {
    echo
    echo "\$ $*"
    env "$@"
}

run VACCEL_PLUGINS=noop "$bin/noop" 1
run VACCEL_PLUGINS=noop "$bin/classify" "$img" 2
run VACCEL_PLUGINS=libvaccel-noop.so "$bin/detect_generic" "$img" 1
run VACCEL_PLUGINS=noop "$bin/sgemm" 1
run VACCEL_PLUGINS=noop "$bin/minmax" 2048 examples/data/input_2048.csv 5 100
run VACCEL_PLUGINS=noop "$bin/tf_inference" "$img" examples/data "$labels" 1
run VACCEL_PLUGINS=exec "$bin/exec" "$lib" 1
run VACCEL_PLUGINS=exec "$bin/exec_with_resource" "$lib" 1
run VACCEL_PLUGINS=exec "$bin/exec_serialized" "$lib" 1
run VACCEL_PLUGINS=mbench VACCEL_PROFILING_ENABLED=1 VACCEL_LOG_LEVEL=3 "$bin/mbench" 20 "$img" 1

# The same programs through the rpc plugin and a real agent on a unix socket.
sock_dir=$(mktemp -d)
trap 'kill "$agent" 2>/dev/null; wait "$agent" 2>/dev/null; rm -rf "$sock_dir"' EXIT
echo
echo "\$ $bin/vaccel-rpc-agent -a unix://$sock_dir/vaccel.sock --vaccel-config plugins=noop &"
"$bin/vaccel-rpc-agent" -a "unix://$sock_dir/vaccel.sock" --vaccel-config plugins=noop &
agent=$!
for _ in $(seq 100); do [ -S "$sock_dir/vaccel.sock" ] && break; sleep 0.05; done
rpc=(VACCEL_PLUGINS=rpc "VACCEL_RPC_ADDRESS=unix://$sock_dir/vaccel.sock")
run "${rpc[@]}" "$bin/classify" "$img" 2
run "${rpc[@]}" "$bin/exec" "$lib" 1
run "${rpc[@]}" "$bin/tf_inference" "$img" examples/data "$labels" 1
kill "$agent"
wait "$agent" 2>/dev/null || true
trap - EXIT
rm -rf "$sock_dir"
echo
echo "All examples ran, locally and through the agent."
