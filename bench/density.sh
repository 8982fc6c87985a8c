#!/bin/sh
# bench/density.sh: 100 busybox guests started one after another and 100
# in parallel, against 100 LXC containers.
#
# Ours: 100 guests dn000-dn099 (contexts 5000-5099), each a `-m skeleton`
# guest whose vdir links to the shared busybox tree $BB (sysv style, default
# cflags: VIRT_MEM through the one shared lxcfs). LXC: 100 privileged
# containers dnl000-dnl099 on the same tree, booting busybox init (inittab:
# rc 3 at boot, rc 0 at shutdown; each with its own /etc bound over the
# tree's).
# For each runtime, twice (sequential = `xargs -P 1`, parallel = `xargs -P
# 16`): time the whole start of all 100 (`vserver NAME start` /
# `lxc-start -d NAME`), count what runs, wait 1 s, record memory
# (MemAvailable drop since before the starts, the sum of the guests' v1
# memory cgroup usage, the sum of PSS of every guest process and monitor),
# then time the stop of all 100 (`vserver NAME stop`, a clean stop: rc 0 and
# killseq / `lxc-stop -k NAME`: a clean lxc-stop of busybox init takes 2 s
# each, see the lifecycle section) with the same parallelism.
# One untimed start/stop of dn000 and dnl000 first (lxcfs, caches).
# Everything is stopped and removed on exit, also on failure (trap).
. "$(dirname "$0")/lib.sh"

E=$VSERVER_ROOT/etc/vservers
V=$VSERVER_ROOT/var/lib/vservers
LXCFS_DIR=$V/.lxcfs
COUNT=${DN_COUNT:-100}
JOBS=${DN_JOBS:-16}
GUESTS=$(seq -f 'dn%03g' 0 $((COUNT - 1)))
LXCS=$(seq -f 'dnl%03g' 0 $((COUNT - 1)))
TMP=$(mktemp -d /tmp/density.XXXXXX)

. "$(dirname "$0")/guests.sh"

cleanup() {
  set +e
  echo "density: cleaning up" >&2
  # Kill the containers in parallel first: 100 one by one is slow.
  for n in $LXCS; do echo "$n"; done | xargs -P "$JOBS" -I{} lxc-stop -P "$LXCPATH" -n {} -k >/dev/null 2>&1
  # The guests too.
  for g in $GUESTS; do echo "$g"; done | xargs -P "$JOBS" -I{} "$VS" {} stop >/dev/null 2>&1
  drop_all
  rm -rf "$TMP"
}

# --- setup ---
bench_begin
T0=$(date +%s)
# shellcheck disable=SC2086
bb_guests 5000 $GUESTS
for n in $LXCS; do lxc_bb "$n"; done
echo "density: $COUNT guests and $COUNT containers configured in $(( $(date +%s) - T0 )) s" >&2

export VS LXCPATH TMP VSERVER_ROOT COUNT JOBS
python3 - $GUESTS -- $LXCS <<'PY'
import json, os, statistics, subprocess, sys, time

VS, LXCPATH, TMP, ROOT = os.environ["VS"], os.environ["LXCPATH"], os.environ["TMP"], os.environ["VSERVER_ROOT"]
COUNT, JOBS = int(os.environ["COUNT"]), int(os.environ["JOBS"])
sep = sys.argv.index("--")
GUESTS, LXCS = sys.argv[1:sep], sys.argv[sep + 1:]


def log(*a):
    print("density:", *a, file=sys.stderr, flush=True)


def run(argv, stdin_text=None):
    """Runs argv (names on stdin for xargs); returns (s, exit code, number
    of error lines, first error line)."""
    with open(os.path.join(TMP, "stderr"), "w+") as err:
        t = time.perf_counter()
        r = subprocess.run(argv, input=stdin_text.encode() if stdin_text else None,
                           stdin=None if stdin_text else subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=err)
        s = time.perf_counter() - t
        err.seek(0)
        lines = [l.strip() for l in err.read().splitlines() if l.strip()]
    return s, r.returncode, len(lines), (lines[0] if lines else "")


