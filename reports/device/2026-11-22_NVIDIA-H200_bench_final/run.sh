#!/bin/bash
# prefill attention without the value preload (VB = 0); final numbers of this session.
mkdir -p /tmp/b && tar xJf .dev/carry/fd12/bins.tar.xz -C /tmp/b && chmod +x /tmp/b/*
export LD_LIBRARY_PATH=$PWD/.dev/carry/lib:$LD_LIBRARY_PATH
F=/tmp/fx; mkdir -p $F
for q in q4_k_m q8_0 f16; do [ -f $F/$q.gguf ] || timeout 60 /tmp/b/make_fixture -o $F/$q.gguf --mix $q --seed 1 > /dev/null 2>&1; done
for m in golden/models/haiku-qwen2-tiny-q8_0.gguf $F/q4_k_m.gguf $F/q8_0.gguf $F/f16.gguf; do
  INFER_CUDA_TIMING=1 timeout 60 /tmp/b/cuda_forward_check $m 24 16 > $OUT/f.txt 2>&1; echo "$(basename $m): $(grep -E "greedy" $OUT/f.txt) $(grep summary $OUT/f.txt) $(grep -o "[0-9.]* ms GPU time each" $OUT/f.txt)"
done
for i in 1 2; do for q in q4_k_m q8_0 f16; do for sh in 1; do
  [ $q = f16 ] && [ $sh = 0 ] && continue
  INFER_MV1_SHORT=$sh INFER_CUDA_TIMING=1 timeout 60 /tmp/b/infer bench -m $F/$q.gguf --backend cuda --prompt 512 --gen 128 --json > $OUT/b_${q}_${sh}_$i.json 2>$OUT/b.err
  echo "$i $q group=$sh: $(grep -oE "\"(prefill|decode)_tok_per_s\":[0-9.]*" $OUT/b_${q}_${sh}_$i.json | tr '\n' ' ') $(grep -o "[0-9.]* ms GPU time each, [0-9]* kernels" $OUT/b.err)"
done; done; done
