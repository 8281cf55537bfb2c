#!/bin/bash
# p6 = p5 + qfast dot (scale once per group, INFER_MV1_DOT=0 off) + decode attention clusters of 16 (INFER_ATTN_SPLITS=8: old)
mkdir -p /tmp/b6 /tmp/b3 && tar xJf .dev/carry/p6/bins.tar.xz -C /tmp/b6 && tar xJf .dev/carry/p3/bins.tar.xz -C /tmp/b3 && chmod +x /tmp/b6/* /tmp/b3/*
export LD_LIBRARY_PATH=$PWD/.dev/carry/lib:$LD_LIBRARY_PATH
F=/tmp/fx; mkdir -p $F
for q in q4_k_m q8_0; do [ -f $F/$q.gguf ] || timeout 60 /tmp/b3/make_fixture -o $F/$q.gguf --mix $q --seed 1 > /dev/null 2>&1; done
for m in golden/models/haiku-qwen2-tiny-q8_0.gguf $F/q4_k_m.gguf $F/q8_0.gguf; do
  timeout 100 /tmp/b6/cuda_forward_check $m 24 16 > $OUT/fc.txt 2>&1; echo "fwd $(basename $m) rc=$?: $(grep -i "greedy\|summary" $OUT/fc.txt | tr '\n' ' ' | cut -c1-200)"
done
timeout 200 /tmp/b6/cuda_selftest golden > $OUT/selftest.txt 2>&1; echo "selftest rc=$?"; grep FAIL $OUT/selftest.txt | head -5; tail -1 $OUT/selftest.txt
for i in 1 2; do for v in "X=1" "INFER_MV1_DOT=0" "INFER_ATTN_SPLITS=8" "INFER_ATTN_SPLITS=12"; do for q in q4_k_m q8_0; do
  env $v INFER_MV1_AHEAD=0 INFER_CUDA_TIMING=1 timeout 60 /tmp/b6/infer bench -m $F/$q.gguf --backend cuda --prompt 512 --gen 128 --json > $OUT/t.json 2>$OUT/b.err
  echo "$i $v $q: $(grep -oE "\"decode_tok_per_s\":[0-9.]*" $OUT/t.json) $(grep -o "[0-9.]* ms GPU time each, [0-9]* kernels" $OUT/b.err)"
done; done; done
rm -f $OUT/t.json $OUT/fc.txt
