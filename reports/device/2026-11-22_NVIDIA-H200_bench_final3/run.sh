#!/bin/bash
# Final bench of the tree at the commit named in the report: 3 runs per model, then one with INFER_CUDA_TIMING=1.
mkdir -p /tmp/b && tar xJf .dev/carry/fin2/bins.tar.xz -C /tmp/b && chmod +x /tmp/b/*
export LD_LIBRARY_PATH=$PWD/.dev/carry/lib:$LD_LIBRARY_PATH
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
F=/tmp/fx; mkdir -p $F
for q in q4_k_m q8_0 f16; do timeout 60 /tmp/b/make_fixture -o $F/$q.gguf --mix $q --seed 1 > /dev/null 2>&1; done
for q in q4_k_m q8_0 f16; do
  for i in 1 2 3; do
    timeout 60 /tmp/b/infer bench -m $F/$q.gguf --backend cuda --prompt 512 --gen 128 --json > $OUT/bench_${q}_$i.json 2>/dev/null
    echo "$q $i: $(grep -oE "\"(prefill|decode)_tok_per_s\":[0-9.]*" $OUT/bench_${q}_$i.json | tr '\n' ' ')"
  done
  INFER_CUDA_TIMING=1 timeout 60 /tmp/b/infer bench -m $F/$q.gguf --backend cuda --prompt 512 --gen 128 --json > /dev/null 2>/tmp/t.err
  echo "$q timing: $(grep -o "[0-9.]* ms GPU time each, [0-9]* kernels" /tmp/t.err)"
done
rm -f $OUT/bench_*_2.json $OUT/bench_*_3.json