def meminfo(key="MemAvailable"):
    for l in open("/proc/meminfo"):
        if l.startswith(key + ":"):
            return int(l.split()[1])


def pss(pid):
    try:
        for l in open(f"/proc/{pid}/smaps_rollup"):
            if l.startswith("Pss:"):
                return int(l.split()[1])
    except OSError:
        pass
    return 0


def children_map():
    m = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                s = open(f"/proc/{d}/stat").read()
                m.setdefault(int(s[s.rindex(")") + 2:].split()[1]), []).append(int(d))
            except (OSError, ValueError):
                pass
    return m


def tree(pid, cm):
    out, todo = [pid], list(cm.get(pid, []))
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(cm.get(p, []))
    return out


def memcg(pid):
    try:
        for l in open(f"/proc/{pid}/cgroup"):
            h, ctrl, path = l.rstrip("\n").split(":", 2)
            if "memory" in ctrl.split(","):
                return int(open(f"/sys/fs/cgroup/memory{path}/memory.usage_in_bytes").read()) // 1024
    except (OSError, ValueError):
        pass
    return 0


def ppid(pid):
    s = open(f"/proc/{pid}/stat").read()
    return int(s[s.rindex(")") + 2:].split()[1])


class Ours:
    label = "vserver (user namespace)"

    def start_cmd(self, j):
        return ["xargs", "-P", str(j), "-I{}", VS, "{}", "start"]

    def stop_cmd(self, j):
        return ["xargs", "-P", str(j), "-I{}", VS, "{}", "stop"]

    def running(self, names):
        r = subprocess.run([VS, "list", "--json"], capture_output=True, text=True)
        want = set(names)
        return [g["name"] for g in json.loads(r.stdout) if g["name"] in want and g["state"] == "running"]

    def roots(self, names):
        """(monitor pid, init pid) of each running guest."""
        out = []
        for n in names:
            try:
                st = json.load(open(f"{ROOT}/run/vservers/{n}/state.json"))
                out.append((st["monitor_pid"], st["init_pid"]))
            except (OSError, ValueError, KeyError):
                pass
        return out

    def prime(self, n):
        s, rc, k, err = run([VS, n, "start"])
        if rc != 0 and "lxcfs" in err:
            log("first start failed on lxcfs, retrying:", err)
            s, rc, k, err = run([VS, n, "start"])
        if rc == 0:
            run([VS, n, "stop"])
        return rc, err


class Lxc:
    label = "LXC privileged"

    def start_cmd(self, j):
        return ["xargs", "-P", str(j), "-I{}", "lxc-start", "-P", LXCPATH, "-n", "{}", "-d"]

    def stop_cmd(self, j):
        return ["xargs", "-P", str(j), "-I{}", "lxc-stop", "-P", LXCPATH, "-n", "{}", "-k"]

    def running(self, names):
        r = subprocess.run(["lxc-ls", "-P", LXCPATH, "--running", "-1"], capture_output=True, text=True)
        want = set(names)
        return [n for n in r.stdout.split() if n in want]

    def roots(self, names):
        out = []
        for n in names:
            r = subprocess.run(["lxc-info", "-P", LXCPATH, "-n", n, "-pH"], capture_output=True, text=True)
            try:
                init = int(r.stdout.split()[0])
                out.append((ppid(init), init))
            except (ValueError, IndexError, OSError):
                pass
        return out

    def prime(self, n):
        s, rc, k, err = run(["lxc-start", "-P", LXCPATH, "-n", n, "-d"])
        if rc == 0:
            run(["lxc-stop", "-P", LXCPATH, "-n", n, "-k"])
        return rc, err


