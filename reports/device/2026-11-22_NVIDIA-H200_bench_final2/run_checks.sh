#!/bin/bash
# final checks and bench of this tree (HEAD, Release): forward checks (with and without the speculative step),
# selftest, sample check, generate cpu vs cuda on the haiku model, bench q4_k_m / q8_0 / f16 with the speculative step on / off
mkdir -p /tmp/bf && tar xJf .dev/carry/fin/bins.tar.xz -C /tmp/bf && chmod +x /tmp/bf/*
export LD_LIBRARY_PATH=$PWD/.dev/carry/lib:$LD_LIBRARY_PATH
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
F=/tmp/fx; mkdir -p $F
for q in q4_k_m q8_0 f16; do [ -f $F/$q.gguf ] || timeout 60 /tmp/bf/make_fixture -o $F/$q.gguf --mix $q --seed 1 > /dev/null 2>&1; done
H=golden/models/haiku-qwen2-tiny-q8_0.gguf
{ for m in $H $F/q4_k_m.gguf $F/q8_0.gguf $F/f16.gguf; do
  timeout 60 /tmp/bf/cuda_forward_check $m 40 32 2>&1 | grep -E "PASS|FAIL|summary" | sed "s|^|$(basename $m): |"
done
INFER_CUDA_SPECULATE=0 timeout 60 /tmp/bf/cuda_forward_check $H 40 32 2>&1 | grep -E "speculation|summary" | sed "s|^|spec=0 haiku: |"
} > $OUT/forward_check.txt; grep -cE ": PASS" $OUT/forward_check.txt; grep -E "FAIL|summary|steps taken" $OUT/forward_check.txt | cut -c1-230
timeout 200 /tmp/bf/cuda_selftest golden > $OUT/selftest.txt 2>&1; echo "selftest rc=$? $(tail -1 $OUT/selftest.txt)"; grep FAIL $OUT/selftest.txt | head -3
timeout 100 /tmp/bf/cuda_sample_check 40 > $OUT/sample_check.txt 2>&1; echo "sample_check rc=$? $(tail -1 $OUT/sample_check.txt)"
for be in cpu cuda; do for seed in 0 7; do
  T="--temp 0"; [ $seed = 7 ] && T="--seed 7"
  timeout 60 /tmp/bf/infer generate -m $H -p "Write a haiku about the moon." --chat $T --n 48 --backend $be --json > /tmp/gen_${be}_$seed.json 2>&1
done; done
python3 -c "
import json
for s in ('0','7'):
  a=json.load(open('/tmp/gen_cpu_'+s+'.json')); b=json.load(open('/tmp/gen_cuda_'+s+'.json'))
  print('generate seed', s, 'tokens cpu == cuda:', a.get('tokens')==b.get('tokens'), len(a.get('tokens') or []), repr(b.get('text'))[:70])
" | tee $OUT/generate.txt
for i in 1 2; do for sp in 1 0; do for q in q4_k_m q8_0 f16; do
  INFER_CUDA_SPECULATE=$sp timeout 30 /tmp/bf/infer bench -m $F/$q.gguf --backend cuda --prompt 512 --gen 128 --json > $OUT/b_${q}_spec${sp}_$i.json 2>/dev/null
  echo "$i spec=$sp $q: $(grep -oE "\"(prefill|decode)_tok_per_s\":[0-9.]*" $OUT/b_${q}_spec${sp}_$i.json | tr '\n' ' ')"
done; done; done | tee $OUT/bench.txt
for q in q4_k_m q8_0 f16; do
  INFER_CUDA_TIMING=1 timeout 30 /tmp/bf/infer bench -m $F/$q.gguf --backend cuda --prompt 512 --gen 128 --json > /tmp/t.json 2>/tmp/t.err
  echo "timing $q: $(grep -o "[0-9.]* ms GPU time each, [0-9]* kernels" /tmp/t.err)"
done | tee -a $OUT/bench.txt
rm -f $OUT/b_*_2.json $OUT/b_*spec0_1.json
