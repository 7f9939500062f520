#!/usr/bin/env bash
# Installs vaccel-rs into a prefix: the binaries (examples, agent), libvaccel.so/.a, the plugin
# libraries (as upstream names them: libvaccel-<name>.so), libmytestlib.so, the C headers,
# vaccel.pc and upstream's example data (share/vaccel), so that
# `cc app.c $(pkg-config --cflags --libs vaccel)` works.
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
    sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
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
version="$(sed -n 's/^#define VACCEL_VERSION "\(.*\)"$/\1/p' "$root/crates/vaccel-capi/include/vaccel.h")"
major="${version%%.*}"

# A shared library as upstream installs it: the real file lib<name>.so.<version>, the link
# lib<name>.so.<major> (the SONAME the build gave it, which programs ask the loader for) and the
# link lib<name>.so (what `-l<name>` finds).
install_versioned() { # <built file> <upstream stem, e.g. libvaccel-noop>
    install -m 0755 "$1" "$dest/lib/$2.so.$version"
    ln -sfn "$2.so.$version" "$dest/lib/$2.so.$major"
    ln -sfn "$2.so.$major" "$dest/lib/$2.so"
}

# Libraries. Cargo names library artifacts with underscores; the plugins are installed under
# upstream's names.
install_versioned "$artifacts/libvaccel.so" libvaccel
[ -f "$artifacts/libvaccel.a" ] && install -m 0644 "$artifacts/libvaccel.a" "$dest/lib/libvaccel.a"
for lib in "$artifacts"/libvaccel_*.so; do
    [ -f "$lib" ] || continue
    name="$(basename "$lib" .so)"
    case "$name" in
        libvaccel_plugin_*) continue ;; # rlib-only plugin crates never produce these
    esac
    name="libvaccel-${name#libvaccel_}"
    install_versioned "$lib" "${name//_/-}"
done
# The function library of the exec examples (no SONAME: upstream loads it by path).
[ -f "$artifacts/libmytestlib.so" ] && install -m 0755 "$artifacts/libmytestlib.so" "$dest/lib/"

# Binaries: every executable cargo left at the top of the profile directory.
for bin in "$artifacts"/*; do
    [ -f "$bin" ] && [ -x "$bin" ] || continue
    case "$bin" in
        *.so|*.so.*|*.a|*.d|*.rlib|*.rmeta) continue ;;
    esac
    install -m 0755 "$bin" "$dest/bin/"
done

# Headers and pkg-config file.
cp -R "$root/crates/vaccel-capi/include/." "$dest/include/"
sed -e "s|@PREFIX@|$prefix|g" -e "s|@VERSION@|$version|g" \
    "$root/crates/vaccel-capi/vaccel.pc.in" > "$dest/lib/pkgconfig/vaccel.pc"

# Upstream's example data, where upstream installs it (share/vaccel/{images,labels,input,models}):
# the inputs and models its examples, docs and bindings' tests name (`classify
# /usr/local/share/vaccel/images/example.jpg`, `models/tf/lstm2`, `models/torch/cnn_trace.pt`).
data="$dest/share/vaccel"
install -d "$data/images" "$data/labels" "$data/input"
install -m 0644 "$root/examples/data/example.jpg" "$data/images/example.jpg"
install -m 0644 "$root/examples/data/imagenet.txt" "$data/labels/imagenet.txt"
install -m 0644 "$root/examples/data/input_2048.csv" "$data/input/input_2048.csv"
(cd "$root/examples/data" && find models -type f) | while read -r model; do
    install -D -m 0644 "$root/examples/data/$model" "$data/$model"
done
cat > "$data/README.md" <<'EOF'
# vAccel example data

The inputs of upstream vAccel's example programs, copied unchanged from its `examples/` folder
(<https://github.com/nubificus/vaccel>, Apache-2.0), in upstream's layout:

- `images/example.jpg`: the 920x920 JPEG of the image examples (a banana)
- `labels/imagenet.txt`: the 1000 ImageNet labels, one per line
- `input/input_2048.csv`: the 2048 numbers of the minmax examples, one per line
- `models/tf/frozen_graph.pb`: a TensorFlow frozen graph (upstream's TF tests)
- `models/tf/lstm2/`: a TensorFlow SavedModel, an LSTM (upstream's TF tests)
- `models/tf/lstm2.tflite`: the same LSTM as TFLite (upstream's TFLite tests)
- `models/torch/cnn_trace.pt`: a TorchScript text CNN (upstream's Kubernetes example)
EOF

echo "Installed vaccel-rs into $dest"
echo "  export PKG_CONFIG_PATH=$prefix/lib/pkgconfig LD_LIBRARY_PATH=$prefix/lib"
