#!/bin/bash
# p5: in-graph attribution: GPU ms per decode step with one kernel class left out (INFER_SKIP, timing aid only, wrong results), attention split counts
mkdir -p /tmp/b5 && tar xJf .dev/carry/p5/bins.tar.xz -C /tmp/b5 && chmod +x /tmp/b5/*
export LD_LIBRARY_PATH=$PWD/.dev/carry/lib:$LD_LIBRARY_PATH
mkdir -p /tmp/b3 && tar xJf .dev/carry/p3/bins.tar.xz -C /tmp/b3 && chmod +x /tmp/b3/*
F=/tmp/fx; mkdir -p $F
for q in q4_k_m q8_0; do [ -f $F/$q.gguf ] || timeout 60 /tmp/b3/make_fixture -o $F/$q.gguf --mix $q --seed 1 > /dev/null 2>&1; done
for q in q4_k_m q8_0; do
for sk in 0 1 2 4 8 16 32 24 6; do
  INFER_MV1_AHEAD=0 INFER_SKIP=$sk INFER_CUDA_TIMING=1 timeout 60 /tmp/b5/infer bench -m $F/$q.gguf --backend cuda --prompt 512 --gen 128 --json > $OUT/t.json 2>$OUT/b.err
  echo "$q skip=$sk: $(grep -o "[0-9.]* ms GPU time each, [0-9]* kernels" $OUT/b.err)"
done
for sp in 1 2 4 6 8; do
  INFER_MV1_AHEAD=0 INFER_ATTN_SPLITS=$sp INFER_CUDA_TIMING=1 timeout 60 /tmp/b5/infer bench -m $F/$q.gguf --backend cuda --prompt 512 --gen 128 --json > $OUT/t.json 2>$OUT/b.err
  echo "$q splits=$sp: $(grep -o "[0-9.]* ms GPU time each, [0-9]* kernels" $OUT/b.err)"
done
done
