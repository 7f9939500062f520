#!/usr/bin/env bash
# Builds the agent and client images (deploy/docker/Dockerfile.agent and Dockerfile) with
# podman, offline: the base is a Debian bookworm made here with debootstrap, the install one
# that scripts/install.sh makes (with the CPU backends' runtimes, scripts/runtime-libs.sh).
# With --test it then runs the two Kubernetes patterns of deploy/k8s as podman pods, with the
# images, arguments, environment, socket path and probes of the rendered manifests:
#
#   sidecar  one pod (no network): the agent and a client container share the socket
#            directory (a podman volume standing in for the emptyDir); the client runs
#            `detect` on the astronaut (one face) and `classify` on the banana.
#   split    the agent in a pod of its own on a network made for the test (internal: nothing
#            outside), reachable as vaccel-agent (the Service's name) over TCP; a client in
#            another container runs the same two programs by that address and scrapes the
#            agent's metrics once. The agent's `--check` is its health check, run once.
#
# A step that breaks fails the script, never skips. --test removes everything it made
# (containers, pods, network, volume, images) on exit; without --test the images stay.
#
#   scripts/images.sh [--test] [--keep] [--profile NAME] [--no-build] [--tf] [--mirror URL]
#
#   --test          run the two patterns after building (what CI runs)
#   --keep          with --test: keep the images
#   --profile NAME  the cargo profile install.sh builds and installs (default release, what
#                   CI builds: the install, before the runtimes, must stay within 300 MB)
#   --no-build      install what is already built (install.sh --no-build)
#   --tf            TensorFlow in the agent image too (the tf plugin; +610 MB)
#   --mirror URL    the Debian mirror debootstrap uses (default: the one apt uses here)
#
# Needs root and Debian's podman (with netavark and aardvark-dns), runc, debootstrap and
# catatonit: it installs the missing ones with apt-get. Containers get runc and fixed ulimits
# from a private containers.conf (CONTAINERS_CONF): nothing under /etc is changed.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

test_pods=0
keep=0
install_args=()
profile=release
tf=0
mirror="${DEBIAN_MIRROR:-}"
usage() {
    sed -n '2,31p' "$0" | sed 's/^# \{0,1\}//'
    exit "${1:-0}"
}
while [ $# -gt 0 ]; do
    case "$1" in
        --test) test_pods=1; shift ;;
        --keep) keep=1; shift ;;
        --profile) profile="${2:?--profile needs a name}"; install_args+=(--profile "$profile"); shift 2 ;;
        --no-build) install_args+=(--no-build); shift ;;
        --tf) tf=1; shift ;;
        --mirror) mirror="${2:?--mirror needs a URL}"; shift 2 ;;
        -h|--help) usage 0 ;;
        *) echo "images.sh: unknown option $1" >&2; usage 2 >&2 ;;
    esac
done

[ "$(id -u)" = 0 ] || { echo "images.sh: debootstrap and podman need root here" >&2; exit 1; }
# The Debian packages this needs, installed when missing.
missing=()
for tool in podman runc debootstrap catatonit; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

agent_image=vaccel-rs/vaccel-rpc-agent:latest
client_image=vaccel-rs/vaccel:latest
base_image=localhost/bookworm-min:latest
pause_image=localhost/vaccel-pause:latest
run_id="vaccel-images-$$"

work="$(mktemp -d "${TMPDIR:-/tmp}/vaccel-images.XXXXXX")"
# What this run made, removed on exit (the images only with --test and without --keep).
containers=()
pods=()
networks=()
volumes=()
images=()
failed_logs=()

# Runtime and limits every podman call uses: crun refuses some hosts' hybrid cgroup layout,
# and root may not be able to raise its hard limits to podman's defaults.
cat > "$work/containers.conf" <<'EOF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
runtime = "runc"
EOF
export CONTAINERS_CONF="$work/containers.conf"