def phase(rt, names, j):
    text = "".join(n + "\n" for n in names)
    m0 = meminfo()
    s, rc, nerr, err = run(rt.start_cmd(j), text)
    up = rt.running(names)
    r = {"start": s, "up": len(up), "err": (nerr, err) if rc != 0 or nerr else None}
    time.sleep(1)
    r["drop"] = (m0 - meminfo()) / 1024
    cm = children_map()
    roots = rt.roots(up)
    r["memcg"] = sum(memcg(init) for _, init in roots) / 1024
    r["pss"] = sum(pss(p) for mon, _ in roots for p in tree(mon, cm)) / 1024
    s, rc, nerr, err = run(rt.stop_cmd(j), text)
    left = rt.running(names)
    r["stop"], r["left"] = s, len(left)
    r["stoperr"] = (nerr, err) if rc != 0 or nerr else None
    return r


results = []
for rt, names in ((Ours(), GUESTS), (Lxc(), LXCS)):
    rc, err = rt.prime(names[0])
    if rc != 0:
        results.append((rt, None, f"first start failed (exit {rc}): {err}"))
        continue
    for j, mode in ((1, "sequential (`xargs -P 1`)"), (JOBS, f"parallel (`xargs -P {JOBS}`)")):
        r = phase(rt, names, j)
        log(rt.label, mode, r)
        results.append((rt, mode, r))
        if r["left"]:
            log(f"{r['left']} still running after the stop: stopping them before the next phase")
            subprocess.run(rt.stop_cmd(JOBS), input="".join(n + "\n" for n in names).encode(),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def cell(s):
    return s.replace("|", "/")[:160]


print(f"\n## Density: {COUNT} busybox guests\n")
print(f"`bench/density.sh`: {COUNT} busybox guests started and stopped one after another "
      f"(`xargs -P 1`) and {JOBS} at a time (`xargs -P {JOBS}`), on {os.cpu_count()} CPUs. Ours: "
      f"`vserver dnNNN start` / `vserver dnNNN stop` (a clean stop: rc 0, then killseq) of {COUNT} guests "
      "whose `vdir` links to the one busybox tree `$BB` (sysv style, default cflags, so VIRT_MEM through "
      "the shared lxcfs), in a user namespace each. LXC: `lxc-start -P … -n dnlNNN -d` / `lxc-stop -k` of "
      f"{COUNT} privileged containers on the same tree booting busybox init (a clean `lxc-stop` takes 2 s "
      "per container there: busybox init's own pauses, see the lifecycle section). One untimed start and "
      "stop of the first guest and container precede the runs. Memory 1 s after the last start: the drop of "
      "MemAvailable since just before the starts, the sum of the guests' v1 memory cgroup usage (their "
      "processes and the page cache they were charged, monitors excluded), the sum of PSS of every monitor "
      "and guest process. Per guest = total / guests.\n")
print("| runtime | mode | guests up | start all s | per guest ms | stop all s | left running | "
      "MemAvailable drop MiB | memory cgroups MiB | PSS MiB | PSS per guest KiB |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
seq_ours = None
for rt, mode, r in results:
    if mode is None:  # r is the reason
        print(f"| {rt.label} | - | 0 | failed: {cell(r)} | | | | | | | |")
        continue
    if isinstance(rt, Ours) and mode.startswith("sequential"):
        seq_ours = r
    per = r["pss"] * 1024 / r["up"] if r["up"] else 0
    print(f"| {rt.label} | {mode} | {r['up']} | {r['start']:.2f} | {r['start'] * 1000 / COUNT:.1f} | "
          f"{r['stop']:.2f} | {r['left']} | {r['drop']:.0f} | {r['memcg']:.1f} | {r['pss']:.1f} | {per:.0f} |")
for rt, mode, r in results:
    if mode is not None:
        for what in ("err", "stoperr"):
            if r[what]:
                n, e = r[what]
                print(f"\n{rt.label}, {mode}, {'start' if what == 'err' else 'stop'}: {n} error line(s), "
                      f"the first: `{cell(e)}`")
if seq_ours:
    ok = seq_ours["start"] <= 3 and seq_ours["up"] == COUNT
    print(f"\nTarget: {COUNT} sequential starts ≤ 3 s: {seq_ours['start']:.2f} s, "
          f"{'met' if ok else 'not met'}.")
print()
PY
