#!/usr/bin/env bash
# Idempotent set-up of the project-local Python tooling (moto, cfn-lint, cargo-lambda).
# Creates <repo>/.venv if missing and reinstalls only when infra/requirements.txt changed.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
req="$repo/infra/requirements.txt"
venv="$repo/.venv"
stamp="$venv/.requirements.sha256"
python="${PYTHON:-python3}"

created=""
if [[ ! -x "$venv/bin/python" ]]; then
    "$python" -m venv "$venv"
    created="created .venv; "
fi

want="$(sha256sum "$req" | cut -d' ' -f1)"
have="$(cat "$stamp" 2>/dev/null || true)"
if [[ "$want" == "$have" ]]; then
    echo "bootstrap: ${created}.venv up to date"
    exit 0
fi

log="$venv/pip-install.log"
# pip's own output goes to a log: on failure show its tail, otherwise stay quiet.
if ! "$venv/bin/python" -m pip install --disable-pip-version-check --quiet \
    -r "$req" >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    echo "bootstrap: pip install failed; full log in $log" >&2
    exit 1
fi
printf '%s\n' "$want" >"$stamp"
echo "bootstrap: ${created}installed infra/requirements.txt into .venv"
