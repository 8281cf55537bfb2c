#!/usr/bin/env bash
# libFuzzer targets, built with clang -fsanitize=fuzzer,address,undefined.
#   ci/fuzz.sh --list            the targets
#   ci/fuzz.sh TARGET SECONDS    fuzz TARGET for SECONDS, starting from its seed corpus
#   ci/fuzz.sh TARGET replay     run every committed seed (and saved crash) once
# New inputs go to $FUZZ_BUILD/corpus-TARGET, crashes to $FUZZ_BUILD/artifacts-TARGET/
# (FUZZ_BUILD: the build folder, default build-fuzz).
set -euo pipefail
cd "$(dirname "$0")/.."
targets=(gguf tokenizer spec server)
if [ "${1:-}" = --list ]; then
	printf '%s\n' "${targets[@]}"
	exit 0
fi
if [ $# -ne 2 ] || [[ ! " ${targets[*]} " =~ " $1 " ]]; then
	echo "usage: ci/fuzz.sh --list | TARGET SECONDS | TARGET replay   (targets: ${targets[*]})" >&2
	exit 2
fi
t=$1
mode=$2
bash ci/deps.sh >/dev/null
b=${FUZZ_BUILD:-build-fuzz}
cmake -S . -B "$b" -DCMAKE_C_COMPILER=clang -DINFER_FUZZ=ON -DINFER_CUDA=OFF \
	-DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$b" --target "fuzz_$t" -j "$(nproc)"
bin=$b/fuzz/fuzz_$t
seeds=fuzz/corpus/$t
if [ "$mode" = replay ]; then
	# -runs=0 with directories: execute each input once, fail on any finding.
	exec "$bin" -runs=0 "$seeds"
fi
[[ "$mode" =~ ^[0-9]+$ ]] || { echo "error: SECONDS must be a number or 'replay'" >&2; exit 2; }
work=$b/corpus-$t
art=$b/artifacts-$t
mkdir -p "$work" "$art"
exec "$bin" -max_total_time="$mode" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
	-print_final_stats=1 -artifact_prefix="$art/" "$work" "$seeds"
