#!/bin/sh
# bench/monitor-mem.sh: what a guest costs in memory while it idles, against
# LXC.
#
# 1. One busybox guest of ours (sysv style, the default cflags, so with
#    VIRT_MEM: lxcfs) is started; RSS, PSS and USS (Private_Clean +
#    Private_Dirty) from /proc/PID/smaps_rollup of its monitor
#    `vserver:[mm00]` (monitor_pid of state.json), of its init (init_pid) and
#    of the other guest processes (descendants of the init: syslogd from
#    rc 3), and of the lxcfs serving it (one for all guests). The same for an
#    LXC container on the same busybox tree booting busybox init: its
#    `[lxc monitor]` (the parent of the container's init, `lxc-info -pH`),
#    the init and syslogd.
# 2. 20 idle guests (19 more started): the sum of PSS of every process of
#    each guest (monitor + init + guest processes) / 20, the median PSS and
#    RSS of the monitors, the v1 memory cgroup usage of each guest
#    (memory.usage_in_bytes of the memory cgroup its init is in, i.e. the
#    path of state.json `cgroups`), and the drop of MemAvailable from before
#    the first start to 1 s after the 20th, / 20 (a rough whole-system
#    figure: other activity on the host moves it). The same for 20 LXC
#    containers.
# Our guests share the busybox tree $BB through their vdir link (as the LXC
# containers share it), so the binary's pages are shared alike.
# Names: mm00-mm19 (contexts 5110-5129), LXC mml00-mml19. Everything is
# stopped and removed on exit (trap).
. "$(dirname "$0")/lib.sh"

E=$VSERVER_ROOT/etc/vservers
V=$VSERVER_ROOT/var/lib/vservers
LXCFS_DIR=$V/.lxcfs
COUNT=${MM_COUNT:-20}
GUESTS=$(seq -f 'mm%02g' 0 $((COUNT - 1)))
LXCS=$(seq -f 'mml%02g' 0 $((COUNT - 1)))
TMP=$(mktemp -d /tmp/monitor-mem.XXXXXX)

. "$(dirname "$0")/guests.sh"

cleanup() {
  set +e
  drop_all
  rm -rf "$TMP"
}

# --- setup ---
bench_begin
# shellcheck disable=SC2086
bb_guests 5110 $GUESTS
for n in $LXCS; do lxc_bb "$n"; done

export VS LXCPATH TMP VSERVER_ROOT LXCFS_DIR COUNT
python3 - $GUESTS -- $LXCS <<'PY'
import json, os, statistics, subprocess, sys, time

VS, LXCPATH, TMP, ROOT = os.environ["VS"], os.environ["LXCPATH"], os.environ["TMP"], os.environ["VSERVER_ROOT"]
LXCFS_DIR, COUNT = os.environ["LXCFS_DIR"], int(os.environ["COUNT"])
sep = sys.argv.index("--")
GUESTS, LXCS = sys.argv[1:sep], sys.argv[sep + 1:]


def log(*a):
    print("monitor-mem:", *a, file=sys.stderr, flush=True)


def run(argv):
    with open(os.path.join(TMP, "stderr"), "w+") as err:
        r = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        err.seek(0)
        lines = [l.strip() for l in err.read().splitlines() if l.strip()]
    return r.returncode, (lines[0] if lines else "")


def meminfo(key="MemAvailable"):
    for l in open("/proc/meminfo"):
        if l.startswith(key + ":"):
            return int(l.split()[1])


def rollup(pid):
    """(rss, pss, uss) in KiB from /proc/PID/smaps_rollup."""
    f = {}
    for l in open(f"/proc/{pid}/smaps_rollup"):
        p = l.split()
        if len(p) >= 3 and p[2] == "kB":
            f[p[0].rstrip(":")] = int(p[1])
    return f["Rss"], f["Pss"], f.get("Private_Clean", 0) + f.get("Private_Dirty", 0)


def children_map():
    m = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                s = open(f"/proc/{d}/stat").read()
                ppid = int(s[s.rindex(")") + 2:].split()[1])
                m.setdefault(ppid, []).append(int(d))
            except (OSError, ValueError):
                pass
    return m


def descendants(pid, cm):
    out, todo = [], list(cm.get(pid, []))
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(cm.get(p, []))
    return out


def comm(pid):
    return open(f"/proc/{pid}/comm").read().strip()


def name(pid):
    """argv[0] as ps shows it (`vserver:[NAME]`, `[lxc monitor]`)."""
    a = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
    a0 = a[0].decode(errors="replace")
    if a0.startswith("[") and len(a) > 1:
        a0 = a0.split(" /")[0]
    return a0 or comm(pid)