cleanup() {
    local status=$?
    set +e
    if [ "$status" != 0 ]; then
        for c in "${failed_logs[@]}"; do
            echo "--- log of $c (last 40 lines)" >&2
            podman logs --tail 40 "$c" >&2
        done
    fi
    for c in "${containers[@]}"; do podman rm -f -v -t 0 "$c" >/dev/null; done
    for p in "${pods[@]}"; do podman pod rm -f "$p" >/dev/null; done
    for n in "${networks[@]}"; do podman network rm -f "$n" >/dev/null; done
    for v in "${volumes[@]}"; do podman volume rm -f "$v" >/dev/null; done
    if [ "$test_pods" = 1 ] && [ "$keep" = 0 ]; then
        for i in "${images[@]}"; do podman rmi -f "$i" >/dev/null 2>&1; done
    fi
    rm -rf "$work"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

started=$SECONDS
timings=()
step_name=
step_start=$SECONDS
# Starts a step; "done" ends the last one. Each step's time goes to the closing summary.
step() {
    [ -z "$step_name" ] || timings+=("$step_name: $((SECONDS - step_start)) s")
    step_name="$1"
    step_start=$SECONDS
    [ "$1" = "done" ] || echo "== $1"
}
fail() {
    echo "FAIL: $*" >&2
    exit 1
}

# --- The install, with the agent's runtimes and the client's data.
step "install (scripts/install.sh ${install_args[*]})"
ctx="$work/context"
./scripts/install.sh --prefix /opt/vaccel --destdir "$ctx/stage" "${install_args[@]}"
# The default install's budget: 300 MB by `du`, for the release build users install (a dev
# build keeps unoptimized code and is only reported).
installed_kib=$(du -sk "$ctx/stage/opt/vaccel" | cut -f1)
echo "install: $installed_kib KiB by du -sk (profile $profile; budget for release: 300 MB)"
if [ "$profile" = release ] && [ "$installed_kib" -gt $((300 * 1000 * 1000 / 1024)) ]; then
    du -sk "$ctx/stage/opt/vaccel"/*/* | sort -n | tail -n 15 >&2
    fail "the release install is $installed_kib KiB, over its 300 MB budget"
fi
step "runtimes (scripts/runtime-libs.sh)"
if [ "$tf" = 1 ]; then
    ./scripts/runtime-libs.sh "$ctx/stage/opt/vaccel/runtimes" --tf
else
    ./scripts/runtime-libs.sh "$ctx/stage/opt/vaccel/runtimes"
fi
install -m 0644 fixtures/images/astronaut.jpg "$ctx/stage/opt/vaccel/share/vaccel/images/"

# --- The base image: Debian bookworm from the mirror apt uses, made once (kept if present).
step "base image ($base_image)"
if podman image exists "$base_image"; then
    echo "$base_image exists: using it"
else
    if [ -z "$mirror" ]; then
        mirror="$(python3 - <<'EOF'
import glob, re
# The first bookworm (not security) source of /etc/apt: one-line .list or deb822 .sources.
for path in ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*")):
    try:
        text = open(path).read()
    except OSError:
        continue
    if path.endswith(".sources"):
        for block in re.split(r"\n\s*\n", text):
            f = dict(re.findall(r"^(\w[\w-]*):\s*(.*)$", block, re.M))
            if "bookworm" in f.get("Suites", "").split() and "deb" in f.get("Types", "").split():
                print(f["URIs"].split()[0]); raise SystemExit
    else:
        for line in text.splitlines():
            m = re.match(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+bookworm\s", line)
            if m:
                print(m.group(1)); raise SystemExit
print("http://deb.debian.org/debian")
EOF
)"
    fi
    echo "debootstrap from $mirror"
    debootstrap --variant=minbase bookworm "$work/rootfs" "$mirror" > "$work/debootstrap.log" 2>&1 \
        || { tail -n 20 "$work/debootstrap.log" >&2; fail "debootstrap"; }
    rm -rf "$work"/rootfs/var/cache/apt/archives/*.deb "$work"/rootfs/var/lib/apt/lists/*
    tar -C "$work/rootfs" -c . | podman import -q - "$base_image" >/dev/null
    rm -rf "$work/rootfs"
    images+=("$base_image")
fi

# --- The two images, from the Dockerfiles users build. Build stages are not kept as layers
# (--layers=false), so that nothing but the tagged images stays behind.
build() { # <Dockerfile> <tag> [build args...]
    local file="$1" tag="$2"
    shift 2
    images+=("$tag")
    podman build --quiet --layers=false --format docker \
        --build-arg BASE="$base_image" --build-arg RUST_IMAGE="$base_image" "$@" \
        -f "$file" -t "$tag" "$ctx" >/dev/null
    echo "$tag: $(podman image inspect --format '{{.Size}}' "$tag" | awk '{printf "%d MB", $1 / 1e6}')"
}
step "agent image ($agent_image)"
build deploy/docker/Dockerfile.agent "$agent_image" --build-arg WITH_TF="$tf"
step "client image ($client_image)"
build deploy/docker/Dockerfile "$client_image"
rm -rf "$ctx"

if [ "$test_pods" = 0 ]; then
    step "done"
    printf '  %s\n' "${timings[@]}"
    echo "Built $agent_image and $client_image (podman images vaccel-rs/*)"
    exit 0
fi

# --- The pods. podman's infra (pause) container: catatonit, as podman's own pause image.
step "pause image ($pause_image)"
if ! podman image exists "$pause_image"; then
    install -d "$work/pause"
    cp "$(command -v catatonit)" "$work/pause/catatonit"
    printf 'FROM scratch\nCOPY catatonit /catatonit\nENTRYPOINT ["/catatonit", "-P"]\n' \
        > "$work/pause/Containerfile"
    images+=("$pause_image")
    podman build --quiet -t "$pause_image" "$work/pause" >/dev/null
fi

# The container <container> of <kind>/<name> in the rendered overlay, as shell assignments
# (sourced): image, args, env (as -e options), mounts (mount paths by volume name) and check
# (the readiness probe's command).
manifest() { # <overlay> <kind> <name> <container>
    python3 deploy/tools/kustomize_lite.py render "deploy/k8s/overlays/$1" > "$work/rendered.yaml"
    python3 - "$work/rendered.yaml" "$2" "$3" "$4" > "$work/manifest.sh" <<'EOF'
import shlex, sys, yaml
path, kind, name, container = sys.argv[1:]
q = lambda xs: " ".join(shlex.quote(str(x)) for x in xs)
for doc in yaml.safe_load_all(open(path)):
    if not doc or doc["kind"] != kind or doc["metadata"]["name"] != name:
        continue
    for c in doc["spec"]["template"]["spec"]["containers"]:
        if c["name"] != container:
            continue
        env = [x for e in c.get("env", []) for x in ("-e", e["name"] + "=" + e["value"])]
        mounts = " ".join("[%s]=%s" % (shlex.quote(m["name"]), shlex.quote(m["mountPath"]))
                          for m in c.get("volumeMounts", []))
        probe = c.get("readinessProbe", {}).get("exec", {}).get("command", [])
        print("image=" + shlex.quote(c["image"]))
        print("args=(%s)" % q(c.get("args", [])))
        print("env=(%s)" % q(env))
        print("mounts=(%s)" % mounts)
        print("check=(%s)" % q(probe))
        raise SystemExit
sys.exit("%s/%s has no container %s" % (kind, name, container))
EOF
    # shellcheck source=/dev/null
    . "$work/manifest.sh"
}

# Set by `manifest`.
image=
args=()
env=()
check=()
declare -A mounts=()
agent_check=()
last_output=

# As the manifests' securityContext: non-root, read-only root (a tmpfs on /tmp, the
# emptyDir), no capabilities, no privilege escalation.
hardening=(--user 65532:65532 --read-only --cap-drop all --security-opt no-new-privileges)

# Starts the agent container with the manifest's readiness probe as its health check, and
# waits (30 s, as the startup probe) until it passes.
start_agent() { # <name> <podman run options...> -- <image> <args...>
    local name="$1" i
    shift
    containers+=("$name")
    failed_logs+=("$name")
    podman run -d --name "$name" "${hardening[@]}" \
        --health-cmd "$(python3 -c 'import json, sys; print(json.dumps(sys.argv[1:]))' "${agent_check[@]}")" \
        --health-interval disable "$@" >/dev/null
    for i in $(seq 30); do
        if podman healthcheck run "$name" >/dev/null 2>&1; then
            echo "$name: healthy after $i check(s) of: ${agent_check[*]}"
            return 0
        fi
        [ "$(podman inspect --format '{{.State.Running}}' "$name")" = true ] \
            || fail "$name exited before its health check passed"
        sleep 1
    done
    fail "$name: health check ${agent_check[*]} did not pass in 30 s"
}

# Runs a client command; prints its output; fails with it when the command fails.
client() { # <podman run options...> -- <image> <command...>
    local out
    if ! out="$(podman run --rm "${hardening[@]}" "$@" 2>&1)"; then
        echo "$out" >&2
        fail "client: $*"
    fi
    printf '%s\n' "$out" | sed 's/^/    /'
    last_output="$out"
}

# The client's two programs on the example data, and what they must print: one face on the
# astronaut, "banana" as the top label of upstream's example picture.
check_programs() { # <podman run options...> (ending with the image)
    local images_dir=/opt/vaccel/share/vaccel/images faces
    echo "  \$ detect $images_dir/astronaut.jpg 1"
    client "$@" detect "$images_dir/astronaut.jpg" 1
    faces="$(grep -c '^detection: face ' <<<"$last_output" || true)"
    if [ "$(grep -c '^detection: ' <<<"$last_output" || true)" != 1 ] || [ "$faces" != 1 ]; then
        fail "detect: expected exactly one face"
    fi
    echo "  \$ classify $images_dir/example.jpg 1"
    client "$@" classify "$images_dir/example.jpg" 1
    grep -Eq '^classification tags: [0-9.]+% banana$' <<<"$last_output" \
        || fail "classify: the top label is not banana"
}

# --- Sidecar: one pod, no network; the socket directory is a shared volume.
step "sidecar pattern (deploy/k8s/overlays/sidecar)"
manifest sidecar Deployment vaccel-app vaccel-agent
agent_run=("${env[@]}" "$image" "${args[@]}")
agent_check=("${check[@]}")
socket_dir="${mounts[vaccel-socket]:?the sidecar agent mounts no vaccel-socket volume}"
manifest sidecar Deployment vaccel-app app
[ "${mounts[vaccel-socket]:-}" = "$socket_dir" ] || fail "the app mounts the socket elsewhere"
volume="$run_id-socket"
volumes+=("$volume")
podman volume create "$volume" >/dev/null
pod="$run_id-sidecar"
pods+=("$pod")
podman pod create --name "$pod" --infra-image "$pause_image" --network none >/dev/null
start_agent "$pod-agent" --pod "$pod" -v "$volume:$socket_dir" "${agent_run[@]}"
check_programs --pod "$pod" -v "$volume:$socket_dir" "${env[@]}" "$image"
# A large image goes through shared memory (a memfd the client passes over the socket, from
# one container to the other): upstream's banana padded past its JPEG end to 1 MiB (decoders
# stop at the end marker), so the call is over the rpc client's shared-memory threshold.
big="$work/banana-1MiB.jpg"
cp examples/data/example.jpg "$big"
truncate -s 1M "$big"
echo "  \$ classify /data/banana-1MiB.jpg 1   (through shared memory)"
client --pod "$pod" -v "$volume:$socket_dir" -v "$big:/data/banana-1MiB.jpg:ro" "${env[@]}" \
    "$image" classify /data/banana-1MiB.jpg 1
grep -Eq '^classification tags: [0-9.]+% banana$' <<<"$last_output" \
    || fail "classify of the padded image: the top label is not banana"
attached=
for _ in $(seq 20); do
    attached="$(podman logs "$pod-agent" 2>&1 | grep -m1 'bytes of shared memory' || true)"
    [ -n "$attached" ] && break
    sleep 0.1
done
[ -n "$attached" ] || fail "the agent attached no shared memory for the 1 MiB image"
echo "  agent: ${attached#*] }"

# --- Split: the agent pod on a network of its own, the client in another container.
step "split pattern (deploy/k8s/overlays/daemonset)"
network="$run_id-net"
networks+=("$network")
podman network create --internal "$network" >/dev/null
manifest daemonset DaemonSet vaccel-agent vaccel-agent
metrics_port=
for ((i = 0; i < ${#args[@]}; i++)); do
    [ "${args[$i]}" = --metrics-address ] && metrics_port="${args[$((i + 1))]##*:}"
done
[ -n "$metrics_port" ] || fail "the DaemonSet's agent serves no metrics"
agent_check=("${check[@]}")
pod="$run_id-agent"
pods+=("$pod")
# The Service's name, as the app's VACCEL_RPC_ADDRESS names it.
podman pod create --name "$pod" --infra-image "$pause_image" --network "$network" \
    --network-alias vaccel-agent >/dev/null
start_agent "$pod-agent" --pod "$pod" "${env[@]}" "$image" "${args[@]}"
manifest daemonset Deployment vaccel-app app
check_programs --network "$network" "${env[@]}" "$image"
echo "  \$ GET http://vaccel-agent:$metrics_port/metrics"
client --network "$network" "$image" bash -c \
    "exec 3<>/dev/tcp/vaccel-agent/$metrics_port && printf 'GET /metrics HTTP/1.0\r\n\r\n' >&3 && cat <&3" \
    >/dev/null
grep -q '^HTTP/1\.[01] 200' <<<"$last_output" || fail "metrics: no 200 answer"
grep -E '^vaccel_agent_requests_total\{method="Genop",op="(image_classify|image_detect)"\} [1-9]' \
    <<<"$last_output" | sed 's/^/    /'
[ "$(grep -cE '^vaccel_agent_requests_total\{method="Genop",op="(image_classify|image_detect)"\} [1-9]' \
    <<<"$last_output")" = 2 ] || fail "metrics: the detection and classification are not counted"

step "done"
printf '  %s\n' "${timings[@]}"
echo "images.sh: both patterns passed ($((SECONDS - started)) s)"
