#!/usr/bin/env bash
# The main job, end to end: build everything in release mode, run the example programs through
# the bundled plugins (as upstream's run-examples script does), then real work: an agent with
# the CPU backends on a unix socket, face detection and classification on real models through
# the rpc plugin, with what was found and how long it took.
set -euo pipefail
cd "$(dirname "$0")/.."

# LiteRT for the tflite backend (the ai-edge-litert wheel), if python3 lacks it.
./scripts/runtimes.sh
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

# Real work: the CPU backends (blas, tflite, onnx, tf, torch) behind an agent; the programs
# reach them through the rpc plugin.
echo
echo "\$ $bin/vaccel-rpc-agent -a unix://$sock_dir/cpu.sock --vaccel-config plugins=cpu &"
"$bin/vaccel-rpc-agent" -a "unix://$sock_dir/cpu.sock" --vaccel-config plugins=cpu 2>"$sock_dir/agent.log" &
agent=$!
for _ in $(seq 100); do [ -S "$sock_dir/cpu.sock" ] && break; sleep 0.05; done
rpc=(VACCEL_PLUGINS=rpc "VACCEL_RPC_ADDRESS=unix://$sock_dir/cpu.sock")
face=fixtures/images/astronaut.jpg
run "${rpc[@]}" "$bin/detect" "$face" 1
run "${rpc[@]}" "$bin/classify" examples/data/example.jpg 1
run "${rpc[@]}" "$bin/classify" fixtures/images/chelsea.jpg 1 fixtures/models/dog_breeds
# Timing: the agent keeps its models loaded, so these calls are image in, boxes out.
calls=50
ns=$(env "${rpc[@]}" VACCEL_PROFILING_ENABLED=1 VACCEL_LOG_LEVEL=3 "$bin/detect" "$face" "$calls" |
    sed -n 's/.*\[prof\] detect: total_time: \([0-9]*\) nsec.*/\1/p')
awk -v ns="$ns" -v n="$calls" 'BEGIN {
    printf "\nface detection through the agent: %d calls, %.2f ms per call (decode, model, boxes, result image)\n", n, ns / n / 1e6
}'
kill "$agent"
wait "$agent" 2>/dev/null || true
trap - EXIT
rm -rf "$sock_dir"
echo
echo "All examples ran, locally and through the agent."
