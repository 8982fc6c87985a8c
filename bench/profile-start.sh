#!/bin/sh
# bench/profile-start.sh: where the time of `vserver NAME run -- /bin/true`
# goes. Runs it 30 times with VSERVER_TIMING=1 (the CLI, the monitor and
# the guest's init print phase marks, see crates/runtime/src/timing.rs) on
# the busybox guest `bb`, and prints the median time of each phase (from
# the previous mark) and of the whole run.
. "$(dirname "$0")/lib.sh"
N=${N:-30}
LOG=$VSERVER_ROOT/var/log/vservers/bb.log
RAW=$OUT/profile-start.raw
: > "$RAW"
i=0
while [ $i -lt $N ]; do
  : > "$LOG"
  VSERVER_TIMING=1 "$VS" bb run -- /bin/true 2> "$OUT/profile-cli.txt" || die "vserver bb run failed: $(cat "$OUT/profile-cli.txt")"
  { cat "$OUT/profile-cli.txt" "$LOG" | grep '^timing ' | sort -k3 -n; echo end; } >> "$RAW"
  i=$((i + 1))
  sleep 0.05
done
section "Where the start goes: \`vserver bb run -- /bin/true\`, phase by phase"
echo "$(cmdline) (N=$N): \`VSERVER_TIMING=1\` makes the CLI, the monitor and the init print a"
echo "timestamp at each mark; each row is the median time from the previous mark (the first"
echo "mark is the CLI's \`main\`; the monitor's own \`main\` follows its exec). Unprivileged"
echo "busybox guest with the default flags (user namespace, idmapped root, cgroups in every"
echo "hierarchy, seccomp, lxcfs)."
echo
python3 - "$RAW" <<'PY'
import statistics, sys
runs, cur = [], []
for line in open(sys.argv[1]):
    line = line.strip()
    if line == "end":
        runs.append(cur); cur = []
        continue
    _, pid, us, phase = line.split(" ", 3)
    cur.append((int(us), phase))
order, deltas, totals = [], {}, []
for r in runs:
    seen = {}
    for i in range(1, len(r)):
        name = r[i][1]
        k = seen.get(name, 0); seen[name] = k + 1
        key = name if k == 0 else f"{name} ({k + 1})"
        if key not in deltas:
            deltas[key] = []; order.append(key)
        deltas[key].append((r[i][0] - r[i - 1][0]) / 1000)
    totals.append((r[-1][0] - r[0][0]) / 1000)
print("| phase (ends at this mark) | median ms | max ms |")
print("|---|---:|---:|")
for k in order:
    d = deltas[k]
    print(f"| {k} | {statistics.median(d):.2f} | {max(d):.2f} |")
print(f"| **total, CLI main to CLI exit** | **{statistics.median(totals):.2f}** | {max(totals):.2f} |")
PY
echo
echo "\`joined cgroups\` is the wait for the init's moves into the v1 hierarchies, done on a"
echo "monitor thread while the init sets itself up: the first cgroup migration after a quiet"
echo "spell waits for an RCU grace period (cgroup_threadgroup_rwsem). A pure cgroup2 host has"
echo "no such wait (clone3 places the init, \`CLONE_INTO_CGROUP\`)."
