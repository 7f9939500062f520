#!/usr/bin/env bash
# Guest end-to-end test: boots a QEMU guest (TCG, Debian's cloud kernel, a busybox initramfs)
# whose vhost-user vsock device is served by vhost-device-vsock, and runs the example programs
# inside it against agents on this host over virtio-vsock. Hybrid vsock, as Firecracker does
# it: the guest connects to CID 2 port P, the host side is the unix socket <uds>_P on which an
# agent listens. Checked from the guest: classify (noop agent, 3 calls), exec of
# libmytestlib.so (exec agent, "output: 20"), detect of the astronaut (cpu agent, the same face
# as this host's detect prints), and a session the guest leaves open when it powers off is
# released by its agent. Fails, never skips, when something is missing.
#
#   ./scripts/vm-test.sh           # the checks (CI runs them after ./scripts/test.sh)
#   ./scripts/vm-test.sh --bench   # and 50 detections from the guest over vsock and from the
#                                  # host over the agent's unix socket, compared
#
# VM_TEST_WITHOUT_AGENT=noop|exec|cpu|hold leaves that agent unstarted (the failure it must
# report). Installs what is missing: qemu-system-x86, linux-image-cloud-amd64,
# busybox-static, cpio (apt-get) and vhost-device-vsock (cargo install, pinned).
set -euo pipefail
cd "$(dirname "$0")/.."

VHOST_DEVICE_VSOCK_VERSION=0.3.0
PORT_NOOP=2048
PORT_EXEC=2049
PORT_CPU=2050
PORT_HOLD=2051
PORT_BENCH=2052
BENCH_CALLS=50
GUEST_CID=3
# The whole guest run, boot to power-off; TCG boots to /init in about 5 s.
GUEST_TIMEOUT=240
# The virtio and vsock drivers are modules in the cloud kernel; loaded in this order.
MODULES=(virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci vsock
    vmw_vsock_virtio_transport_common vmw_vsock_virtio_transport)

bench=0
case "${1:-}" in
    "") ;;
    --bench) bench=1 ;;
    *)
        echo "usage: $0 [--bench]" >&2
        exit 2
        ;;
esac

started=$(date +%s)
say() { echo "vm-test: $*" >&2; }

tmp=$(mktemp -d)
pids=()
cleanup() {
    local pid
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$tmp"
}
trap cleanup EXIT
# A signal ends the script through its EXIT trap.
trap 'exit 1' INT TERM

# fail MESSAGE [LOG...]: the failure, then the tail of each log named.
fail() {
    local log
    say "FAIL: $1"
    shift
    for log in "$@"; do
        if [ -f "$log" ]; then
            echo "--- last lines of $(basename "$log") ---" >&2
            tail -n 30 "$log" >&2
        fi
    done
    exit 1
}

# --- What the test needs -------------------------------------------------------------------

missing=()
command -v qemu-system-x86_64 >/dev/null 2>&1 || missing+=(qemu-system-x86)
command -v cpio >/dev/null 2>&1 || missing+=(cpio)
dpkg -s busybox-static >/dev/null 2>&1 || missing+=(busybox-static)
compgen -G "/boot/vmlinuz-*-cloud-amd64" >/dev/null || missing+=(linux-image-cloud-amd64)
if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" \
        >/dev/null
fi
if ! command -v vhost-device-vsock >/dev/null 2>&1; then
    say "installing vhost-device-vsock $VHOST_DEVICE_VSOCK_VERSION (cargo install, minutes)"
    cargo install --quiet --locked vhost-device-vsock --version "$VHOST_DEVICE_VSOCK_VERSION"
fi
command -v vhost-device-vsock >/dev/null 2>&1 || fail "vhost-device-vsock is not on PATH after cargo install"
# The cpu agent's backends find LiteRT and onnxruntime through python3.
./scripts/runtimes.sh

