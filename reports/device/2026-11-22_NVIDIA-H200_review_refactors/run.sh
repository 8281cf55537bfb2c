#!/bin/bash
# after the review refactors (dispatch macros, sampler block reductions): device checks
mkdir -p /tmp/b && tar xJf .dev/carry/fd16/bins.tar.xz -C /tmp/b && chmod +x /tmp/b/*
export LD_LIBRARY_PATH=$PWD/.dev/carry/lib:$LD_LIBRARY_PATH
F=/tmp/fx; mkdir -p $F; timeout 60 /tmp/b/make_fixture -o $F/q4_k_m.gguf --mix q4_k_m --seed 1 > /dev/null 2>&1
timeout 100 /tmp/b/cuda_selftest golden > $OUT/selftest.txt 2>&1; echo "selftest rc=$? $(tail -1 $OUT/selftest.txt)"
timeout 100 /tmp/b/cuda_sample_check 40 > $OUT/sample.txt 2>&1; echo "sample_check rc=$? $(tail -1 $OUT/sample.txt)"
for m in golden/models/haiku-qwen2-tiny-q8_0.gguf $F/q4_k_m.gguf; do timeout 60 /tmp/b/cuda_forward_check $m 24 16 > $OUT/f.txt 2>&1; echo "$(basename $m): $(grep greedy $OUT/f.txt) $(grep summary $OUT/f.txt)"; done
M=golden/models/haiku-qwen2-tiny-q8_0.gguf
for be in cpu cuda; do timeout 60 /tmp/b/infer generate -m $M -p "Write a haiku about the moon." --chat --seed 7 --n 48 --backend $be --json > $OUT/g_$be.json 2>&1; done
python3 -c "import json; a=json.load(open('$OUT/g_cpu.json')); b=json.load(open('$OUT/g_cuda.json')); print('seed 7 tokens cpu == cuda:', a['tokens']==b['tokens'])"
