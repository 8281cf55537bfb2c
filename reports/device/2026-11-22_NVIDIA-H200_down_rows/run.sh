#!/bin/bash
# down projection rows per block (1, 2, 4)
mkdir -p /tmp/b && tar xJf .dev/carry/fd15/bins.tar.xz -C /tmp/b && chmod +x /tmp/b/*
export LD_LIBRARY_PATH=$PWD/.dev/carry/lib:$LD_LIBRARY_PATH
F=/tmp/fx; mkdir -p $F
for q in q4_k_m q8_0; do [ -f $F/$q.gguf ] || timeout 60 /tmp/b/make_fixture -o $F/$q.gguf --mix $q --seed 1 > /dev/null 2>&1; done
for q in q4_k_m q8_0; do for r in 1 2 4 1; do
  INFER_MV1_DOWN_ROWS=$r INFER_CUDA_TIMING=1 timeout 60 /tmp/b/infer bench -m $F/$q.gguf --backend cuda --prompt 512 --gen 128 --json > $OUT/b_${q}_$r.json 2>$OUT/b.err
  echo "$q rows=$r: $(grep -oE "\"decode_tok_per_s\":[0-9.]*" $OUT/b_${q}_$r.json) $(grep -o "[0-9.]* ms GPU time each" $OUT/b.err)"
done; done
