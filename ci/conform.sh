#!/usr/bin/env bash
# The main job: install what is missing, build, run the conformance specs on
# the embedded default data and write the reports. Extra arguments go to
# `conform run` (e.g. --backend cpu, --no-skip, --shard 1/4).
# Exit status is conform's: 0 all passed, 1 a check failed, 2 spec/usage error.
set -euo pipefail
cd "$(dirname "$0")/.."
bash ci/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)"
out=${REPORT_DIR:-reports/latest}
mkdir -p "$out"
set_shared=()
# CI may keep the reference set elsewhere than ../shared.
if [ -n "${INFER_SHARED_DIR:-}" ]; then
	set_shared=(--set "SHARED=$INFER_SHARED_DIR")
fi
# conform writes the reports even when checks fail and prints where they
# are ("reports: DIR/{...}"); a spec error (exit 2) writes none.
status=0
./build/harness/conform run specs/default.yaml "${set_shared[@]}" --report-dir "$out" "$@" || status=$?
[ -f "$out/report.json" ] || echo "conform.sh: no reports written to $out" >&2
exit $status
