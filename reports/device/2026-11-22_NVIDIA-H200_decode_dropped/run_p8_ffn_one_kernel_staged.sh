#!/bin/bash
# p8 = p7 + the down row staged at kernel start (shared memory above the gate/up rows) + barrier pollers back off
mkdir -p /tmp/b8 /tmp/b3 && tar xJf .dev/carry/p8/bins.tar.xz -C /tmp/b8 && tar xJf .dev/carry/p3/bins.tar.xz -C /tmp/b3 && chmod +x /tmp/b8/* /tmp/b3/*
export LD_LIBRARY_PATH=$PWD/.dev/carry/lib:$LD_LIBRARY_PATH
F=/tmp/fx; mkdir -p $F
for q in q4_k_m q8_0; do [ -f $F/$q.gguf ] || timeout 60 /tmp/b3/make_fixture -o $F/$q.gguf --mix $q --seed 1 > /dev/null 2>&1; done
for m in golden/models/haiku-qwen2-tiny-q8_0.gguf $F/q4_k_m.gguf $F/q8_0.gguf; do
  timeout 60 /tmp/b8/cuda_forward_check $m 24 16 > $OUT/fc.txt 2>&1; echo "fwd $(basename $m) rc=$?: $(grep -i "greedy\|summary\|error" $OUT/fc.txt | tr '\n' ' ' | cut -c1-250)"
done
for i in 1 2; do for v in 1 0; do for q in q4_k_m q8_0; do
  INFER_FFN_FUSED=$v timeout 30 /tmp/b8/infer bench -m $F/$q.gguf --backend cuda --prompt 512 --gen 128 --json > $OUT/n.json 2>$OUT/n.err
  INFER_FFN_FUSED=$v INFER_CUDA_TIMING=1 timeout 30 /tmp/b8/infer bench -m $F/$q.gguf --backend cuda --prompt 512 --gen 128 --json > $OUT/t.json 2>$OUT/b.err
  echo "$i fused=$v $q: $(grep -oE "\"decode_tok_per_s\":[0-9.]*" $OUT/n.json) $(grep -o "[0-9.]* ms GPU time each, [0-9]* kernels" $OUT/b.err) $(head -c 200 $OUT/n.err)"
done; done; done
rm -f $OUT/t.json $OUT/n.json
