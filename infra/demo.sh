#!/usr/bin/env bash
# The main job: coursewire on the local stack (moto + simulated Canvas + every function
# in-process) driving a course-term scenario through HTTPS and SQS delivery, then a teaching
# day of lecture capture on the simulated Panopto.
# Usage: infra/demo.sh [demo options]   (infra/demo.sh --help lists them)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
bash infra/bootstrap.sh
exec cargo run --quiet --release -p coursewire-local --bin coursewire-local -- demo "$@"
