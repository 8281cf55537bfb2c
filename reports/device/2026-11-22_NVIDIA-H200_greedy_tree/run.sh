#!/bin/bash
# greedy pick: 128 blocks x 256 threads, one tuple reduction (argmax, max, sum of exp) per block, parallel merge (gk) vs HEAD (fin)
mkdir -p /tmp/bk /tmp/bf && tar xJf .dev/carry/gk/bins.tar.xz -C /tmp/bk && tar xJf .dev/carry/fin/bins.tar.xz -C /tmp/bf && chmod +x /tmp/bk/* /tmp/bf/*
export LD_LIBRARY_PATH=$PWD/.dev/carry/lib:$LD_LIBRARY_PATH
F=/tmp/fx; mkdir -p $F
for q in q4_k_m q8_0 f16; do [ -f $F/$q.gguf ] || timeout 60 /tmp/bf/make_fixture -o $F/$q.gguf --mix $q --seed 1 > /dev/null 2>&1; done
timeout 100 /tmp/bk/cuda_sample_check 40 > $OUT/sample_check.txt 2>&1; echo "sample_check rc=$? $(tail -1 $OUT/sample_check.txt)"; grep -iE "greedy|FAIL" $OUT/sample_check.txt | head -8
H=golden/models/haiku-qwen2-tiny-q8_0.gguf
for m in $H $F/q4_k_m.gguf $F/q8_0.gguf $F/f16.gguf; do
  timeout 60 /tmp/bk/cuda_forward_check $m 40 32 2>&1 | grep -E "device-sampled|summary" | tr '\n' ' ' | cut -c1-220; echo
done | tee $OUT/forward_check.txt
for i in 1 2; do for b in bk bf; do for q in q4_k_m q8_0 f16; do
  timeout 30 /tmp/$b/infer bench -m $F/$q.gguf --backend cuda --prompt 512 --gen 128 --json > /tmp/n.json 2>/dev/null
  echo "$i $b $q: $(grep -oE "\"(prefill|decode)_tok_per_s\":[0-9.]*" /tmp/n.json | tr '\n' ' ')"
done; done; done | tee $OUT/bench.txt
