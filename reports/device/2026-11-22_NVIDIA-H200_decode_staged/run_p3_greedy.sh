#!/bin/bash
# p3 = p2 + int->float conversions without I2F in the qfast decoders + greedy merge with one L2 round trip
mkdir -p /tmp/b /tmp/b2 && tar xJf .dev/carry/p3/bins.tar.xz -C /tmp/b && tar xJf .dev/carry/p2/bins.tar.xz -C /tmp/b2 && chmod +x /tmp/b/* /tmp/b2/*
export LD_LIBRARY_PATH=$PWD/.dev/carry/lib:$LD_LIBRARY_PATH
F=/tmp/fx; mkdir -p $F
for q in q4_k_m q8_0; do [ -f $F/$q.gguf ] || timeout 60 /tmp/b/make_fixture -o $F/$q.gguf --mix $q --seed 1 > /dev/null 2>&1; done
timeout 200 /tmp/b/cuda_selftest golden > $OUT/selftest.txt 2>&1; echo "selftest rc=$?"; grep -E "qfast|FAIL" $OUT/selftest.txt | head; tail -1 $OUT/selftest.txt
for m in golden/models/haiku-qwen2-tiny-q8_0.gguf $F/q4_k_m.gguf $F/q8_0.gguf; do
  timeout 100 /tmp/b/cuda_forward_check $m 24 16 > $OUT/fc.txt 2>&1; echo "fwd $(basename $m) rc=$?: $(grep -i "greedy\|summary" $OUT/fc.txt | tr '\n' ' ' | cut -c1-200)"
done
timeout 100 /tmp/b/cuda_sample_check 40 > $OUT/sample_check.txt 2>&1; echo "sample_check rc=$?"; tail -1 $OUT/sample_check.txt
for i in 1 2; do for b in b b2; do for q in q4_k_m q8_0; do
  timeout 60 /tmp/$b/infer bench -m $F/$q.gguf --backend cuda --prompt 512 --gen 128 --json > $OUT/n.json 2>/dev/null
  INFER_CUDA_TIMING=1 timeout 60 /tmp/$b/infer bench -m $F/$q.gguf --backend cuda --prompt 512 --gen 128 --json > $OUT/t.json 2>$OUT/b.err
  echo "$i $b $q: $(grep -oE "\"(prefill|decode)_tok_per_s\":[0-9.]*" $OUT/n.json | tr '\n' ' ') timing: $(grep -o "[0-9.]* ms GPU time each, [0-9]* kernels" $OUT/b.err)"
done; done; done
timeout 200 ncu --clock-control none --graph-profiling node --csv --print-units base --metrics gpu__time_duration.sum,smsp__inst_executed.sum,sm__warps_active.avg.pct_of_peak_sustained_active,launch__registers_per_thread,launch__grid_size,dram__bytes_read.sum /tmp/b/infer bench -m $F/q4_k_m.gguf --backend cuda --prompt 512 --gen 2 > $OUT/ncu.csv 2>/dev/null
bash .dev/carry/ncu_sum.sh $OUT/ncu.csv
rm -f $OUT/t.json $OUT/fc.txt $OUT/n.json
