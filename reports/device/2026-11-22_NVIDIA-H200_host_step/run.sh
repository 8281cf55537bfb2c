#!/bin/bash
# host side of a decode step: no sync after the graph when the logits stay on the device; greedy without a penalty skips the key copy.
mkdir -p /tmp/b && tar xJf .dev/carry/fd13/bins.tar.xz -C /tmp/b && chmod +x /tmp/b/*
export LD_LIBRARY_PATH=$PWD/.dev/carry/lib:$LD_LIBRARY_PATH
F=/tmp/fx; mkdir -p $F
for q in q4_k_m q8_0; do [ -f $F/$q.gguf ] || timeout 60 /tmp/b/make_fixture -o $F/$q.gguf --mix $q --seed 1 > /dev/null 2>&1; done
timeout 100 /tmp/b/cuda_sample_check 40 > $OUT/sample_check.txt 2>&1; echo "sample_check rc=$?"; tail -2 $OUT/sample_check.txt
M=golden/models/haiku-qwen2-tiny-q8_0.gguf
for be in cpu cuda; do for seed in 0 7; do
  T="--temp 0"; [ $seed = 7 ] && T="--seed 7"
  timeout 60 /tmp/b/infer generate -m $M -p "Write a haiku about the moon." --chat $T --n 48 --backend $be --json > $OUT/gen_${be}_$seed.json 2>&1
done; done
python3 -c "
import json
for s in ('0','7'):
  a=json.load(open('$OUT/gen_cpu_'+s+'.json')); b=json.load(open('$OUT/gen_cuda_'+s+'.json'))
  print('seed', s, 'tokens cpu == cuda:', a.get('tokens')==b.get('tokens'), len(a.get('tokens') or []), repr(b.get('text'))[:80])
"
INFER_CUDA_DECODE=fused timeout 60 /tmp/b/cuda_forward_check $F/q8_0.gguf 24 16 > $OUT/fused.txt 2>&1; echo "fused q8_0: $(grep greedy $OUT/fused.txt) $(grep summary $OUT/fused.txt)"
for i in 1 2; do for q in q4_k_m q8_0; do
  timeout 60 /tmp/b/infer bench -m $F/$q.gguf --backend cuda --prompt 512 --gen 128 --json > $OUT/n_${q}_$i.json 2>/dev/null
  echo "$i $q (no timing): $(grep -oE "\"(prefill|decode)_tok_per_s\":[0-9.]*" $OUT/n_${q}_$i.json | tr '\n' ' ')"
  INFER_CUDA_TIMING=1 timeout 60 /tmp/b/infer bench -m $F/$q.gguf --backend cuda --prompt 512 --gen 128 --json > $OUT/b_${q}_$i.json 2>$OUT/b.err
  echo "$i $q: $(grep -oE "\"(prefill|decode)_tok_per_s\":[0-9.]*" $OUT/b_${q}_$i.json | tr '\n' ' ') $(grep -o "[0-9.]* ms GPU time each, [0-9]* kernels" $OUT/b.err)"
done; done