kernel=$(find /boot -maxdepth 1 -name 'vmlinuz-*-cloud-amd64' | sort -V | tail -n 1)
[ -r "$kernel" ] || fail "no readable cloud kernel in /boot (linux-image-cloud-amd64)"
kver=${kernel#/boot/vmlinuz-}
moddir=/lib/modules/$kver
[ -d "$moddir" ] || fail "no modules directory $moddir for $kernel"
bios=()
[ -f /usr/share/qemu/qboot.rom ] && bios=(-bios /usr/share/qemu/qboot.rom)

# Timings are taken on optimized code: --bench builds and runs release binaries.
profile=(--profile dev)
profile_dir=debug
if [ $bench = 1 ]; then
    profile=(--release)
    profile_dir=release
fi
say "building the agent and the example programs ($profile_dir)"
cargo build --quiet "${profile[@]}" -p vaccel-agent -p vaccel-examples -p mytestlib
host_bin=${CARGO_TARGET_DIR:-target}/$profile_dir
agent_bin=$host_bin/vaccel-rpc-agent
# The guest's programs: the thin client (static, rpc transport only), which
# scripts/thin-client.sh builds and checks (sizes, no shared-library dependency).
guest_bin=$(scripts/thin-client.sh | tail -n 1) ||
    fail "scripts/thin-client.sh could not build the guest's programs"

# --- The initramfs -------------------------------------------------------------------------

stage=$tmp/root
mkdir -p "$stage"/{bin,modules,data,proc,sys,dev,tmp}
cp /bin/busybox "$stage/bin/busybox"
ln -s busybox "$stage/bin/sh"
cp scripts/vm/init.sh "$stage/init"
chmod 755 "$stage/init"
for module in "${MODULES[@]}"; do
    ko=$(find "$moddir" -name "$module.ko*" | head -n 1)
    [ -n "$ko" ] || fail "module $module not found under $moddir"
    case "$ko" in
        *.ko) cp "$ko" "$stage/modules/$module.ko" ;;
        *.ko.xz) xz -dc "$ko" >"$stage/modules/$module.ko" ;;
        *.ko.zst) zstd -qdc "$ko" >"$stage/modules/$module.ko" ;;
        *) fail "unknown module file $ko" ;;
    esac
    echo "$module" >>"$stage/modules/order"
done
for program in classify exec detect noop; do
    [ -x "$guest_bin/$program" ] || fail "no $program in $guest_bin"
    cp "$guest_bin/$program" "$stage/bin/$program"
done
cp examples/data/example.jpg fixtures/images/astronaut.jpg "$stage/data/"
# The exec agent opens the library at the path the client names: the same path on both sides.
exec_lib=$tmp/lib/libmytestlib.so
mkdir -p "$(dirname "$exec_lib")" "$stage$(dirname "$exec_lib")"
cp "$host_bin/libmytestlib.so" "$exec_lib"
cp "$exec_lib" "$stage$exec_lib"
cat >"$stage/vmtest.env" <<EOF
PORT_NOOP=$PORT_NOOP
PORT_EXEC=$PORT_EXEC
PORT_CPU=$PORT_CPU
PORT_HOLD=$PORT_HOLD
PORT_BENCH=$PORT_BENCH
BENCH=$bench
BENCH_CALLS=$BENCH_CALLS
EXEC_LIB=$exec_lib
EOF
(cd "$stage" && find . | cpio --quiet -o -H newc) >"$tmp/initramfs.cpio"
initrd_mb=$(($(stat -c %s "$tmp/initramfs.cpio") / 1048576))
# The initramfs is unpacked into guest memory next to its own copy.
mem_mb=$((initrd_mb * 3 + 256))
[ "$mem_mb" -lt 512 ] && mem_mb=512
say "initramfs: ${initrd_mb} MB (programs from $guest_bin), guest memory ${mem_mb} MB"

# --- The agents and the vsock device -------------------------------------------------------

