#!/bin/bash
# review refactors without the mv1_body loop merge (rf2) vs the previous binaries (fin), alternated
mkdir -p /tmp/b2 /tmp/bf && tar xJf .dev/carry/rf2/bins.tar.xz -C /tmp/b2 && tar xJf .dev/carry/fin/bins.tar.xz -C /tmp/bf && chmod +x /tmp/b2/* /tmp/bf/*
export LD_LIBRARY_PATH=$PWD/.dev/carry/lib:$LD_LIBRARY_PATH
F=/tmp/fx; mkdir -p $F
for q in q4_k_m q8_0; do [ -f $F/$q.gguf ] || timeout 60 /tmp/bf/make_fixture -o $F/$q.gguf --mix $q --seed 1 > /dev/null 2>&1; done
for i in 1 2 3; do for b in b2 bf; do for q in q4_k_m q8_0; do
  INFER_CUDA_TIMING=1 timeout 30 /tmp/$b/infer bench -m $F/$q.gguf --backend cuda --prompt 512 --gen 128 --json > /tmp/t.json 2>/tmp/t.err
  echo "$i $b $q: $(grep -o "[0-9.]* ms GPU time each" /tmp/t.err)"
done; done; done | tee $OUT/bench.txt
