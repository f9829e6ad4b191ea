#!/usr/bin/env bash
# The Python package as a user gets it: a virtual environment from PyPI
# (numpy, scikit-learn, pytest, matplotlib), `pip install .`, then pytest
# (python/tests: on the cpu backend and OpenCL) and every ```python example
# of README.md and docs/python.md, run as written.
#   tools/test-python.sh BUILD   the venv goes in BUILD/python-venv; the
#                                tests compare with BUILD/tandem
set -eu
cd "$(dirname "$0")/.."
build=$1
venv=$build/python-venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install -q --upgrade pip
"$venv/bin/pip" install -q pytest matplotlib
"$venv/bin/pip" install -q .
TANDEM_CLI=$PWD/$build/tandem "$venv/bin/python" -m pytest -q python/tests
examples=$(mktemp -d)
trap 'rm -rf "$examples"' EXIT
for doc in README.md docs/python.md; do
    awk -v dir="$examples" -v doc="$(basename "$doc" .md)" '
        /^```python$/ { n++; file = sprintf("%s/%s-%d.py", dir, doc, n); next }
        /^```$/ { file = ""; next }
        file { print > file }' "$doc"
done
for example in "$examples"/*.py; do
    (cd "$examples" && MPLBACKEND=Agg "$OLDPWD/$venv/bin/python" "$example")
    [ -s "$examples/means.png" ] || { echo "FAILED: $example drew no means.png" >&2; exit 1; }
    rm "$examples/means.png"
    echo "ok: the example $(basename "$example") runs"
done
