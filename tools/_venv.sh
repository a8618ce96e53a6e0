# Sourced by tools/run and tools/test: create .venv and install the package when it is
# missing or when pyproject.toml changed since the last install (idempotent).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv="$root/.venv"
stamp="$venv/.slabemu-installed"
want=$( (cat "$root/pyproject.toml"; python3 --version) | sha256sum | cut -d' ' -f1)
if [ ! -x "$venv/bin/python" ] || [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "tools: setting up $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -e "$root[test]" >&2
    echo "$want" > "$stamp"
    echo "tools: $venv ready after ${SECONDS} s" >&2
fi
export PATH="$venv/bin:$PATH"
cd "$root"
