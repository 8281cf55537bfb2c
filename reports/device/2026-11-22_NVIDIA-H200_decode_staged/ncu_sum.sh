python3 - $1 <<'PY'
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