uds=$tmp/vsock
agents=()
# start_agent NAME PORT PLUGINS [ARGS...]: an agent on the host side of guest port PORT.
start_agent() {
    local name=$1 port=$2 plugins=$3
    shift 3
    if [ "${VM_TEST_WITHOUT_AGENT:-}" = "$name" ]; then
        say "not starting the $name agent (VM_TEST_WITHOUT_AGENT)"
        return
    fi
    agents+=("$name")
    RUST_LOG=info "$agent_bin" -a "unix://${uds}_$port" --vaccel-config "plugins=$plugins" "$@" \
        </dev/null >"$tmp/agent-$name.log" 2>&1 &
    pids+=($!)
}
# wait_for FILE NEEDLE SECONDS: true once FILE contains NEEDLE, false at the deadline.
wait_for() {
    local deadline=$(($(date +%s) + $3))
    until grep -qF -- "$2" "$1" 2>/dev/null; do
        [ "$(date +%s)" -lt "$deadline" ] || return 1
        sleep 0.1
    done
}
start_agent noop $PORT_NOOP noop
start_agent exec $PORT_EXEC exec
start_agent cpu $PORT_CPU cpu
start_agent hold $PORT_HOLD noop
if [ $bench = 1 ]; then
    # Its own agent, so that its metrics hold only the compared calls.
    start_agent bench $PORT_BENCH cpu --metrics-address 127.0.0.1:0
fi
for name in "${agents[@]}"; do
    wait_for "$tmp/agent-$name.log" "Listening on" 20 ||
        fail "the $name agent did not start" "$tmp/agent-$name.log"
done

vhost_sock=$tmp/vhost-user.sock
vhost-device-vsock --vm "guest-cid=$GUEST_CID,socket=$vhost_sock,uds-path=$uds" \
    >"$tmp/vhost-device-vsock.log" 2>&1 &
pids+=($!)
deadline=$(($(date +%s) + 10))
until [ -S "$vhost_sock" ]; do
    [ "$(date +%s)" -lt "$deadline" ] ||
        fail "vhost-device-vsock did not create $vhost_sock" "$tmp/vhost-device-vsock.log"
    sleep 0.1
done

# --- The host's side of the comparisons ----------------------------------------------------

# The lines classify prints on the noop plugin in-process: the guest must print the same.
VACCEL_PLUGINS=noop "$host_bin/classify" examples/data/example.jpg 3 >"$tmp/classify.host"
# The face as this host's detect finds it through the same cpu agent.
cpu_env=(VACCEL_PLUGINS=rpc "VACCEL_RPC_ADDRESS=unix://${uds}_$PORT_CPU")
if [ -S "${uds}_$PORT_CPU" ]; then
    env "${cpu_env[@]}" "$host_bin/detect" fixtures/images/astronaut.jpg 1 >"$tmp/detect.host" ||
        fail "detect on the host through the cpu agent failed" "$tmp/detect.host" "$tmp/agent-cpu.log"
fi

# The bench: one agent with plugins=cpu serves BENCH_CALLS detections from this host over its
# unix socket, then the same from the guest over vsock, then from this host again (the two
# host runs bracket the guest's, so a change of load on this machine shows). The agent's
# view: its Genop duration histogram; the client's: the program's [prof] region.
bench_key='vaccel_agent_request_duration_seconds_sum{method="Genop"}'
bench_count_key='vaccel_agent_request_duration_seconds_count{method="Genop"}'
# bench_sample: the agent's Genop seconds and count so far, on one line.
bench_sample() {
    curl -fsS "http://$metrics_addr/metrics" |
        awk -v k="$bench_key" -v c="$bench_count_key" '$1 == k { s = $2 } $1 == c { n = $2 }
            END { print s, n }'
}
# bench_host FILE: the host's run, its [prof] line into FILE.
bench_host() {
    env VACCEL_PLUGINS=rpc "VACCEL_RPC_ADDRESS=unix://${uds}_$PORT_BENCH" \
        VACCEL_PROFILING_ENABLED=1 VACCEL_LOG_LEVEL=3 \
        "$host_bin/detect" fixtures/images/astronaut.jpg "$BENCH_CALLS" >"$1" 2>&1 ||
        fail "detect on the host through the bench agent failed" "$1"
}
if [ $bench = 1 ]; then
    metrics_addr=$(grep -o 'Metrics on http://[^/]*' "$tmp/agent-bench.log" | sed 's|.*http://||')
    # One warm-up call: the backend loads its model.
    env VACCEL_PLUGINS=rpc "VACCEL_RPC_ADDRESS=unix://${uds}_$PORT_BENCH" \
        "$host_bin/detect" fixtures/images/astronaut.jpg 1 >/dev/null
    sample0=$(bench_sample)
    bench_host "$tmp/bench.host1"
    sample1=$(bench_sample)
