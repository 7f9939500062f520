#!/usr/bin/env bash
# Puts the CPU backends' runtime libraries, taken from the wheels scripts/runtimes.sh pins, in
# one directory, for a machine without Python (the agent image): libonnxruntime.so (onnx),
# libLiteRt.so (tflite) and, with --tf, libtensorflow_cc.so.2 with its
# libtensorflow_framework.so.2 (tf). Put DIR on LD_LIBRARY_PATH: the plugins try the loader's
# search before asking Python.
#
#   scripts/runtime-libs.sh DIR [--tf] [--wheels DIR]
#
#   --tf          TensorFlow too (a 600 MB download, 610 MB installed)
#   --wheels DIR  where the wheels are downloaded (default: a temporary directory); wheels
#                 already there are reused, so a second run downloads nothing
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
py=${VACCEL_PYTHON:-python3}

dest=
tf=0
wheels=
while [ $# -gt 0 ]; do
    case "$1" in
        --tf) tf=1; shift ;;
        --wheels) wheels="${2:?--wheels needs a directory}"; shift 2 ;;
        -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) echo "runtime-libs.sh: unknown option $1" >&2; exit 2 ;;
        *) dest="$1"; shift ;;
    esac
done
[ -n "$dest" ] || { echo "runtime-libs.sh: which directory?" >&2; exit 2; }

# The pins are runtimes.sh's: one place says which versions the backends are tested with.
pin() { sed -n "s/^$1=\"\(.*\)\"$/\1/p" "$root/scripts/runtimes.sh"; }
pins=("$(pin ORT_PIN)" "$(pin LITERT_PIN)")
[ "$tf" = 1 ] && pins+=("$(pin TF_PIN)")
for p in "${pins[@]}"; do
    [ -n "$p" ] || { echo "runtime-libs.sh: a pin is missing from scripts/runtimes.sh" >&2; exit 1; }
done

if [ -z "$wheels" ]; then
    wheels="$(mktemp -d)"
    trap 'rm -rf "$wheels"' EXIT
fi
# The wheels only, not their Python dependencies: the libraries need none of them.
"$py" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    --dest "$wheels" "${pins[@]}"

install -d "$dest"
# Copies the members of each wheel whose path matches, flat into DEST (a wheel is a zip).
"$py" - "$wheels" "$dest" <<'EOF'
import os, re, shutil, sys, zipfile
wheels, dest = sys.argv[1], sys.argv[2]
wanted = re.compile(r"^(onnxruntime/capi/libonnxruntime\.so\.[0-9.]+"
                    r"|ai_edge_litert/libLiteRt\.so"
                    r"|tensorflow/libtensorflow_(cc|framework)\.so\.2)$")
for wheel in sorted(os.listdir(wheels)):
    if not wheel.endswith(".whl"):
        continue
    with zipfile.ZipFile(os.path.join(wheels, wheel)) as z:
        for member in z.namelist():
            if wanted.match(member):
                to = os.path.join(dest, os.path.basename(member))
                with z.open(member) as src, open(to, "wb") as out:
                    shutil.copyfileobj(src, out)
                os.chmod(to, 0o755)
                print(f"{wheel}: {member}")
EOF
# The name the onnx plugin asks the loader for.
ort="$(cd "$dest" && find . -maxdepth 1 -name 'libonnxruntime.so.*' -printf '%f\n' | sort | tail -n 1)"
[ -n "$ort" ] || { echo "runtime-libs.sh: no libonnxruntime in the onnxruntime wheel" >&2; exit 1; }
ln -sfn "$ort" "$dest/libonnxruntime.so"
[ -f "$dest/libLiteRt.so" ] || { echo "runtime-libs.sh: no libLiteRt.so in the LiteRT wheel" >&2; exit 1; }
if [ "$tf" = 1 ] && [ ! -f "$dest/libtensorflow_cc.so.2" ]; then
    echo "runtime-libs.sh: no libtensorflow_cc.so.2 in the TensorFlow wheel" >&2
    exit 1
fi
