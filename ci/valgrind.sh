#!/usr/bin/env bash
# valgrind memcheck on the CLIs: every case must finish with no invalid
# access, no use of uninitialised memory and no leak (definite, indirect or
# possible), on success and on refused input alike.
#   ci/valgrind.sh --list             the cases
#   ci/valgrind.sh BUILD_DIR [CASE]   run CASE (default: all) with BUILD_DIR's binaries
# Any build type works; the gate uses its Release build (no sanitizer: valgrind
# and ASan do not mix). Exit 0 clean, 1 a finding or an unexpected status, 2 usage.
set -euo pipefail
cd "$(dirname "$0")/.."
cases=(inspect generate bad-model conform-gguf-tokenizer conform-dequant conform-kernels
       conform-layers)
if [ "${1:-}" = --list ]; then
	printf '%s\n' "${cases[@]}"
	exit 0
fi
if [ $# -lt 1 ] || [ $# -gt 2 ] || [ ! -x "$1/runtime/infer" ]; then
	echo "usage: ci/valgrind.sh --list | BUILD_DIR [CASE]   (BUILD_DIR holds runtime/infer)" >&2
	exit 2
fi
build=$1
want=${2:-all}
model=golden/models/haiku-qwen2-tiny-q8_0.gguf
infer=$build/runtime/infer
conform=$build/harness/conform
# 99 marks a valgrind finding, so that an expected non-zero exit of the
# program (refused input) stays distinguishable from one.
vg=(valgrind --quiet --error-exitcode=99 --leak-check=full
    --show-leak-kinds=definite,indirect,possible --errors-for-leak-kinds=definite,indirect,possible
    --num-callers=30 --track-origins=yes --suppressions=ci/valgrind.supp)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# run EXPECTED_STATUS CMD...: valgrind CMD, output to $tmp/out.
run() {
	local expect=$1 rc=0
	shift
	"${vg[@]}" "$@" >"$tmp/out" 2>&1 || rc=$?
	if [ "$rc" -eq 99 ]; then
		cat "$tmp/out"
		echo "valgrind: memcheck finding in: $*"
		return 1
	fi
	if [ "$rc" -ne "$expect" ]; then
		tail -n 20 "$tmp/out"
		echo "valgrind: exit $rc, expected $expect: $*"
		return 1
	fi
	tail -n 1 "$tmp/out"
}

case_inspect() {
	run 0 "$infer" inspect "$model" && run 0 "$infer" inspect --json "$model"
}

case_generate() {
	run 0 "$infer" generate --backend cpu -m "$model" -p "Write a haiku about moon" --chat \
		--n 4 --temp 0 --threads 2
}

# Refused input: a truncated model (exit 2 after the message) must not leak.
case_bad-model() {
	head -c 4000 "$model" >"$tmp/truncated.gguf"
	run 2 "$infer" inspect "$tmp/truncated.gguf" &&
		run 2 "$infer" generate --backend cpu -m "$tmp/truncated.gguf" -p x --n 1
}

case_conform-gguf-tokenizer() {
	run 0 "$conform" run specs/gguf.yaml specs/tokenizer.yaml --backend cpu
}

case_conform-dequant() {
	run 0 "$conform" run specs/dequant.yaml --backend cpu --filter 'dequant/q4_K*'
}

# Kernels and layers read ../shared; without it the checks skip, which is
# still a full run of the loader and reports (and still must be clean).
case_conform-kernels() {
	run 0 "$conform" run specs/kernels.yaml --backend cpu --filter 'kernels/softmax*'
}

case_conform-layers() {
	run 0 "$conform" run specs/layers.yaml --backend cpu --filter 'layers/llamacpp/haiku-q8_0-moon'
}

status=0
for c in "${cases[@]}"; do
	[ "$want" = all ] || [ "$want" = "$c" ] || continue
	start=$SECONDS
	if "case_$c"; then
		echo "valgrind: $c clean ($((SECONDS - start)) s)"
	else
		echo "valgrind: $c FAILED ($((SECONDS - start)) s)"
		status=1
	fi
done
if [ "$want" != all ] && [[ ! " ${cases[*]} " =~ " $want " ]]; then
	echo "error: unknown case '$want' (ci/valgrind.sh --list)" >&2
	exit 2
fi
exit $status