fi

# --- The guest -----------------------------------------------------------------------------

console=$tmp/console.log
say "booting the guest (TCG)"
boot_started=$(date +%s)
qemu_rc=0
# In the background, so that a signal to this script is handled at once.
timeout "$GUEST_TIMEOUT" qemu-system-x86_64 \
    -nodefaults -no-user-config -nographic -no-reboot \
    -accel tcg,thread=multi -cpu max -smp 1 -m "${mem_mb}M" \
    -object "memory-backend-memfd,id=mem,size=${mem_mb}M,share=on" -numa node,memdev=mem \
    "${bios[@]}" \
    -kernel "$kernel" -initrd "$tmp/initramfs.cpio" \
    -append "console=ttyS0 quiet panic=-1" \
    -chardev "socket,id=c,path=$vhost_sock" -device vhost-user-vsock-pci,chardev=c \
    -serial "file:$console" -monitor none \
    </dev/null >"$tmp/qemu.log" 2>&1 &
pids+=($!)
wait $! || qemu_rc=$?
guest_s=$(($(date +%s) - boot_started))
[ -f "$console" ] || fail "QEMU did not start (exit status $qemu_rc)" "$tmp/qemu.log"
[ "$qemu_rc" = 124 ] && fail "the guest did not power off within ${GUEST_TIMEOUT}s" "$console"
[ "$qemu_rc" = 0 ] || fail "QEMU exited with status $qemu_rc" "$tmp/qemu.log" "$console"
say "guest ran ${guest_s}s, boot to power-off"

# --- The checks ----------------------------------------------------------------------------

grep -q "^VMTEST booted" "$console" || fail "the guest never reached /init" "$console"
if grep -q "^VMTEST insmod-failed" "$console"; then
    fail "modules did not load in the guest: $(grep '^VMTEST insmod-failed' "$console" | cut -d' ' -f3 | xargs)" "$console"
fi
grep -q "^VMTEST vsock-ready" "$console" || fail "no /dev/vsock in the guest" "$console"

# output NAME: what the guest's program NAME printed.
output() {
    sed -n "s/^VMTEST $1| //p" "$console" | tr -d '\r'
}
# check_step NAME PORT AGENT: the step ran and exited 0, else a message naming the agent.
check_step() {
    local name=$1 port=$2 agent=$3 rc
    rc=$(sed -n "s/^VMTEST END $name rc=\([0-9]*\).*/\1/p" "$console")
    [ -n "$rc" ] || fail "the guest did not run $name" "$console"
    if [ "$rc" != 0 ]; then
        local why="$name in the guest exited $rc"
        if [ ! -S "${uds}_$port" ]; then
            why="$why: no agent listening on ${uds}_$port (the $agent agent, guest's vsock://2:$port)"
        elif ! grep -q "Created session" "$tmp/agent-$agent.log"; then
            why="$why: the $agent agent on ${uds}_$port never got a session (no vsock connection?)"
        fi
        echo "--- $name's output in the guest ---" >&2
        output "$name" >&2
        fail "$why" "$tmp/agent-$agent.log" "$tmp/vhost-device-vsock.log"
    fi
}

check_step classify $PORT_NOOP noop
if ! diff <(output classify) "$tmp/classify.host" >"$tmp/classify.diff"; then
    fail "classify in the guest printed other lines than on the host's noop plugin" "$tmp/classify.diff"
fi
grep -q "Created session 1" "$tmp/agent-noop.log" ||
    fail "the noop agent did not log the guest's session" "$tmp/agent-noop.log"
