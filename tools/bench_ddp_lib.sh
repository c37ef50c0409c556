# Shared by the data-parallel step benchmarks (tools/bench_ddp_step,
# tools/bench_ddp_overlap); sourced, not run.

# ms per step between the first and the last progress line of a run's
# log.txt: "2026-11-29 12:19:00.123  epoch 1/1  10% 60/600 [..." (and the
# glog prefix of builds before 2026-11-29: "I20261129 12:19:00.123456 ...").
ms_per_step() {
  sed -nE 's/^[^ ]+ ([0-9]{2}:[0-9]{2}:[0-9.]+) .*epoch [0-9]+\/[0-9]+ +[0-9]+% ([0-9]+)\/[0-9]+ \[.*/\1 \2/p' "$1" |
    awk 'function t(s, a) { split(s, a, ":"); return a[1] * 3600 + a[2] * 60 + a[3] }
         NR == 1 { t0 = t($1); s0 = $2 } { t1 = t($1); s1 = $2 }
         END { if (s1 > s0) printf "%.2f", (t1 - t0) * 1000 / (s1 - s0); else print "nan" }'
}

# The median of whitespace-separated numbers on stdin.
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