KERNEL = ("Slab", "PageTables", "KernelStack")


def kernel_kib():
    return sum(meminfo(k) for k in KERNEL)


def memcg_usage(pid):
    for l in open(f"/proc/{pid}/cgroup"):
        h, ctrl, path = l.rstrip("\n").split(":", 2)
        if "memory" in ctrl.split(","):
            return int(open(f"/sys/fs/cgroup/memory{path}/memory.usage_in_bytes").read()) // 1024, path
    return None, None


def lxcfs_pid():
    """The lxcfs serving our mount: the pid-file holder if it lives in our
    mount namespace, else the lxcfs process that does."""
    me = os.readlink("/proc/self/ns/mnt")
    cands = []
    try:
        cands.append(int(open(LXCFS_DIR + ".pid").read().split()[0]))
    except (OSError, ValueError, IndexError):
        pass
    cands += [int(d) for d in os.listdir("/proc") if d.isdigit()]
    for p in cands:
        try:
            if comm(p) == "lxcfs" and os.readlink(f"/proc/{p}/ns/mnt") == me:
                return p
        except OSError:
            pass
    return None


class Ours:
    label = "vserver"

    def start(self, g):
        rc, err = run([VS, g, "start"])
        if rc != 0 and "lxcfs" in err:
            log("start failed on lxcfs, retrying:", err)
            rc, err = run([VS, g, "start"])
        return rc, err

    def pids(self, g):
        st = json.load(open(f"{ROOT}/run/vservers/{g}/state.json"))
        return st["monitor_pid"], st["init_pid"]

    def stop(self, g):
        return run([VS, g, "stop"])


class Lxc:
    label = "LXC"

    def lxc(self, *a):
        return ["lxc-" + a[0], "-P", LXCPATH, "-n", a[1], *a[2:]]

    def start(self, n):
        rc, err = run(self.lxc("start", n, "-d", "-o", f"{LXCPATH}/{n}/lxc.log", "-l", "WARN"))
        if rc == 0:
            rc, err = run(self.lxc("wait", n, "-s", "RUNNING", "-t", "10"))
        return rc, err

    def pids(self, n):
        r = subprocess.run(self.lxc("info", n, "-pH"), capture_output=True, text=True)
        init = int(r.stdout.split()[0])
        s = open(f"/proc/{init}/stat").read()
        return int(s[s.rindex(")") + 2:].split()[1]), init

    def stop(self, n):
        return run(self.lxc("stop", n, "-k"))


def measure(rt, names):
    """Per guest: pids and smaps of monitor, init, others; memcg usage."""
    cm = children_map()
    res = []
    for n in names:
        mon, init = rt.pids(n)
        others = [p for p in descendants(init, cm)]
        usage, path = memcg_usage(init)
        res.append({"name": n, "monitor": (mon, name(mon), rollup(mon)), "init": (init, name(init), rollup(init)),
                    "others": [(p, name(p), rollup(p)) for p in others], "memcg": usage, "memcg_path": path,
                    # The monitor's other children: the exec broker and
                    # VIRT_MEM's meminfo server (ours), measured with the rest.
                    "extra": [(p, comm(p), rollup(p)) for p in descendants(mon, cm)
                              if p != init and p not in others]})
    return res


def kib(v):
    return f"{v:,}".replace(",", " ")


def run_runtime(rt, names):
    r = {"fail": None}
    m0, k0 = meminfo(), kernel_kib()
    rc, err = rt.start(names[0])
    if rc != 0:
        r["fail"] = f"start of {names[0]} failed (exit {rc}): {err}"
        return r
    time.sleep(1)
    r["one"] = measure(rt, names[:1])[0]
    started = 1
    for n in names[1:]:
        rc, err = rt.start(n)
        if rc != 0:
            r["fail"] = f"start of {n} failed (exit {rc}): {err}"
            break
        started += 1
    time.sleep(1)
    m1, k1 = meminfo(), kernel_kib()
    r["kernel"] = (k1 - k0) / started
    r["all"] = measure(rt, names[:started])
    r["n"] = started
    r["drop"] = (m0 - m1) / started
    if isinstance(rt, Ours):
        lp = lxcfs_pid()
        r["lxcfs"] = (lp, rollup(lp)) if lp else None
    for n in names[:started]:
        rc, err = rt.stop(n)
        if rc != 0:
            log(f"stop {n} failed: {err}")
    return r


ours = run_runtime(Ours(), GUESTS)
log("ours done")
lxc = run_runtime(Lxc(), LXCS)
log("lxc done")