say "ok: classify in the guest, 3 calls through the noop agent over vsock"

check_step exec $PORT_EXEC exec
output exec | grep -qx "output: 20" || fail "exec in the guest did not print 'output: 20'" "$console"
grep -q "Will return output: 20" "$tmp/agent-exec.log" ||
    fail "the exec agent did not run libmytestlib.so" "$tmp/agent-exec.log"
say "ok: exec in the guest, libmytestlib.so run by the exec agent (output: 20)"

check_step detect $PORT_CPU cpu
faces=$(output detect | grep -c "^detection: face" || true)
[ "$faces" = 1 ] || fail "detect in the guest found $faces faces, not 1" "$console"
if ! diff <(output detect) "$tmp/detect.host" >"$tmp/detect.diff"; then
    fail "detect in the guest printed other lines than on the host" "$tmp/detect.diff"
fi
say "ok: detect in the guest: $(output detect | grep '^detection: face')"

grep -q "^VMTEST holding" "$console" || fail "the guest did not reach the open-session step" "$console"
output hold | grep -q "Initialized session" ||
    fail "the guest's open session never started (hold agent on ${uds}_$PORT_HOLD)" "$console" "$tmp/agent-hold.log"
wait_for "$tmp/agent-hold.log" "releasing 1 session(s)" 15 ||
    fail "the agent did not release the session the guest left open at power-off" "$tmp/agent-hold.log" "$tmp/vhost-device-vsock.log"
wait_for "$tmp/agent-hold.log" "Destroyed session 1" 5 ||
    fail "the agent did not destroy the guest's session 1" "$tmp/agent-hold.log"
say "ok: the session the guest left open at power-off was released by the agent"

if [ $bench = 1 ]; then
    check_step bench $PORT_BENCH bench
    sample2=$(bench_sample)
    bench_host "$tmp/bench.host2"
    sample3=$(bench_sample)
    prof() { grep -o '\[prof\] detect: total_time: [0-9]*' | awk '{ print $NF }'; }
    host1=$(prof <"$tmp/bench.host1")
    host2=$(prof <"$tmp/bench.host2")
    guest=$(output bench | prof)
    if [ -z "$host1" ] || [ -z "$host2" ] || [ -z "$guest" ]; then
        fail "a run of the bench printed no [prof] detect line" "$tmp/bench.host1" "$tmp/bench.host2" "$console"
    fi
    echo "$sample0 $sample1 $sample2 $sample3" | awk -v n="$BENCH_CALLS" -v h1="$host1" \
        -v h2="$host2" -v g="$guest" '{
        if ($4 - $2 != n || $6 - $4 != n || $8 - $6 != n) {
            printf "vm-test: FAIL: the bench agent counted %d, %d, %d calls, not %d each\n",
                $4 - $2, $6 - $4, $8 - $6, n > "/dev/stderr"
            exit 1
        }
        ah1 = ($3 - $1) * 1000 / n; ag = ($5 - $3) * 1000 / n; ah2 = ($7 - $5) * 1000 / n
        ch1 = h1 / 1e6 / n; cg = g / 1e6 / n; ch2 = h2 / 1e6 / n
        printf "bench: %d detections of the astronaut per run, one agent with plugins=cpu, ms per call\n", n
        printf "  %-28s %8s %8s %8s %12s\n", "", "host", "guest", "host", "guest/host"
        printf "  %-28s %8.2f %8.2f %8.2f %12.3f\n", "agent (Genop histogram)", ah1, ag, ah2, 2 * ag / (ah1 + ah2)
        printf "  %-28s %8.2f %8.2f %8.2f %12.3f\n", "client ([prof] detect)", ch1, cg, ch2, 2 * cg / (ch1 + ch2)
        printf "  %-28s %8.2f %8.2f %8.2f %12.1f\n", "client - agent (transport)", ch1 - ah1, cg - ag,
            ch2 - ah2, 2 * (cg - ag) / (ch1 - ah1 + ch2 - ah2)
    }'
fi

say "passed in $(($(date +%s) - started))s"
