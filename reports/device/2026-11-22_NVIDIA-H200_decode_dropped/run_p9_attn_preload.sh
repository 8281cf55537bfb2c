#!/bin/bash
# p9 = 1d7fce6 + decode attention K/V rows into registers before the PDL wait (INFER_ATTN_PRELOAD=0 off) + helper's speculative step (in progress; INFER_CUDA_SPECULATE=0 off)
mkdir -p /tmp/b9 /tmp/b3 && tar xJf .dev/carry/p9/bins.tar.xz -C /tmp/b9 && tar xJf .dev/carry/p3/bins.tar.xz -C /tmp/b3 && chmod +x /tmp/b9/* /tmp/b3/*
export LD_LIBRARY_PATH=$PWD/.dev/carry/lib:$LD_LIBRARY_PATH
F=/tmp/fx; mkdir -p $F
for q in q4_k_m q8_0; do [ -f $F/$q.gguf ] || timeout 60 /tmp/b3/make_fixture -o $F/$q.gguf --mix $q --seed 1 > /dev/null 2>&1; done
for m in golden/models/haiku-qwen2-tiny-q8_0.gguf $F/q4_k_m.gguf $F/q8_0.gguf; do
  timeout 60 /tmp/b9/cuda_forward_check $m 24 16 > $OUT/fc.txt 2>&1; echo "fwd $(basename $m) rc=$?: $(grep -iE "greedy|summary|error|FAIL|spec" $OUT/fc.txt | tr '\n' ' ' | cut -c1-400)"
done
for i in 1 2; do for v in "INFER_ATTN_PRELOAD=1" "INFER_ATTN_PRELOAD=0"; do for q in q4_k_m q8_0; do
  env $v INFER_CUDA_SPECULATE=0 timeout 30 /tmp/b9/infer bench -m $F/$q.gguf --backend cuda --prompt 512 --gen 128 --json > $OUT/n.json 2>$OUT/n.err
  env $v INFER_CUDA_TIMING=1 timeout 30 /tmp/b9/infer bench -m $F/$q.gguf --backend cuda --prompt 512 --gen 128 --json > $OUT/t.json 2>$OUT/b.err
  echo "$i $v $q: $(grep -oE "\"decode_tok_per_s\":[0-9.]*" $OUT/n.json) $(grep -o "[0-9.]* ms GPU time each, [0-9]* kernels" $OUT/b.err) $(head -c 200 $OUT/n.err)"
done; done; done
for q in q4_k_m q8_0; do
  timeout 30 /tmp/b9/infer bench -m $F/$q.gguf --backend cuda --prompt 512 --gen 128 --json > $OUT/n.json 2>$OUT/n.err
  echo "speculate default $q: $(grep -oE "\"(decode_tok_per_s|kernel_launches[a-z_]*)\":[0-9.]*" $OUT/n.json | tr '\n' ' ') $(head -c 300 $OUT/n.err)"
done
rm -f $OUT/t.json $OUT/n.json
