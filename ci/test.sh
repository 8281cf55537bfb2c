#!/usr/bin/env bash
# The test command: install what is missing, configure, build, run the CUnit
# suites with ctest, a short load run of the worker; then the ASan+UBSan build
# of the parser and dequant suites.
set -euo pipefail
cd "$(dirname "$0")/.."
bash ci/deps.sh
jobs=$(nproc)

cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$jobs"
(cd build && ctest --output-on-failure -j "$jobs")

# A short load run of the worker (4 clients x 40 requests: valid, malformed,
# disconnecting; about 30 s). The full 16 x 200 run is in ci/gate.sh.
bash ci/load.sh build 4 40

# Sanitizer variant: hostile-input suites under ASan+UBSan (CUDA off).
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DINFER_SANITIZE=ON >/dev/null
cmake --build build-asan -j "$jobs"
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
	ctest --output-on-failure -j "$jobs" -L sanitize)
