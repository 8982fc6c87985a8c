#!/bin/sh
# bench/exec.sh: the cost of running /bin/true inside an already running
# container ("exec"), for vserver and its peers, on the busybox tree ($BB).
#
# How: one running container per runtime on the same tree: the guest bb
# (`vserver bb start`, sysv init style, default unprivileged flags) and a
# privileged skeleton guest ex-bbp whose vdir is pointed at $BB; an LXC
# container (`lxc-start -d`, busybox /sbin/init); a crun and a runc
# container (`run -d`, /bin/sleep). Then bench/timeit.py times, interleaved
# (RUNS rounds after WARMUP, default 40 and 3), `vserver NAME exec
# /bin/true`, `lxc-attach`, `crun exec` (through lib.sh's nsenter wrapper,
# whose cost is a row of its own), `runc exec`, and the floors: `nsenter -a`
# into the guest's init (all its namespaces, the reference) and `nsenter -m
# -u -i -n -p` into the LXC container's init. Then whether vserver exec is
# within 1.3 x the nsenter floor (issue 6). Everything started here is
# stopped and removed at the end (a trap), also on failure.
#
# Usage (as root): bench/enter bench/exec.sh   (or bench/run-all)
. "$(dirname "$0")/lib.sh"
RUNS=${RUNS:-100}
WARMUP=${WARMUP:-3}
CRUNNS=""
BB_MINE=""
BBP=ex-bbp
LXCN=ex-lxc
OCI_IDS="ex-crun ex-runc"

log() { echo "exec: $*" >&2; }

. "$(dirname "$0")/guests.sh"

cleanup() {
  set +e
  [ -n "$BB_MINE" ] && { "$VS" bb stop >/dev/null 2>&1 || log "vserver bb stop failed"; }
  vs_gone "$BBP"
  lxc_gone "$LXCN"
  runc delete -f ex-runc >/dev/null 2>&1
  [ -n "$CRUNNS" ] && nsenter -m -t "$CRUNNS" crun delete -f ex-crun >/dev/null 2>&1
  for id in $OCI_IDS; do rm -rf "${OCI:?}/$id"; done
  for id in $OCI_IDS; do cg_rm "$BENCH_CG/oci/$id"; done
  rm -f "$OUT/exec.json" "$OUT/exec-start.err" "$OUT/exec-table.md"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[ -x "$BB/bin/busybox" ] || die "$BB is missing (bench/prepare)"

# init_pid NAME: the host pid of a running guest's init (its state.json).
init_pid() {
  python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["init_pid"])' \
    "$VSERVER_ROOT/run/vservers/$1/state.json"
}

# The crun wrapper's mount namespace (lib.sh's crun_ns; bench/enter ends it).
CRUNNS=$(crun_ns)

# started WHAT CMD...: runs CMD (a container start); a failure is logged
# with its first error line, which then stands in the table's rows.
ERRS=""
started() {
  what=$1; shift
  if "$@" </dev/null >/dev/null 2>"$OUT/exec-start.err"; then return 0; fi
  e=$(grep -v '^\s*$' "$OUT/exec-start.err" | head -1 | cut -c1-160 | tr '|' '/')
  log "$what did not start: $e"
  ERRS="$ERRS
| $what | not started: $e | | |"
  return 1
}

log "starting the containers"
if "$VS" bb running 2>/dev/null; then
  log "warning: guest bb was running already; it is used as it is and left running"
else
  started "vserver bb" "$VS" bb start && BB_MINE=1
fi
vs_gone "$BBP"
"$VS" "$BBP" build -m skeleton --privileged >&2 || die "vserver $BBP build failed"
ln -sfn "$BB" "$VSERVER_ROOT/etc/vservers/$BBP/vdir"
started "vserver $BBP" "$VS" "$BBP" start || true
lc=$(lxc_conf "$LXCN" "$BB" "lxc.init.cmd = /sbin/init")
started "LXC" lxc-start -n "$LXCN" -P "$LXCPATH" -f "$lc" -d || true
bc=$(oci_bundle ex-crun "$BB" '["/bin/sleep","100000"]')
br=$(oci_bundle ex-runc "$BB" '["/bin/sleep","100000"]')
started "crun" nsenter -m -t "$CRUNNS" crun run -d -b "$bc" ex-crun || true
started "runc" runc run -d -b "$br" ex-runc || true

VSPID=$(init_pid bb 2>/dev/null || echo none)
VSPPID=$(init_pid "$BBP" 2>/dev/null || echo none)
LXCPID=$(lxc-info -n "$LXCN" -P "$LXCPATH" -p -H 2>/dev/null || echo none)
[ -n "$LXCPID" ] || LXCPID=none
log "init pids: bb $VSPID, $BBP $VSPPID, LXC $LXCPID"

