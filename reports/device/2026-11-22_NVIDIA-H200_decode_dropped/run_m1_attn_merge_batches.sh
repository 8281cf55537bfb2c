#!/bin/bash
# attention split merge: loads of 8 splits issued together (m1) vs one round trip per split (fin = 8697a43)
mkdir -p /tmp/bm /tmp/bf && tar xJf .dev/carry/m1/bins.tar.xz -C /tmp/bm && tar xJf .dev/carry/fin/bins.tar.xz -C /tmp/bf && chmod +x /tmp/bm/* /tmp/bf/*
export LD_LIBRARY_PATH=$PWD/.dev/carry/lib:$LD_LIBRARY_PATH
F=/tmp/fx; mkdir -p $F
for q in q4_k_m q8_0; do [ -f $F/$q.gguf ] || timeout 60 /tmp/bf/make_fixture -o $F/$q.gguf --mix $q --seed 1 > /dev/null 2>&1; done
for m in golden/models/haiku-qwen2-tiny-q8_0.gguf $F/q4_k_m.gguf $F/q8_0.gguf; do
  timeout 60 /tmp/bm/cuda_forward_check $m 40 32 2>&1 | grep -E "greedy|speculation|summary" | tr '\n' ' ' | cut -c1-300; echo
done
for i in 1 2; do for b in bm bf; do for q in q4_k_m q8_0; do
  timeout 30 /tmp/$b/infer bench -m $F/$q.gguf --backend cuda --prompt 512 --gen 128 --json > /tmp/n.json 2>/dev/null
  INFER_CUDA_TIMING=1 timeout 30 /tmp/$b/infer bench -m $F/$q.gguf --backend cuda --prompt 512 --gen 128 --json > /tmp/t.json 2>/tmp/t.err
  echo "$i $b $q: $(grep -oE "\"(prefill|decode)_tok_per_s\":[0-9.]*" /tmp/n.json | tr '\n' ' ') $(grep -o "[0-9.]* ms GPU time each, [0-9]* kernels" /tmp/t.err)"
done; done; done | tee $OUT/bench.txt
