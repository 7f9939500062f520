#!/usr/bin/env bash
# Installs vaccel-rs into a prefix: the binaries (examples, agent), libvaccel.so/.a, the plugin
# libraries (as upstream names them: libvaccel-<name>.so), libmytestlib.so, the C headers,
# vaccel.pc and upstream's example data (share/vaccel), so that
# `cc app.c $(pkg-config --cflags --libs vaccel)` works.
#
#   scripts/install.sh [--prefix DIR] [--destdir DIR] [--profile release|debug]
#                      [--target-dir DIR] [--no-build] [--debug-symbols] [--no-strip]
#
#   --prefix DIR      where to install (default /usr/local); vaccel.pc points there
#   --destdir DIR     stage under DIR (DIR/PREFIX/...), for packaging
#   --profile NAME    the cargo profile to build and install (default release)
#   --target-dir DIR  cargo's target directory (default $CARGO_TARGET_DIR, else ./target)
#   --no-build        install what is already built (examples built as below, without the
#                     `cpu` feature, or each one bundles every CPU backend: about 40 MB)
#   --debug-symbols   also install each program's and library's debug info, split from it,
#                     as .debug/<file>.debug beside it (where gdb looks, by its debuglink)
#   --no-strip        install the files as built, debug info included
#
# Programs and libraries are installed stripped (libvaccel.a without its debug info). The CPU
# backends are plugin libraries (libvaccel-onnx.so, ...) that `VACCEL_PLUGINS=cpu` loads, so
# libvaccel.so and the example programs, built without the `cpu` feature, stay small; the agent
# bundles the backends. A default install is about 250 MB (see BENCHMARKS.md).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"

prefix=/usr/local
destdir=
profile=release
target_dir="${CARGO_TARGET_DIR:-$root/target}"
build=1
strip=1
debug_symbols=0

usage() {
    sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'
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
        --debug-symbols) debug_symbols=1; shift ;;
        --no-strip) strip=0; shift ;;
        -h|--help) usage 0 ;;
        *) echo "install.sh: unknown option $1" >&2; usage 2 >&2 ;;
    esac
done

case "$prefix" in
    /*) ;;
    *) prefix="$(pwd)/$prefix" ;;
esac

if [ "$build" = 1 ]; then
    # The example programs without the CPU backends (they load the plugin libraries), in a
    # build of their own: in one build with the agent, which bundles the backends, cargo would
    # unify the `vaccel` crate's features and bundle them into every program.
    (cd "$root" && CARGO_TARGET_DIR="$target_dir" \
        cargo build --workspace --exclude vaccel-examples --profile "$profile")
    (cd "$root" && CARGO_TARGET_DIR="$target_dir" \
        cargo build -p vaccel-examples --no-default-features --features download \
            --profile "$profile")
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
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

# An ELF file, stripped (`--strip-all` for programs, `--strip-unneeded` for libraries, which
# keeps what the dynamic linker needs); with --debug-symbols its debug info goes to
# .debug/<name>.debug beside it, linked by a debuglink (the file name and a CRC), where gdb
# and other debuggers look for it.
install_elf() { # <built file> <installed path> <mode> <--strip-all|--strip-unneeded>
    local built="$1" to="$2" mode="$3" how="$4" name
    if [ "$strip" = 0 ]; then
        install -m "$mode" "$built" "$to"
        return
    fi
    name="$(basename "$to")"
    rm -rf "${scratch:?}"/*
    if [ "$debug_symbols" = 1 ]; then
        objcopy --only-keep-debug "$built" "$scratch/$name.debug"
        objcopy "$how" --add-gnu-debuglink="$scratch/$name.debug" "$built" "$scratch/$name"
        install -d "$(dirname "$to")/.debug"
        install -m 0644 "$scratch/$name.debug" "$(dirname "$to")/.debug/$name.debug"
    else
        objcopy "$how" "$built" "$scratch/$name"
    fi
    install -m "$mode" "$scratch/$name" "$to"
}

version="$(sed -n 's/^#define VACCEL_VERSION "\(.*\)"$/\1/p' "$root/crates/vaccel-capi/include/vaccel.h")"
major="${version%%.*}"

# A shared library as upstream installs it: the real file lib<name>.so.<version>, the link
# lib<name>.so.<major> (the SONAME the build gave it, which programs ask the loader for) and the
# link lib<name>.so (what `-l<name>` finds).
install_versioned() { # <built file> <upstream stem, e.g. libvaccel-noop>
    install_elf "$1" "$dest/lib/$2.so.$version" 0755 --strip-unneeded
    ln -sfn "$2.so.$version" "$dest/lib/$2.so.$major"
    ln -sfn "$2.so.$major" "$dest/lib/$2.so"
}

# Libraries. Cargo names library artifacts with underscores; the plugins are installed under
# upstream's names.
install_versioned "$artifacts/libvaccel.so" libvaccel
# The archive keeps its symbols (programs link against them), not its debug info.
if [ -f "$artifacts/libvaccel.a" ]; then
    if [ "$strip" = 1 ]; then
        rm -rf "${scratch:?}"/*
        objcopy --strip-debug "$artifacts/libvaccel.a" "$scratch/libvaccel.a"
        install -m 0644 "$scratch/libvaccel.a" "$dest/lib/libvaccel.a"
    else
        install -m 0644 "$artifacts/libvaccel.a" "$dest/lib/libvaccel.a"
    fi
fi
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
if [ -f "$artifacts/libmytestlib.so" ]; then
    install_elf "$artifacts/libmytestlib.so" "$dest/lib/libmytestlib.so" 0755 --strip-unneeded
fi

# Programs: the agent and the example programs (each [[bin]] of examples/Cargo.toml), those
# that were built; not the benchmark programs.
programs="vaccel-rpc-agent $(sed -n '/^\[\[bin\]\]/,/^name/s/^name = "\(.*\)"$/\1/p' \
    "$root/examples/Cargo.toml")"
for name in $programs; do
    [ -f "$artifacts/$name" ] || continue
    install_elf "$artifacts/$name" "$dest/bin/$name" 0755 --strip-all
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
