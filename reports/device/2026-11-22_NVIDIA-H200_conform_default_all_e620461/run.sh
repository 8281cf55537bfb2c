#!/bin/bash
# conform run specs/default.yaml --backend all on the device, in parts (the carried data must stay small): run.sh PART BINS
C=$1; BIN=$2
mkdir -p /tmp/b && tar xJf $BIN/bins.tar.xz -C /tmp/b && chmod +x /tmp/b/*
export LD_LIBRARY_PATH=$PWD/.dev/carry/lib:$LD_LIBRARY_PATH INFER_BIN_DIR=/tmp/b
SH=$PWD/.dev/c$C/sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
run() { d=$1; shift; /tmp/b/conform run "$@" --backend all --set SHARED=$SH --report-dir $OUT/$d > $OUT/$d.log 2>&1; echo "$d rc=$?"; grep -iE "checks|pass|fail" $OUT/$d/summary.md | head -3; grep -E "FAIL|ERROR" $OUT/$d.log | head -10; }
case $C in
A) run A specs/gguf.yaml specs/dequant.yaml specs/kernels.yaml specs/kernels-random.yaml specs/tokenizer.yaml specs/haiku.yaml ;;
B1) run B1a specs/layers.yaml --filter 'layers/transformers/*'; run B1b specs/layers.yaml --filter 'layers/llamacpp/haiku-f*' ;;
B2) run B2 specs/layers.yaml --filter 'layers/llamacpp/haiku-q*' ;;
C1) run C1 specs/layers.yaml --filter 'layers/llamacpp/k256-f32*' ;;
C2) run C2 specs/layers.yaml --filter 'layers/llamacpp/k256-q*' ;;
D) run D specs/layers.yaml --filter 'layers/llamacpp/tiny-random*' ;;
esac
rm -f $OUT/*/report.html $OUT/*/junit.xml
