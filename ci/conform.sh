#!/usr/bin/env bash
# The main job: install what is missing, build, run the conformance specs on
# the embedded default data and write the reports.
set -euo pipefail
cd "$(dirname "$0")/.."
bash ci/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)"
out=${REPORT_DIR:-reports/latest}
mkdir -p "$out"
./build/harness/conform run specs/default.yaml --report-dir "$out" "$@"
status=$?
echo "reports: $out/{junit.xml,report.json,report.html,summary.md}"
exit $status
