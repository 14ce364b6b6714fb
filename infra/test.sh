#!/usr/bin/env bash
# Every test: unit, conformance against Instructure's example payloads, end-to-end on the
# local stack (moto server, Canvas simulator), cfn-lint of template.yaml, and a function
# binary run under `cargo lambda watch`. Installs its Python tooling into .venv first.
# Usage: infra/test.sh [extra cargo test arguments]
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
bash infra/bootstrap.sh
exec cargo test --workspace "$@"
