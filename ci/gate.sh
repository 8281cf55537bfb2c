#!/usr/bin/env bash
# The full CI gate: Debug+ASan/UBSan and Release builds, ctest on both,
# conform on the embedded data, lcov coverage of runtime/ and harness/
# (CUDA excluded) with an enforced floor, JUnit XML for all of it.
# Output: reports/gate/{ctest-release.xml,ctest-asan.xml,conform/,coverage/}
set -euo pipefail
cd "$(dirname "$0")/.."
bash ci/deps.sh
jobs=$(nproc)
out=reports/gate
rm -rf "$out"; mkdir -p "$out"
# Line-coverage floor of runtime/src + harness/src (percent). Raise it as it rises.
COVERAGE_FLOOR=${COVERAGE_FLOOR:-70}

echo "== release build + tests"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$jobs"
(cd build && ctest -j "$jobs" --output-on-failure --output-junit "$PWD/../$out/ctest-release.xml")

echo "== asan+ubsan build + all tests"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DINFER_SANITIZE=ON >/dev/null
cmake --build build-asan -j "$jobs"
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 ctest -j "$jobs" --output-on-failure \
	--output-junit "$PWD/../$out/ctest-asan.xml")

echo "== fuzz corpora replay under sanitizers"
if [ -x ci/fuzz.sh ]; then
	for t in $(ci/fuzz.sh --list); do ci/fuzz.sh "$t" replay; done
fi

echo "== coverage build: tests + conform"
cmake -S . -B build-cov -DCMAKE_BUILD_TYPE=Debug -DINFER_COVERAGE=ON -DINFER_CUDA=OFF >/dev/null
cmake --build build-cov -j "$jobs"
lcov --quiet --zerocounters --directory build-cov
(cd build-cov && ctest -j "$jobs" --output-on-failure)
./build-cov/harness/conform run specs/default.yaml --report-dir "$out/conform"
lcov --quiet --capture --directory build-cov --output-file "$out/coverage.info" --ignore-errors mismatch
lcov --quiet --extract "$out/coverage.info" "$PWD/runtime/src/*" "$PWD/harness/src/*" \
	--output-file "$out/coverage.info"
genhtml --quiet "$out/coverage.info" --output-directory reports/coverage
pct=$(lcov --summary "$out/coverage.info" 2>&1 | awk '/lines/ {gsub("%","",$2); print $2}')
echo "line coverage of runtime/src + harness/src: ${pct}% (floor ${COVERAGE_FLOOR}%)"
awk -v p="$pct" -v f="$COVERAGE_FLOOR" 'BEGIN { exit !(p + 0 >= f + 0) }' || {
	echo "error: coverage ${pct}% is below the floor ${COVERAGE_FLOOR}%"; exit 1; }
echo "gate: ok (reports in $out, coverage in reports/coverage)"
