#!/bin/sh
# bench/token-bucket.sh: how closely a guest's CPU token bucket
# (sched/fill-rate / sched/interval, README "Limits and accounting") holds
# the share it is configured to. A busybox guest of its own (tbg), init
# style cmd whose only process is a static C spin loop (tbload spin, copied
# into the guest's tree), started with fill-rate/interval = 1/10, 1/4, 1/2
# (10, 25, 50 % of one CPU) and once more at 25 % with sched/tokens-max (a
# burst). After a 1 s warm-up, the CPU time the guest's cgroup got (v1
# cpuacct.usage of the cgroup in the guest's state.json, or cgroup2
# cpu.stat usage_usec) over SECS seconds of wall time is the measured share.
# A second table shows what the burst is for: 40 ms chunks of CPU after
# 300 ms idle (tbload chunks, run with vserver exec while the init sleeps),
# the wall time per chunk with and without tokens-max.
. "$(dirname "$0")/lib.sh"

SECS=${SECS:-10}
G=tbg
GCFG=$VSERVER_ROOT/etc/vservers/$G
GROOT=$VSERVER_ROOT/var/lib/vservers/$G
TBL=$BENCH/bin/tbload
W=$(mktemp -d "$BENCH/tb.XXXXXX")

log() { echo "token-bucket: $*" >&2; }

guest_gone() {
  [ -d "$GCFG" ] || return 0
  "$VS" "$G" stop >/dev/null 2>&1 || true
  "$VS" "$G" delete --force >/dev/null 2>&1 || log "could not delete guest $G"
}
cleanup() { guest_gone; rm -rf "$W"; }
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

guest_gone   # leftovers of an interrupted run

