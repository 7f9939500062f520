#!/usr/bin/env bash
# Installs vaccel-rs into a prefix: the binaries (examples, agent), libvaccel.so/.a, the plugin
# libraries (as upstream names them: libvaccel-<name>.so), libmytestlib.so, the C headers and
# vaccel.pc, so that `cc app.c $(pkg-config --cflags --libs vaccel)` works.
#
#   scripts/install.sh [--prefix DIR] [--destdir DIR] [--profile release|debug]
#                      [--target-dir DIR] [--no-build]
#
#   --prefix DIR      where to install (default /usr/local); vaccel.pc points there
#   --destdir DIR     stage under DIR (DIR/PREFIX/...), for packaging
#   --profile NAME    the cargo profile to build and install (default release)
#   --target-dir DIR  cargo's target directory (default $CARGO_TARGET_DIR, else ./target)
#   --no-build        install what is already built
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"

prefix=/usr/local
destdir=
profile=release
target_dir="${CARGO_TARGET_DIR:-$root/target}"
build=1

usage() {
    sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
    exit "${1:-0}"
}

while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) prefix="${2:?--prefix needs a directory}"; shift 2 ;;
        --prefix=*) prefix="${1#*=}"; shift ;;
        --destdir) destdir="${2:?--destdir needs a directory}"; shift 2 ;;
        --destdir=*) destdir="${1#*=}"; shift ;;
        --profile) profile="${2:?--profile needs a name}"; shift 2 ;;
        --profile=*) profile="${1#*=}"; shift ;;
        --target-dir) target_dir="${2:?--target-dir needs a directory}"; shift 2 ;;
        --target-dir=*) target_dir="${1#*=}"; shift ;;
        --no-build) build=0; shift ;;
        -h|--help) usage 0 ;;
        *) echo "install.sh: unknown option $1" >&2; usage 2 >&2 ;;
    esac
done

case "$prefix" in
    /*) ;;
    *) prefix="$(pwd)/$prefix" ;;
esac

if [ "$build" = 1 ]; then
    (cd "$root" && CARGO_TARGET_DIR="$target_dir" cargo build --workspace --profile "$profile")
fi

# Cargo puts the `dev` profile's artifacts in `debug`.
case "$profile" in
    dev) artifacts="$target_dir/debug" ;;
    *) artifacts="$target_dir/$profile" ;;
esac
if [ ! -f "$artifacts/libvaccel.so" ]; then
    echo "install.sh: $artifacts/libvaccel.so not found (build first, or drop --no-build)" >&2
    exit 1
fi

dest="$destdir$prefix"
install -d "$dest/bin" "$dest/lib/pkgconfig" "$dest/include"

# Libraries. Cargo names library artifacts with underscores; the plugins are installed under
# upstream's names.
install -m 0755 "$artifacts/libvaccel.so" "$dest/lib/libvaccel.so"
[ -f "$artifacts/libvaccel.a" ] && install -m 0644 "$artifacts/libvaccel.a" "$dest/lib/libvaccel.a"
for lib in "$artifacts"/libvaccel_*.so "$artifacts"/libmytestlib.so; do
    [ -f "$lib" ] || continue
    name="$(basename "$lib")"
    case "$name" in
        libvaccel_plugin_*) continue ;; # rlib-only plugin crates never produce these
        libvaccel_*) name="libvaccel-${name#libvaccel_}"; name="${name//_/-}" ;;
    esac
    install -m 0755 "$lib" "$dest/lib/$name"
done

# Binaries: every executable cargo left at the top of the profile directory.
for bin in "$artifacts"/*; do
    [ -f "$bin" ] && [ -x "$bin" ] || continue
    case "$bin" in
        *.so|*.a|*.d|*.rlib|*.rmeta) continue ;;
    esac
    install -m 0755 "$bin" "$dest/bin/"
done

# Headers and pkg-config file.
cp -R "$root/crates/vaccel-capi/include/." "$dest/include/"
version="$(sed -n 's/^#define VACCEL_VERSION "\(.*\)"$/\1/p' "$root/crates/vaccel-capi/include/vaccel.h")"
sed -e "s|@PREFIX@|$prefix|g" -e "s|@VERSION@|$version|g" \
    "$root/crates/vaccel-capi/vaccel.pc.in" > "$dest/lib/pkgconfig/vaccel.pc"

echo "Installed vaccel-rs into $dest"
echo "  export PKG_CONFIG_PATH=$prefix/lib/pkgconfig LD_LIBRARY_PATH=$prefix/lib"
