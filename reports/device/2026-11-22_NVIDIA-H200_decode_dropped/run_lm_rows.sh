#!/bin/bash
# LM head rows per block 8 / 16 / 32 (measurement build, MV1_LM_ROWS)
mkdir -p /tmp/bl /tmp/bf && tar xJf .dev/carry/lm/bins.tar.xz -C /tmp/bl && tar xJf .dev/carry/fin/bins.tar.xz -C /tmp/bf && chmod +x /tmp/bl/* /tmp/bf/*
export LD_LIBRARY_PATH=$PWD/.dev/carry/lib:$LD_LIBRARY_PATH
F=/tmp/fx; mkdir -p $F
for q in q4_k_m q8_0; do [ -f $F/$q.gguf ] || timeout 60 /tmp/bf/make_fixture -o $F/$q.gguf --mix $q --seed 1 > /dev/null 2>&1; done
for i in 1 2; do for r in 16 8 32; do for q in q4_k_m q8_0; do
  MV1_LM_ROWS=$r INFER_CUDA_TIMING=1 timeout 30 /tmp/bl/infer bench -m $F/$q.gguf --backend cuda --prompt 512 --gen 128 --json > /tmp/t.json 2>/tmp/t.err
  echo "$i rows=$r $q: $(grep -oE "\"decode_tok_per_s\":[0-9.]*" /tmp/t.json) $(grep -o "[0-9.]* ms GPU time each, [0-9]* kernels" /tmp/t.err)"
done; done; done | tee $OUT/bench.txt
