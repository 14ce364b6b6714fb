#!/usr/bin/env bash
# Every test: unit, conformance against Instructure's example payloads (or, on a bare clone,
# the project's own fixtures), end-to-end on the
# local stack (moto server, Canvas simulator), cfn-lint of template.yaml, and a function
# binary run under `cargo lambda watch`. Installs its Python tooling into .venv first.
# Usage: infra/test.sh [extra cargo test arguments]
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
bash infra/bootstrap.sh

# Which live-events corpus the conformance tests read (the rule is
# coursewire_live_events::live_events::corpus): Instructure's examples, or the project's own fixtures.
corpus="${COURSEWIRE_LIVE_EVENTS_DIR:-$repo/../shared/canvas-live-events}"
if [[ -d "$corpus/canvas" && ! -f "$corpus/coursewire-fixtures.json" ]]; then
    echo "conformance corpus: Instructure's example payloads in $corpus"
else
    echo "conformance corpus: Instructure's example payloads not found; using the project's own"
    echo "  fixtures in events/live-events (fewer event types). For the full run, set"
    echo "  COURSEWIRE_LIVE_EVENTS_DIR to a copy of doc/api/data_services/json from canvas-lms."
fi
exec cargo test --workspace "$@"
