#!/bin/bash
# review refactors (one block all-reduce, one list of the wide-load types, one row loop in mv1_body): checks + bench vs the previous binaries (fin)
mkdir -p /tmp/br /tmp/bf && tar xJf .dev/carry/rf/bins.tar.xz -C /tmp/br && tar xJf .dev/carry/fin/bins.tar.xz -C /tmp/bf && chmod +x /tmp/br/* /tmp/bf/*
export LD_LIBRARY_PATH=$PWD/.dev/carry/lib:$LD_LIBRARY_PATH
F=/tmp/fx; mkdir -p $F
for q in q4_k_m q8_0 f16; do [ -f $F/$q.gguf ] || timeout 60 /tmp/bf/make_fixture -o $F/$q.gguf --mix $q --seed 1 > /dev/null 2>&1; done
timeout 200 /tmp/br/cuda_selftest golden > $OUT/selftest.txt 2>&1; echo "selftest rc=$? $(tail -1 $OUT/selftest.txt)"; grep -E "FAIL|qfast" $OUT/selftest.txt
for m in golden/models/haiku-qwen2-tiny-q8_0.gguf $F/q4_k_m.gguf $F/q8_0.gguf $F/f16.gguf; do
  timeout 60 /tmp/br/cuda_forward_check $m 40 32 2>&1 | grep -E "PASS|FAIL|summary" | sed "s|^|$(basename $m): |" | cut -c1-160
done | tee $OUT/forward_check.txt | grep -E "FAIL|summary"
INFER_MV1_DOT=0 timeout 60 /tmp/br/cuda_forward_check $F/q4_k_m.gguf 24 16 2>&1 | grep -E "greedy|summary" | sed "s|^|dot=0 q4_k_m: |"
for i in 1 2; do for b in br bf; do for q in q4_k_m q8_0; do
  INFER_CUDA_TIMING=1 timeout 30 /tmp/$b/infer bench -m $F/$q.gguf --backend cuda --prompt 512 --gen 128 --json > /tmp/t.json 2>/tmp/t.err
  echo "$i $b $q: $(grep -oE "\"(prefill|decode)_tok_per_s\":[0-9.]*" /tmp/t.json | tr '\n' ' ') $(grep -o "[0-9.]* ms GPU time each" /tmp/t.err)"
done; done; done | tee $OUT/bench.txt
