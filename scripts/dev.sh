#!/usr/bin/env bash
# One entry point for set-up, the demo and the test suite (the README's two commands).
#
#   bash scripts/dev.sh demo    # set up .venv (core) and run the main job on the embedded default
#   bash scripts/dev.sh test    # set up .venv (core + aihwkit backend), run the checks (ruff, mypy) and the whole test suite
#   bash scripts/dev.sh check   # the checks alone: ruff on the code, mypy on the package
#   bash scripts/dev.sh setup   # set-up only (core + aihwkit)
#
# Versions come from constraints.txt (torch==2.13.0 among them). aihwkit 1.2.0 has no wheel
# for this platform, so it is built from source against the pinned torch (about 12 minutes
# the first time on 2 cores; pip's wheel cache serves it afterwards).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="$ROOT/.venv"
PY="${PYTHON:-python3}"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
CONSTRAINTS=(-c "$ROOT/constraints.txt")
cd "$ROOT"

log() { printf '[analogdecor setup] %s\n' "$*" >&2; }

stamp_of() { cat pyproject.toml constraints.txt scripts/dev.sh | sha256sum | cut -c1-16; }

setup_core() {
  if [ ! -x "$VENV/bin/python" ]; then
    log "creating virtual environment $VENV"
    "$PY" -m venv "$VENV"
  fi
  local want; want="core-$(stamp_of)"
  if [ -f "$VENV/.stamp-core" ] && [ "$(cat "$VENV/.stamp-core")" = "$want" ]; then
    return 0
  fi
  log "installing analogdecor and its pinned dependencies"
  "${PIP[@]}" install -q "${CONSTRAINTS[@]}" --upgrade pip setuptools wheel
  "${PIP[@]}" install -q "${CONSTRAINTS[@]}" torch==2.13.0
  "${PIP[@]}" install -q "${CONSTRAINTS[@]}" -e ".[dev]"
  echo "$want" > "$VENV/.stamp-core"
}

setup_aihwkit() {
  # importing the tiles loads the compiled simulator, so a build against another torch fails here
  if "$VENV/bin/python" -c "import aihwkit.simulator.tiles" 2>/dev/null; then
    return 0
  fi
  if ! dpkg -s libopenblas-dev >/dev/null 2>&1; then
    log "installing libopenblas-dev (BLAS for aihwkit's simulator)"
    if [ "$(id -u)" = 0 ]; then
      apt-get update -qq && apt-get install -y -qq libopenblas-dev >/dev/null
    else
      sudo apt-get update -qq && sudo apt-get install -y -qq libopenblas-dev >/dev/null
    fi
  fi
  log "building aihwkit 1.2.0 against torch 2.13.0 (first time: ~12 min; then cached)"
  # Build tools (stubgen from mypy must be on PATH) and aihwkit's run-time imports.
  "${PIP[@]}" install -q "${CONSTRAINTS[@]}" scikit-build "pybind11>=3.0.1" ninja "cmake>=4.2.1" mypy \
    setuptools wheel tqdm "requests>=2.32,<3" protobuf scikit-learn scipy
  # --no-deps: aihwkit's metadata requires torchvision, which the analogue simulator never imports
  # (only its experiments/cloud helpers do). Resolving it pulls torchvision 0.29 and with it a CUDA
  # torch 2.14 that replaces the pinned CPU torch under the extension just compiled against it.
  PATH="$VENV/bin:$PATH" "${PIP[@]}" install -q "${CONSTRAINTS[@]}" --no-build-isolation --no-deps \
    "aihwkit==1.2.0"
  "$VENV/bin/python" -c "import aihwkit.simulator.tiles" \
    || { log "aihwkit 1.2.0 installed but does not import; see the error above"; return 1; }
}

run_checks() {
  log "ruff check"
  "$VENV/bin/python" -m ruff check analogdecor tests scripts
  log "mypy analogdecor (settings in pyproject.toml)"
  "$VENV/bin/python" -m mypy
}

cmd="${1:-}"
shift || true
case "$cmd" in
  setup)
    setup_core
    setup_aihwkit
    ;;
  demo)
    setup_core
    exec "$VENV/bin/analogdecor" train --rule np --decorrelation on --backend numba --device ReRamES \
      --dataset digits --epochs 5 --seed 0 --out runs/demo "$@"
    ;;
  check)
    setup_core
    run_checks
    ;;
  test)
    setup_core
    setup_aihwkit
    run_checks
    exec "$VENV/bin/python" -m pytest "$@"
    ;;
  *)
    echo "usage: bash scripts/dev.sh {demo|test|check|setup} [extra args]" >&2
    exit 2
    ;;
esac
