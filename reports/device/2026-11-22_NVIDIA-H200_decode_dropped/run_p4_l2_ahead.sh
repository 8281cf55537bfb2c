#!/bin/bash
# p4 = c12a5af + q|k|v blocks prefetch the layer's o/gate/up/down weights into L2 (INFER_MV1_AHEAD=0 off)
mkdir -p /tmp/b /tmp/b3 && tar xJf .dev/carry/p4/bins.tar.xz -C /tmp/b && tar xJf .dev/carry/p3/bins.tar.xz -C /tmp/b3 && chmod +x /tmp/b/* /tmp/b3/*
export LD_LIBRARY_PATH=$PWD/.dev/carry/lib:$LD_LIBRARY_PATH
F=/tmp/fx; mkdir -p $F
for q in q4_k_m q8_0; do [ -f $F/$q.gguf ] || timeout 60 /tmp/b3/make_fixture -o $F/$q.gguf --mix $q --seed 1 > /dev/null 2>&1; done
for m in golden/models/haiku-qwen2-tiny-q8_0.gguf $F/q4_k_m.gguf $F/q8_0.gguf; do
  timeout 100 /tmp/b/cuda_forward_check $m 24 16 > $OUT/fc.txt 2>&1; echo "fwd $(basename $m) rc=$?: $(grep -i "greedy\|summary" $OUT/fc.txt | tr '\n' ' ' | cut -c1-200)"
done
for i in 1 2; do for ah in 1 0; do for q in q4_k_m q8_0; do
  INFER_MV1_AHEAD=$ah timeout 60 /tmp/b/infer bench -m $F/$q.gguf --backend cuda --prompt 512 --gen 128 --json > $OUT/n.json 2>/dev/null
  INFER_MV1_AHEAD=$ah INFER_CUDA_TIMING=1 timeout 60 /tmp/b/infer bench -m $F/$q.gguf --backend cuda --prompt 512 --gen 128 --json > $OUT/t.json 2>$OUT/b.err
  echo "$i ahead=$ah $q: $(grep -oE "\"(prefill|decode)_tok_per_s\":[0-9.]*" $OUT/n.json | tr '\n' ' ') timing: $(grep -o "[0-9.]* ms GPU time each, [0-9]* kernels" $OUT/b.err)"
done; done; done
rm -f $OUT/t.json $OUT/fc.txt $OUT/n.json