print("\n## Monitor memory and host memory per idle guest\n")
print("`bench/monitor-mem.sh`: busybox guests idling after their boot (sysv style: our built-in init "
      "+ syslogd from `/etc/init.d/rc 3`; default cflags, so with VIRT_MEM and the shared lxcfs), and LXC "
      "containers on the same busybox tree booting busybox init (inittab running the same rc 3), privileged, "
      "without lxcfs. Our guests share the tree `$BB` through their `vdir` link, as the LXC containers do. "
      "RSS, PSS (shared pages divided among the processes mapping them) and USS (private pages) come from "
      "`/proc/PID/smaps_rollup`, in KiB. Our monitor's pid is `monitor_pid` of "
      "`run/vservers/NAME/state.json`; LXC's monitor is the parent of the container's init "
      f"(`lxc-info -pH`). Target: our monitor's RSS ≤ 1.5 MiB (1536 KiB).\n")
print("### One guest running\n")
print("| runtime | process | RSS KiB | PSS KiB | USS KiB |")
print("|---|---|---:|---:|---:|")
for rt, r in (("vserver", ours), ("LXC privileged", lxc)):
    if "one" not in r:
        print(f"| {rt} | failed: {r['fail'][:160]} | | | |")
        continue
    g = r["one"]
    rows = ([("monitor", g["monitor"]), ("init", g["init"])] + [("guest process", o) for o in g["others"]]
            + [("other child of the monitor", e) for e in g["extra"]])
    for what, (pid, c, (rss, pss, uss)) in rows:
        print(f"| {rt} | {what} `{c}` | {kib(rss)} | {kib(pss)} | {kib(uss)} |")
    if rt == "vserver" and ours.get("lxcfs"):
        lp, (rss, pss, uss) = ours["lxcfs"]
        print(f"| vserver | `lxcfs` (one for all guests; measured with {ours['n']} running) | {kib(rss)} | {kib(pss)} | {kib(uss)} |")
if "one" in ours:
    rss = ours["one"]["monitor"][2][0]
    print(f"\nOur monitor's RSS with one guest: {rss} KiB = {rss / 1024:.2f} MiB: the 1.5 MiB target is "
          f"{'met' if rss <= 1536 else 'not met'} (RSS counts the pages of the binary it shares with its init "
          "and other monitors; PSS splits them).\n")

print(f"### {COUNT} idle guests\n")
print("| runtime | guests up | PSS per guest, all its processes + monitor and its children KiB | monitor PSS KiB (median) | "
      "monitor RSS KiB (median) | memory cgroup usage per guest KiB (median; min–max) | MemAvailable drop / guests KiB | "
      "kernel (Slab + PageTables + KernelStack) growth / guests KiB |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for rt, r in (("vserver", ours), ("LXC privileged", lxc)):
    if "all" not in r:
        print(f"| {rt} | 0 | failed: {r['fail'][:160]} | | | | | |")
        continue
    a = r["all"]
    pss = [g["monitor"][2][1] + g["init"][2][1] + sum(o[2][1] for o in g["others"] + g["extra"]) for g in a]
    mon_pss = statistics.median(g["monitor"][2][1] for g in a)
    mon_rss = statistics.median(g["monitor"][2][0] for g in a)
    cg = [g["memcg"] for g in a if g["memcg"] is not None]
    cgs = f"{kib(int(statistics.median(cg)))} ({kib(min(cg))}–{kib(max(cg))})" if cg else "-"
    print(f"| {rt} | {r['n']} | {kib(round(sum(pss) / len(pss)))} | {kib(int(mon_pss))} | {kib(int(mon_rss))} | "
          f"{cgs} | {kib(round(r['drop']))} | {kib(round(r['kernel']))} |")
    if r["fail"]:
        print(f"| {rt} | | failed after {r['n']}: {r['fail'][:160]} | | | | | |")
if ours.get("lxcfs"):
    lp, (rss, pss, uss) = ours["lxcfs"]
    print(f"\nNot in the per-guest PSS: the shared lxcfs ({kib(pss)} KiB PSS, {kib(uss)} KiB USS with "
          f"{ours.get('n')} guests running), i.e. {kib(round(pss / ours['n']))} KiB per guest here.")
print("\nThe memory cgroup (the one the guest's init is in) holds the guest's processes, not the monitor "
      "(ours stays in the caller's cgroup, LXC's is in its own `lxc.monitor.NAME`), and is charged for the page cache a guest touches first (the shared "
      "busybox binary goes to whichever guest read it first: hence the spread). MemAvailable and the kernel "
      "figures (/proc/meminfo) are read before the first start and 1 s after the last (ours: lxcfs included "
      "when the first guest started it); other activity on the host moves them.\n")
PY
