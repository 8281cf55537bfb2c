#!/bin/bash
# after the de-duplication of attn_core.cuh / matvec1.cu: checks + bench
mkdir -p /tmp/b && tar xJf .dev/carry/fd14/bins.tar.xz -C /tmp/b && chmod +x /tmp/b/*
export LD_LIBRARY_PATH=$PWD/.dev/carry/lib:$LD_LIBRARY_PATH
F=/tmp/fx; mkdir -p $F
for q in q4_k_m q8_0; do [ -f $F/$q.gguf ] || timeout 60 /tmp/b/make_fixture -o $F/$q.gguf --mix $q --seed 1 > /dev/null 2>&1; done
for mode in graph fused; do for m in golden/models/haiku-qwen2-tiny-q8_0.gguf $F/q4_k_m.gguf $F/q8_0.gguf; do
  INFER_CUDA_DECODE=$mode timeout 60 /tmp/b/cuda_forward_check $m 24 16 > $OUT/f.txt 2>&1; echo "$mode $(basename $m): $(grep -E "greedy" $OUT/f.txt) $(grep summary $OUT/f.txt)"
done; done
for q in q4_k_m q8_0; do
  timeout 60 /tmp/b/infer bench -m $F/$q.gguf --backend cuda --prompt 512 --gen 128 --json > $OUT/n_${q}.json 2>/dev/null
  echo "$q: $(grep -oE "\"(prefill|decode)_tok_per_s\":[0-9.]*" $OUT/n_${q}.json | tr '\n' ' ')"
done
timeout 120 /tmp/b/cuda_selftest golden > $OUT/selftest.txt 2>&1; echo "selftest rc=$?"; grep -E "^FAIL" $OUT/selftest.txt | head; tail -1 $OUT/selftest.txt
