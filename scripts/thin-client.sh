#!/usr/bin/env bash
# Builds the thin guest client, what a VM guest needs to reach an agent on its host:
#
#  - the example programs (classify, detect, exec, ...) with only the small bundled plugins and
#    the rpc transport (the `vaccel` crate without its `cpu` and `download` features), as
#    static executables (glibc, `-C target-feature=+crt-static`), in the `thin` profile;
#  - a thin libvaccel.so and libvaccel-rpc.so (shared libraries are never static).
#
# It checks each program is at most 3 MiB and has no shared-library dependency (`ldd`), and
# that the two libraries are at most 3 MiB together; any miss fails the script. The programs
# are copied into target/thin-client/ (the libraries into its lib/), and that directory's path
# is the last line of stdout; everything else goes to stderr.
#
#   scripts/thin-client.sh [--target-dir DIR]
#
# A static glibc program cannot load shared libraries reliably (`dlopen` there crashes on a
# library that needs libc.so), so these programs refuse to: they use their bundled plugins
# only, rpc (`VACCEL_PLUGINS=rpc VACCEL_RPC_ADDRESS=vsock://2:2048`), noop, mbench, and exec
# through an agent. Name the agent by a numeric address or a vsock/unix socket: host names
# need glibc's NSS modules.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
target_dir="${CARGO_TARGET_DIR:-$root/target}"

while [ $# -gt 0 ]; do
    case "$1" in
        --target-dir) target_dir="${2:?--target-dir needs a directory}"; shift 2 ;;
        --target-dir=*) target_dir="${1#*=}"; shift ;;
        -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "thin-client.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
case "$target_dir" in
    /*) ;;
    *) target_dir="$(pwd)/$target_dir" ;;
esac

# Only the directory's path goes to stdout; cargo and this script log to stderr.
exec 3>&1 1>&2

max_program=$((3 * 1024 * 1024))
max_libraries=$((3 * 1024 * 1024))

triple="$(rustc -vV | sed -n 's/^host: //p')"
case "$triple" in
    *-linux-gnu) ;;
    *) echo "thin-client.sh: static glibc programs need a *-linux-gnu host, not $triple" >&2; exit 1 ;;
esac

cd "$root"
export CARGO_TARGET_DIR="$target_dir"

echo "== thin libvaccel.so and libvaccel-rpc.so (profile thin)"
cargo build --locked --profile thin --no-default-features \
    -p vaccel-capi-lib -p vaccel-plugin-rpc-lib

echo "== static example programs (profile thin, --target $triple, +crt-static)"
# An explicit --target keeps the flag off build scripts and proc macros (they run on this
# host as usual) and puts these objects in target/<triple>/thin, apart from everything else.
RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
    cargo build --locked --profile thin --target "$triple" --no-default-features \
    -p vaccel-examples --bins

programs="$(sed -n '/^\[\[bin\]\]/,/^name/s/^name = "\(.*\)"$/\1/p' "$root/examples/Cargo.toml")"
built="$target_dir/$triple/thin"
libs="$target_dir/thin"
out="$target_dir/thin-client"
rm -rf "$out"
install -d "$out/lib"

failures=0
fail() {
    echo "FAIL: $*" >&2
    failures=$((failures + 1))
}

size_of() { stat -c %s "$1"; }

printf '%-24s %10s\n' program bytes
for name in $programs; do
    [ -f "$built/$name" ] || { fail "$built/$name was not built"; continue; }
    objcopy --strip-all "$built/$name" "$out/$name"
    size="$(size_of "$out/$name")"
    printf '%-24s %10d\n' "$name" "$size"
    [ "$size" -le "$max_program" ] || fail "$name is $size bytes, over $max_program"
    # ldd says "not a dynamic executable" or "statically linked" for a static program, and
    # lists the libraries of any other.
    deps="$(ldd "$out/$name" 2>&1 || true)"
    case "$deps" in
        *"not a dynamic executable"*|*"statically linked"*) ;;
        *) fail "$name has shared-library dependencies: $deps" ;;
    esac
done

objcopy --strip-unneeded "$libs/libvaccel.so" "$out/lib/libvaccel.so.0"
ln -sfn libvaccel.so.0 "$out/lib/libvaccel.so"
objcopy --strip-unneeded "$libs/libvaccel_rpc.so" "$out/lib/libvaccel-rpc.so.0"
ln -sfn libvaccel-rpc.so.0 "$out/lib/libvaccel-rpc.so"
vaccel_size="$(size_of "$out/lib/libvaccel.so.0")"
rpc_size="$(size_of "$out/lib/libvaccel-rpc.so.0")"
printf '%-24s %10d\n' libvaccel.so "$vaccel_size" libvaccel-rpc.so "$rpc_size" \
    together $((vaccel_size + rpc_size))
[ $((vaccel_size + rpc_size)) -le "$max_libraries" ] ||
    fail "libvaccel.so + libvaccel-rpc.so are $((vaccel_size + rpc_size)) bytes, over $max_libraries"

if [ "$failures" -gt 0 ]; then
    echo "thin-client.sh: $failures check(s) failed" >&2
    exit 1
fi
echo "$out" >&3