section "Exec into a running guest: /bin/true"
cat <<EOF
$(cmdline): one running container per runtime on the busybox tree (\`$BB\`): the guest \`bb\`
(\`vserver bb start\`, sysv init style, the default unprivileged flags: user namespace, idmapped
root, cgroups, seccomp, lxcfs), \`$BBP\` (the same tree through its \`vdir\` link, built with
\`-m skeleton --privileged\`: no user namespace), an LXC container (\`lxc-start -d\`, busybox
\`/sbin/init\`, \`lxc_conf\` of bench/lib.sh), a crun and a runc container (\`run -d\`, \`/bin/sleep\`,
\`oci_bundle\` of bench/lib.sh). Each row runs \`/bin/true\` inside one of them, timed from spawn to
reaped exit by \`bench/timeit.py\` ($RUNS interleaved rounds after $WARMUP warm-up rounds). The
reference is \`nsenter -a\` into the guest \`bb\`'s init (user, mount, pid, uts, ipc, net, cgroup
and time namespaces; no cgroup move, no capability or seccomp set-up): the floor of an exec.
\`nsenter (LXC)\` is \`nsenter -m -u -i -n -p\` into the LXC container's init. crun works on this
hybrid-cgroup host only with /sys/fs/cgroup/unified unmounted, so it runs as \`nsenter -m -t PID
crun ...\`; \`nsenter wrapper alone\` is what that adds.

EOF
$TIMEIT --runs "$RUNS" --warmup "$WARMUP" --ref "nsenter -a (guest bb)" --json "$OUT/exec.json" \
  "nsenter -a (guest bb)::nsenter -a -t $VSPID /bin/true" \
  "vserver exec::$VS bb exec /bin/true" \
  "nsenter -a (guest $BBP)::nsenter -a -t $VSPPID /bin/true" \
  "vserver exec (privileged)::$VS $BBP exec /bin/true" \
  "nsenter (LXC)::nsenter -m -u -i -n -p -t $LXCPID /bin/true" \
  "lxc-attach::lxc-attach -n $LXCN -P $LXCPATH -- /bin/true" \
  "nsenter wrapper alone::nsenter -m -t $CRUNNS /bin/true" \
  "crun exec::nsenter -m -t $CRUNNS crun exec ex-crun /bin/true" \
  "runc exec::runc exec ex-runc /bin/true" > "$OUT/exec-table.md" || true
# The table, with a row for each container that did not start.
python3 -c '
import sys
lines = open(sys.argv[1]).read().split("\n")
errs = [l for l in sys.argv[2].split("\n") if l.strip()]
rows = [j for j, l in enumerate(lines) if l.startswith("|")]
i = rows[-1] + 1 if rows else 0
print("\n".join(lines[:i] + errs + lines[i:]), end="")
' "$OUT/exec-table.md" "$ERRS"
rm -f "$OUT/exec-table.md"

printf '\n### Where vserver stands\n\n'
python3 - "$OUT/exec.json" <<'PY'
import json, statistics, sys
try:
    t = json.load(open(sys.argv[1]))["times_ms"]
except Exception as e:
    print(f"No timing data ({e}).")
    sys.exit(0)
m = {k: statistics.median(v) for k, v in t.items() if v}
print("Target of issue 6: `vserver exec` within 1.3 x `nsenter -a` into the same guest's init.")
print()
print("| command | median ms | floor | x floor (target <= 1.3) |")
print("|---|---:|---|---:|")
for k, f in [("vserver exec", "nsenter -a (guest bb)"), ("vserver exec (privileged)", "nsenter -a (guest ex-bbp)")]:
    v, ref = m.get(k), m.get(f)
    if v is None or not ref:
        print(f"| {k} | n/a | {f} | n/a |")
        continue
    r = v / ref
    print(f"| {k} | {v:.2f} | {f} | {r:.2f} {'(met)' if r <= 1.3 else '(**not met**)'} |")
PY

# After a quiet spell: back to back, as above, a cgroup migration finds the
# kernel's rcu_sync still warm from the previous command; an exec on its
# own (the usual case) waits for a whole RCU grace period to move into v1
# cgroups. vserver's exec broker forks helpers already in the guest's
# cgroups; lxc-attach and crun exec migrate.
printf '\n### After a quiet spell\n\n'
QUIET_ROUNDS=${QUIET_ROUNDS:-12}
python3 - "$QUIET_ROUNDS" \
  "nsenter -a (guest bb)::nsenter -a -t $VSPID /bin/true" \
  "vserver exec::$VS bb exec /bin/true" \
  "lxc-attach::lxc-attach -n $LXCN -P $LXCPATH -- /bin/true" \
  "crun exec::nsenter -m -t $CRUNNS crun exec ex-crun /bin/true" <<'PY'
import random, shlex, statistics, subprocess, sys, time
rounds = int(sys.argv[1])
cmds = [a.split("::", 1) for a in sys.argv[2:]]
times = {n: [] for n, _ in cmds}
failed = {}
for _ in range(rounds):
    order = list(cmds)
    random.shuffle(order)
    for n, c in order:
        time.sleep(0.4)
        t = time.perf_counter()
        r = subprocess.run(shlex.split(c), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        dt = (time.perf_counter() - t) * 1000
        if r.returncode != 0:
            failed[n] = r.returncode
        else:
            times[n].append(dt)
print(f"Each command run alone, 0.4 s after the previous one ({rounds} interleaved rounds, Python's subprocess adds about 1 ms to every row):")
print()
print("| command | median ms | min–max ms |")
print("|---|---:|---:|")
for n, _ in cmds:
    if n in failed:
        print(f"| {n} | failed (exit {failed[n]}) | |")
    elif times[n]:
        t = times[n]
        print(f"| {n} | {statistics.median(t):.2f} | {min(t):.2f}–{max(t):.2f} |")
PY
