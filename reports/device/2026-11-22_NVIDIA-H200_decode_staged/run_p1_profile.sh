#!/bin/bash
# profile: PDL chain floor, per-kernel ncu of the decode step (q4_k_m, q8_0), baseline bench
mkdir -p /tmp/b && tar xJf .dev/carry/p1/bins.tar.xz -C /tmp/b && chmod +x /tmp/b/*
export LD_LIBRARY_PATH=$PWD/.dev/carry/lib:$LD_LIBRARY_PATH
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem --format=csv,noheader
timeout 60 /tmp/b/pdl_floor | tee $OUT/pdl_floor.txt
F=/tmp/fx; mkdir -p $F
for q in q4_k_m q8_0; do timeout 60 /tmp/b/make_fixture -o $F/$q.gguf --mix $q --seed 1 > /dev/null 2>&1; done
for q in q4_k_m q8_0; do
  INFER_CUDA_TIMING=1 timeout 60 /tmp/b/infer bench -m $F/$q.gguf --backend cuda --prompt 512 --gen 128 --json > $OUT/b_$q.json 2>$OUT/b.err
  echo "$q: $(grep -oE "\"(prefill|decode)_tok_per_s\":[0-9.]*" $OUT/b_$q.json | tr '\n' ' ') $(grep -o "[0-9.]* ms GPU time each, [0-9]* kernels" $OUT/b.err)"
done
for q in q4_k_m q8_0; do
  timeout 200 ncu --clock-control none --graph-profiling node --csv --print-units base --metrics gpu__time_duration.sum,smsp__inst_executed.sum,sm__warps_active.avg.pct_of_peak_sustained_active,launch__registers_per_thread,launch__grid_size,dram__bytes_read.sum,launch__occupancy_limit_registers /tmp/b/infer bench -m $F/$q.gguf --backend cuda --prompt 512 --gen 2 > $OUT/ncu_$q.csv 2>$OUT/ncu_$q.err
  echo "ncu $q rc=$? lines=$(wc -l < $OUT/ncu_$q.csv)"
  python3 - $OUT/ncu_$q.csv <<'PY'
import csv,sys,collections
rows=[r for r in csv.reader(open(sys.argv[1])) if len(r)>10]
h=rows[0]; rows=rows[1:]
iid=h.index('ID'); ik=h.index('Kernel Name'); im=h.index('Metric Name'); iv=h.index('Metric Value')
k=collections.OrderedDict()
for r in rows:
  k.setdefault(r[iid],{'name':r[ik]})[r[im]]=r[iv]
ks=list(k.values())
# last decode step: last 122 kernels (last one may be argmax) -> take from the last get_rows
idx=[i for i,x in enumerate(ks) if 'get_rows' in x['name']]
step=ks[idx[-1]:] if idx else ks[-124:]
def f(x,m):
  try: return float(x.get(m,'0').replace(',',''))
  except: return 0.0
agg=collections.OrderedDict()
tot=0
for x in step:
  n=x['name'].split('(')[0][:60]
  a=agg.setdefault(n,[0,0,0,0,0,0,0])
  a[0]+=1; d=f(x,'gpu__time_duration.sum'); a[1]+=d; tot+=d
  a[2]+=f(x,'smsp__inst_executed.sum'); a[3]=f(x,'launch__grid_size'); a[4]=f(x,'launch__registers_per_thread'); a[5]+=f(x,'sm__warps_active.avg.pct_of_peak_sustained_active'); a[6]+=f(x,'dram__bytes_read.sum')
print('kernels in step', len(step), 'sum us', tot/1e3)
for n,a in agg.items():
  print('%-60s n=%3d us/each=%6.2f tot=%7.1f inst/each=%9.0f grid=%5d regs=%3d warps%%=%5.1f dramKB/each=%8.1f'%(n,a[0],a[1]/a[0]/1e3,a[1]/1e3,a[2]/a[0],a[3],a[4],a[5]/a[0],a[6]/a[0]/1e3))
PY
done
