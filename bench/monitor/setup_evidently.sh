#!/usr/bin/env bash
# Make the separate environment Evidently needs for bench/monitor/drift_vs_evidently.py.
#
#   bench/monitor/setup_evidently.sh OUT_DIR        -> OUT_DIR/evidently-venv/bin/python
#
# Evidently 0.7.23 fails to import under pandas 3, which ferry's own environment uses, so it gets
# a venv of its own. An existing venv that already imports the right Evidently is reused.
# PYTHON picks the interpreter the venv is made from (default: python3).
set -euo pipefail

if [[ $# -ne 1 ]]; then
    echo "usage: $0 OUT_DIR" >&2
    exit 2
fi
venv="$1/evidently-venv"
python="$venv/bin/python"
wanted="0.7.23"

if [[ -x "$python" ]] && "$python" -c "import evidently, pandas, pyarrow, sys; \
sys.exit(evidently.__version__ != '$wanted' or int(pandas.__version__.split('.')[0]) >= 3)" \
        2>/dev/null; then
    echo "reusing $venv"
else
    mkdir -p "$1"
    "${PYTHON:-python3}" -m venv "$venv"
    "$python" -m pip install --quiet --upgrade pip
    "$python" -m pip install --quiet "evidently==$wanted" 'pandas<3' pyarrow
fi
"$python" -c "import evidently, pandas; print('evidently', evidently.__version__, \
'pandas', pandas.__version__)"
echo "$python"