cat > "$W/tbload.c" <<'EOF'
/* tbload spin: burns CPU forever.
 * tbload chunks N CHUNK_MS IDLE_MS: N times: sleep IDLE_MS, then burn
 * CHUNK_MS of CPU time (CLOCK_THREAD_CPUTIME_ID) and note the wall time it
 * took; prints the median and the mean wall time per chunk in ms. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double clk(clockid_t c) {
  struct timespec t;
  clock_gettime(c, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}
static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}
int main(int argc, char **argv) {
  volatile unsigned long x = 0;
  if (argc == 2 && strcmp(argv[1], "spin") == 0)
    for (;;) x++;
  if (argc == 5 && strcmp(argv[1], "chunks") == 0) {
    int n = atoi(argv[2]);
    double chunk = atof(argv[3]), idle = atof(argv[4]), sum = 0, w[1000];
    if (n < 1 || n > 1000) return 2;
    for (int i = 0; i < n; i++) {
      struct timespec ts = {(time_t)(idle / 1e3), (long)((idle - (time_t)(idle / 1e3) * 1e3) * 1e6)};
      nanosleep(&ts, NULL);
      double t0 = clk(CLOCK_MONOTONIC), c0 = clk(CLOCK_THREAD_CPUTIME_ID);
      while (clk(CLOCK_THREAD_CPUTIME_ID) - c0 < chunk)
        for (int k = 0; k < 10000; k++) x++;
      w[i] = clk(CLOCK_MONOTONIC) - t0;
      sum += w[i];
    }
    qsort(w, n, sizeof w[0], cmp);
    printf("%.1f %.1f\n", n % 2 ? w[n / 2] : (w[n / 2 - 1] + w[n / 2]) / 2, sum / n);
    return 0;
  }
  fprintf(stderr, "usage: tbload spin | tbload chunks N CHUNK_MS IDLE_MS\n");
  return 2;
}
EOF
gcc -O2 -static -Wall -o "$TBL" "$W/tbload.c" || die "gcc -static failed (libc6-dev installed?)"

log "building guest $G"
"$VS" "$G" build -m busybox --flags ~virt_mem,sched_hard >"$W/out" 2>&1 || { cat "$W/out" >&2; die "build of $G failed"; }
cp "$TBL" "$GROOT/bin/tbload"
mkdir -p "$GCFG/apps/init" "$GCFG/sched"
echo cmd > "$GCFG/apps/init/style"

# configure FILL INTERVAL TOKENS_MAX INIT...: the guest's sched/ files (an
# empty value: no file) and its init command (one argument per line).
configure() {
  rm -f "$GCFG/sched/"*
  [ -z "$1" ] || echo "$1" > "$GCFG/sched/fill-rate"
  [ -z "$2" ] || echo "$2" > "$GCFG/sched/interval"
  [ -z "$3" ] || echo "$3" > "$GCFG/sched/tokens-max"
  shift 3
  printf '%s\n' "$@" > "$GCFG/apps/init/cmd.start"
}

# share: the guest's CPU time over SECS s of wall time after 1 s of warm-up,
# from its cgroup as state.json names it; prints "PERCENT QUOTA BURST
# THROTTLED PERIODS" (the last four from the v1 cpu controller, "-" without).
share() {
  python3 - "$VSERVER_ROOT/run/vservers/$G/state.json" "$SECS" <<'PY'
import json, os, sys, time
cgs = json.load(open(sys.argv[1]))["cgroups"]
secs = float(sys.argv[2])
acct = [c for c in cgs if os.path.exists(os.path.join(c, "cpuacct.usage"))]
cpu = [c for c in cgs if os.path.exists(os.path.join(c, "cpu.cfs_quota_us"))]
def usage_ns():
    if acct:
        return int(open(os.path.join(acct[0], "cpuacct.usage")).read())
    for c in cgs:
        p = os.path.join(c, "cpu.stat")
        if os.path.exists(p):
            for l in open(p):
                k, v = l.split()
                if k == "usage_usec":
                    return int(v) * 1000
    sys.exit("no cpuacct.usage or cpu.stat usage_usec in " + " ".join(cgs))
def stat():
    if not cpu:
        return {}
    return dict(l.split() for l in open(os.path.join(cpu[0], "cpu.stat")))
time.sleep(1)
u0, s0, t0 = usage_ns(), stat(), time.monotonic()
time.sleep(secs)
u1, s1, t1 = usage_ns(), stat(), time.monotonic()
pct = (u1 - u0) / ((t1 - t0) * 1e9) * 100
if cpu:
    q = int(open(os.path.join(cpu[0], "cpu.cfs_quota_us")).read())
    b = os.path.join(cpu[0], "cpu.cfs_burst_us")
    b = int(open(b).read()) if os.path.exists(b) else 0
    thr = int(s1["nr_throttled"]) - int(s0["nr_throttled"])
    per = int(s1["nr_periods"]) - int(s0["nr_periods"])
    print(f"{pct:.2f} {q} {b} {thr} {per}")
else:
    print(f"{pct:.2f} - - - -")
PY
}

# row LABEL CONFIGURED FILL INTERVAL [TOKENS_MAX]: one measured row.
row() {
  label=$1; conf=$2; fill=$3; int=$4; tmax=${5:-}
  log "$label"
  configure "$fill" "$int" "$tmax" /bin/tbload spin
  if ! "$VS" "$G" start >"$W/out" 2>&1; then
    printf '| %s | %s | failed: %s | - | - | - |\n' "$label" "$conf" "$(grep -m1 . "$W/out" | tr '|' '/')"
    return 0
  fi
  # the burner must be the guest's only load: its init and tbload (the log
  # shows the guest's processes; ps is the exec'd one)
  ps=$("$VS" "$G" exec /bin/ps -o pid,args 2>&1 | tr '\n' ';' || true)
  if r=$(share 2>"$W/err"); then
    set -- $r
    err=$(awk -v m="$1" -v c="$conf" 'BEGIN {printf "%+.2f", m - c}')
    thr="$4 of $5"
    printf '| %s | %s | %s | %s | %s µs / %s µs | %s |\n' "$label" "$conf" "$1" "$err" "$2" "$3" "$thr"
  else
    printf '| %s | %s | failed: %s | - | - | - |\n' "$label" "$conf" "$(grep -m1 . "$W/err" | tr '|' '/')"
  fi
  log "$label: the guest's processes: $ps"
  "$VS" "$G" stop >/dev/null 2>&1 || log "stop of $G failed"
}

# chunks LABEL FILL INTERVAL [TOKENS_MAX]: the burst table's row.
chunks() {
  label=$1; fill=$2; int=$3; tmax=${4:-}
  log "$label (chunks)"
  configure "$fill" "$int" "$tmax" /bin/sleep 100000
  if ! "$VS" "$G" start >"$W/out" 2>&1; then
    printf '| %s | failed: %s | - |\n' "$label" "$(grep -m1 . "$W/out" | tr '|' '/')"
    return 0
  fi
  if r=$("$VS" "$G" exec /bin/tbload chunks 10 40 300 2>"$W/err"); then
    set -- $r
    printf '| %s | %s | %s |\n' "$label" "$1" "$2"
  else
    printf '| %s | failed: %s | - |\n' "$label" "$(grep -m1 . "$W/err" | tr '|' '/')"
  fi
  "$VS" "$G" stop >/dev/null 2>&1 || log "stop of $G failed"
}

{
  row "10 % (fill-rate 1, interval 10)" 10 1 10
  row "25 % (fill-rate 1, interval 4)" 25 1 4
  row "50 % (fill-rate 1, interval 2)" 50 1 2
  row "25 % + tokens-max 25 (25 ms burst)" 25 1 4 25
} > "$W/rows"
{
  chunks "25 %, no tokens-max" 1 4
  chunks "25 %, tokens-max 25 (25 ms burst)" 1 4 25
  chunks "no sched/ limit" "" ""
} > "$W/chunks"

section "CPU token bucket"
cat <<EOF
$(cmdline): a busybox guest (\`-m busybox --flags ~virt_mem,sched_hard\`, init style \`cmd\`)
whose only process besides its init is a static C spin loop, started with
\`sched/fill-rate\` / \`sched/interval\` set to each share below (the quota is
fill-rate/interval of one CPU per 100 ms period; \`sched/tokens-max\` N is a
burst of N ms). After 1 s of warm-up, measured = the CPU time the guest's
cgroup accounted (\`cpuacct.usage\`) over $SECS s of wall time, in % of one
CPU; error = measured − configured in percentage points (the target is within
±2). The last columns are what the guest's v1 cpu cgroup holds
(\`cpu.cfs_quota_us\` / \`cpu.cfs_burst_us\`) and how many of the 100 ms periods
while measuring were throttled. On a busy machine the guest may get less than
its quota (the measured share is then low, not the bucket).

| configured | configured % | measured % | error (points) | quota / burst | throttled periods |
|---|---|---|---|---|---|
EOF
cat "$W/rows"
cat <<EOF

What the burst is for: the same guest at 25 %, init \`/bin/sleep\`, and
\`vserver tbg exec /bin/tbload chunks 10 40 300\`: 10 times, sleep 300 ms, then
burn 40 ms of CPU time; the wall time each 40 ms chunk took (median and mean
of the 10). Without a burst a chunk uses the period's 25 ms and waits for the
next period; with tokens-max 25 the unused quota of the idle periods covers it.

| guest | median ms per 40 ms chunk | mean ms |
|---|---|---|
EOF
cat "$W/chunks"
