#!/bin/bash
# Decode attention with RoPE + KV store folded in (PDL), default path; fused opt-in check.
mkdir -p /tmp/b && tar xJf .dev/carry/fd5/bins.tar.xz -C /tmp/b && chmod +x /tmp/b/*
export LD_LIBRARY_PATH=$PWD/.dev/carry/lib:$LD_LIBRARY_PATH
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
F=/tmp/fx; mkdir -p $F
for q in q4_k_m q8_0 f16; do [ -f $F/$q.gguf ] || timeout 60 /tmp/b/make_fixture -o $F/$q.gguf --mix $q --seed 1 > /dev/null 2>&1; done
for mode in graph fused; do for m in golden/models/haiku-qwen2-tiny-q8_0.gguf $F/q4_k_m.gguf $F/q8_0.gguf; do
  INFER_CUDA_DECODE=$mode INFER_CUDA_TIMING=1 timeout 60 /tmp/b/cuda_forward_check $m 24 16 > $OUT/fwd_${mode}_$(basename $m).txt 2>&1; echo "forward $mode $m rc=$?"; grep -E "greedy|cuda timing|summary" $OUT/fwd_${mode}_$(basename $m).txt | tail -3
done; done
for i in 1 2; do for q in q4_k_m q8_0 f16; do for v in infer infer_before; do
  INFER_CUDA_TIMING=1 timeout 60 /tmp/b/$v bench -m $F/$q.gguf --backend cuda --prompt 512 --gen 128 --json > $OUT/b_${v}_${q}_$i.json 2>$OUT/b_${v}_${q}_$i.err
  echo "$i $q $v: $(grep -oE "\"(prefill|decode)_tok_per_s\":[0-9.]*" $OUT/b_${v}_${q}_$i.json | tr '\n' ' ') $(grep -o "[0-9.]* ms GPU time each, [0-9]* kernels" $OUT/b_${v}_${q}_$i.err)"
done; done; done
timeout 120 /tmp/b/cuda_selftest golden > $OUT/selftest.txt 2>&1; echo "selftest rc=$?"; grep -E "^FAIL" $OUT/selftest.txt | head; tail -1 $OUT/selftest.txt
