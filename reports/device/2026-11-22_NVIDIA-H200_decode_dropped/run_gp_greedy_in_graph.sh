#!/bin/bash
# greedy pick as the decode graph's last kernel (PDL behind the LM head); INFER_CUDA_GRAPH_PICK=0: after the graph as before
mkdir -p /tmp/bg && tar xJf .dev/carry/gp/bins.tar.xz -C /tmp/bg && chmod +x /tmp/bg/*
export LD_LIBRARY_PATH=$PWD/.dev/carry/lib:$LD_LIBRARY_PATH
F=/tmp/fx; mkdir -p $F
for q in q4_k_m q8_0 f16; do [ -f $F/$q.gguf ] || timeout 60 /tmp/bg/make_fixture -o $F/$q.gguf --mix $q --seed 1 > /dev/null 2>&1; done
H=golden/models/haiku-qwen2-tiny-q8_0.gguf
{ for m in $H $F/q4_k_m.gguf $F/q8_0.gguf $F/f16.gguf; do
  timeout 60 /tmp/bg/cuda_forward_check $m 40 32 2>&1 | grep -E "PASS|FAIL|summary" | sed "s|^|$(basename $m): |"
done
INFER_CUDA_GRAPH_PICK=0 timeout 60 /tmp/bg/cuda_forward_check $H 40 32 2>&1 | grep -E "speculation|summary" | sed "s|^|pick=0 haiku: |"
INFER_CUDA_SPECULATE=0 timeout 60 /tmp/bg/cuda_forward_check $H 40 32 2>&1 | grep -E "speculation|summary" | sed "s|^|spec=0 haiku: |"
INFER_CUDA_DECODE=fused timeout 60 /tmp/bg/cuda_forward_check $H 40 32 2>&1 | grep -E "speculation|summary|greedy" | sed "s|^|fused haiku: |"
} > $OUT/forward_check.txt; grep -c ": PASS" $OUT/forward_check.txt; grep -E "FAIL|summary|steps taken" $OUT/forward_check.txt | cut -c1-200
timeout 100 /tmp/bg/cuda_sample_check 40 > $OUT/sample_check.txt 2>&1; echo "sample_check rc=$? $(tail -1 $OUT/sample_check.txt)"
for be in cpu cuda; do for seed in 0 7; do
  T="--temp 0"; [ $seed = 7 ] && T="--seed 7"
  timeout 60 /tmp/bg/infer generate -m $H -p "Write a haiku about the moon." --chat $T --n 48 --backend $be --json > /tmp/gen_${be}_$seed.json 2>&1
done; done
python3 -c "
import json
for s in ('0','7'):
  a=json.load(open('/tmp/gen_cpu_'+s+'.json')); b=json.load(open('/tmp/gen_cuda_'+s+'.json'))
  print('generate seed', s, 'tokens cpu == cuda:', a.get('tokens')==b.get('tokens'), len(a.get('tokens') or []))
" | tee $OUT/generate.txt
for i in 1 2; do for gp in 1 0; do for q in q4_k_m q8_0 f16; do
  INFER_CUDA_GRAPH_PICK=$gp timeout 30 /tmp/bg/infer bench -m $F/$q.gguf --backend cuda --prompt 512 --gen 128 --json > $OUT/b_${q}_pick${gp}_$i.json 2>/dev/null
  echo "$i pick=$gp $q: $(grep -oE "\"(prefill|decode)_tok_per_s\":[0-9.]*" $OUT/b_${q}_pick${gp}_$i.json | tr '\n' ' ')"
done; done; done | tee $OUT/bench.txt
for q in q4_k_m q8_0; do
  INFER_CUDA_TIMING=1 timeout 30 /tmp/bg/infer bench -m $F/$q.gguf --backend cuda --prompt 512 --gen 128 --json > /tmp/t.json 2>/tmp/t.err
  echo "timing $q: $(grep -o "[0-9.]* ms GPU time each, [0-9]* kernels" /tmp/t.err)"
done | tee -a $OUT/bench.txt
rm -f $OUT/b_*_2.json $OUT/b_*pick0_1.json
