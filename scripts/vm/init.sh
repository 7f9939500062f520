#!/bin/sh
# PID 1 of the guest that scripts/vm-test.sh boots: loads the virtio-vsock modules, runs the
# example programs against the agents on the host (hybrid vsock: CID 2, one port per agent),
# prints every result to the serial console between VMTEST markers for the host to check,
# then powers off with a session still open. Settings come from /vmtest.env, written by the
# host script. busybox sh: POSIX only.

export PATH=/bin
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /tmp
mount -t tmpfs tmp /tmp

# shellcheck disable=SC1091 # written into the initramfs by vm-test.sh
. /vmtest.env

echo "VMTEST booted"
while read -r module; do
    if ! insmod "/modules/$module.ko"; then
        echo "VMTEST insmod-failed $module"
    fi
done < /modules/order
if [ -c /dev/vsock ]; then
    echo "VMTEST vsock-ready"
else
    echo "VMTEST vsock-missing"
fi

# step NAME PORT PROGRAM ARGS...: runs PROGRAM against the agent on vsock port PORT; its
# output lines are prefixed "VMTEST NAME| ", its exit status follows on "VMTEST END NAME rc=N".
step() {
    name=$1
    port=$2
    shift 2
    echo "VMTEST BEGIN $name"
    VACCEL_RPC_ADDRESS="vsock://2:$port" "$@" > "/tmp/$name.out" 2>&1
    rc=$?
    sed "s/^/VMTEST $name| /" "/tmp/$name.out"
    echo "VMTEST END $name rc=$rc"
}

export VACCEL_PLUGINS=rpc
step classify "$PORT_NOOP" /bin/classify /data/example.jpg 3
step exec "$PORT_EXEC" /bin/exec "$EXEC_LIB" 1
step detect "$PORT_CPU" /bin/detect /data/astronaut.jpg 1
if [ "$BENCH" = 1 ]; then
    # The client's own timing of the calls: the profiling region's "[prof] detect" line.
    VACCEL_PROFILING_ENABLED=1 VACCEL_LOG_LEVEL=3 \
        step bench "$PORT_BENCH" /bin/detect /data/astronaut.jpg "$BENCH_CALLS"
fi

# A session left open: a client that loops forever, then the guest powers off under it. The
# agent must notice the connection is gone and release the session.
VACCEL_RPC_ADDRESS="vsock://2:$PORT_HOLD" /bin/noop 2000000000 > /tmp/hold.out 2>&1 &
tries=0
until grep -q "Initialized session" /tmp/hold.out 2>/dev/null; do
    tries=$((tries + 1))
    if [ "$tries" -gt 300 ]; then
        break
    fi
    sleep 0.1
done
sed "s/^/VMTEST hold| /" /tmp/hold.out
echo "VMTEST holding"
echo "VMTEST poweroff"
poweroff -f
