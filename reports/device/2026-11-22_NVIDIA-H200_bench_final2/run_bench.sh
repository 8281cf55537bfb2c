#!/bin/bash
# final bench of this tree (HEAD + cuda_reset), speculative step on / off, alternated, two rounds
mkdir -p /tmp/bf && tar xJf .dev/carry/fin/bins.tar.xz -C /tmp/bf && chmod +x /tmp/bf/*
export LD_LIBRARY_PATH=$PWD/.dev/carry/lib:$LD_LIBRARY_PATH
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
F=/tmp/fx; mkdir -p $F
for q in q4_k_m q8_0 f16; do [ -f $F/$q.gguf ] || timeout 60 /tmp/bf/make_fixture -o $F/$q.gguf --mix $q --seed 1 > /dev/null 2>&1; done
timeout 60 /tmp/bf/cuda_forward_check golden/models/haiku-qwen2-tiny-q8_0.gguf 40 32 2>&1 | grep -E "speculation|summary"
for i in 1 2; do for sp in 1 0; do for q in q4_k_m q8_0 f16; do
  INFER_CUDA_SPECULATE=$sp timeout 30 /tmp/bf/infer bench -m $F/$q.gguf --backend cuda --prompt 512 --gen 128 --json > $OUT/b_${q}_spec${sp}_$i.json 2>/dev/null
  echo "$i spec=$sp $q: $(grep -oE "\"(prefill|decode)_tok_per_s\":[0-9.]*" $OUT/b_${q}_spec${sp}_$i.json | tr '\n' ' ')"
done; done; done | tee $OUT/bench.txt
for q in q4_k_m q8_0 f16; do
  INFER_CUDA_TIMING=1 timeout 30 /tmp/bf/infer bench -m $F/$q.gguf --backend cuda --prompt 512 --gen 128 --json > /tmp/t.json 2>/tmp/t.err
  echo "timing $q: $(grep -o "[0-9.]* ms GPU time each, [0-9]* kernels" /tmp/t.err)"
done | tee -a $OUT/bench.txt
rm -f $OUT/b_*_2.json $OUT/b_*spec0_1.json
