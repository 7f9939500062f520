#!/usr/bin/env bash
# Makes the CPU backends' runtime libraries available to python3, where the plugins find
# them (see plugins/tflite, plugins/onnx and plugins/tf): LiteRT from the ai-edge-litert
# wheel and onnxruntime always, TensorFlow from tensorflow-cpu with --tf. Installs only what
# is missing.
#
#   ./scripts/runtimes.sh        # LiteRT (tflite plugin) and onnxruntime (onnx plugin's fast
#                                # engine; it falls back to tract without): about 60 MB
#   ./scripts/runtimes.sh --tf   # and TensorFlow (the tf plugin; about 600 MB with its deps)
set -euo pipefail

LITERT_PIN="ai-edge-litert==2.3.0"
ORT_PIN="onnxruntime==1.31.1"
TF_PIN="tensorflow-cpu==2.15.1"
py=${VACCEL_PYTHON:-python3}

want=()
"$py" -c "import importlib.util as u, sys; sys.exit(u.find_spec('ai_edge_litert') is None)" \
    || want+=("$LITERT_PIN")
"$py" -c "import importlib.util as u, sys; sys.exit(u.find_spec('onnxruntime') is None)" \
    || want+=("$ORT_PIN")
if [ "${1:-}" = "--tf" ]; then
    "$py" -c "import importlib.util as u, sys; sys.exit(u.find_spec('tensorflow') is None)" \
        || want+=("$TF_PIN")
fi
if [ ${#want[@]} -gt 0 ]; then
    echo "installing ${want[*]} for $py" >&2
    flags=(--quiet --disable-pip-version-check)
    # Outside a virtual environment and not root: a user install.
    if [ -z "${VIRTUAL_ENV:-}" ] && [ "$(id -u)" != 0 ]; then flags+=(--user); fi
    "$py" -m pip install "${flags[@]}" "${want[@]}"
fi
