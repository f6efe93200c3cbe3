#!/usr/bin/env bash
# Creates .venv (once) with the test tools, and installs the ringkv Python package into it
# with `pip install ./python` (maturin builds the extension into the shared cargo target).
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
if ! .venv/bin/python -c "import maturin, pytest, pytest_asyncio, hypothesis, mypy, flask, kubernetes_validate" >/dev/null 2>&1; then
  .venv/bin/pip install -q --upgrade pip
  # Flask: the session interface (ringkv.flask) is tested against it. kubernetes-validate
  # (with the API schemas it ships): tests/dist.rs validates the rendered Kubernetes manifests.
  .venv/bin/pip install -q "maturin>=1.7,<2" "pytest>=7" "pytest-asyncio>=0.23" "hypothesis>=6" "mypy>=1.8" "flask>=3" "kubernetes-validate>=1.30"
fi
# --no-build-isolation: use the maturin installed above instead of fetching one per build
# (its build hook runs `maturin` from PATH, as in an activated virtualenv).
export PATH="$ROOT/.venv/bin:$PATH"
.venv/bin/pip install -q --no-build-isolation --force-reinstall --no-deps ./python
