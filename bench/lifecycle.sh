#!/bin/sh
# bench/lifecycle.sh: full start and stop of a whole guest, against LXC and
# systemd-nspawn.
#
# (a) busybox guest, sysv style: `vserver lcbb start` (the guest of
#     `build -m busybox`, its own tree; start returns once the guest's init
#     runs, which then starts /etc/init.d/rc 3) and `vserver lcbb stop` (rc 0,
#     then killseq), timed separately, 10 interleaved cycles after one
#     warm-up cycle. LXC boots the same busybox tree ($BB) with busybox init
#     (inittab: sysinit rc 3, shutdown rc 0, the same work as our sysv
#     style): `lxc-start -d` + `lxc-wait -s RUNNING` (LXC's RUNNING = its
#     init has been executed), then `lxc-stop` (clean: SIGUSR2 = busybox
#     poweroff) on odd cycles and `lxc-stop -k` (SIGKILL) on even ones.
#     Privileged LXC and LXC in a user namespace (idmapped rootfs).
# (b) systemd Debian guest: a guest whose vdir is the shared $DEB tree with
#     init style `plain` (systemd as pid 1), timed from `vserver lcsd start`
#     until `vserver lcsd exec systemctl is-system-running` prints running or
#     degraded (polled every 50 ms), then `vserver lcsd stop`; the same on
#     $DEB with LXC (lxc-start -d, polled with lxc-attach; lxc-stop sends
#     SIGRTMIN+3) and systemd-nspawn -b (in the background, polled with
#     `nsenter -t INIT -a`; stopped with SIGRTMIN+3 to its pid 1), each
#     privileged and in a user namespace; 3 cycles after one warm-up boot.
#     A runtime whose guest does not reach running/degraded within 10 s gets
#     a failure row and, for ours, what systemctl, the init and the log show.
#
# Timing: a Python driver spawns each command and times it with
# perf_counter (spawn to exit); the poll loop's own cost (each poll is one
# process) is part of the systemd times, as it would be for a user.
# Names: lc*; contexts 5100-5101; LXC idmap bases 5102*65536, 5103*65536,
# nspawn's 5104*65536. Everything is stopped and removed on exit (trap).
. "$(dirname "$0")/lib.sh"

E=$VSERVER_ROOT/etc/vservers
V=$VSERVER_ROOT/var/lib/vservers
LXCFS_DIR=$V/.lxcfs
CYCLES=${LC_CYCLES:-10}
SD_CYCLES=${LC_SD_CYCLES:-3}
SD_TIMEOUT=${LC_SD_TIMEOUT:-10}
BASE_LXC_BB=$((5102 * 65536))
BASE_LXC_SD=$((5103 * 65536))
BASE_NSPAWN=$((5104 * 65536))
GUESTS="lcbb lcsd"
LXCS="lcbb-lxc lcbb-lxcu lcsd-lxc lcsd-lxcu"
NSPAWN_CGS="lc-nspawn lc-nspawnu"
TMP=$(mktemp -d /tmp/lifecycle.XXXXXX)

. "$(dirname "$0")/guests.sh"

cleanup() {
  set +e
  for n in $NSPAWN_CGS; do
    [ -s "$TMP/$n.pid" ] && kill "$(cat "$TMP/$n.pid")" 2>/dev/null
  done
  sleep 0.2
  for n in $NSPAWN_CGS; do
    [ -s "$TMP/$n.pid" ] && kill -9 "$(cat "$TMP/$n.pid")" 2>/dev/null
    cg_rm "$BENCH_CG/$n"
  done
  drop_all
  rm -rf "$TMP"
}

# --- setup ---
bench_begin
[ -x "$DEB/lib/systemd/systemd" ] || die "no Debian tree with systemd at $DEB: run bench/prepare"

"$VS" lcbb build -m busybox --context 5100 >/dev/null 2>"$TMP/err" || die "build lcbb: $(head -1 "$TMP/err")"
"$VS" lcsd build -m skeleton --context 5101 --initstyle plain >/dev/null 2>"$TMP/err" || die "build lcsd: $(head -1 "$TMP/err")"
rm -rf "${V:?}/lcsd"
ln -sfn "$DEB" "$E/lcsd/vdir"

lxc_bb lcbb-lxc
lxc_bb lcbb-lxcu "lxc.idmap = u 0 $BASE_LXC_BB 65536" "lxc.idmap = g 0 $BASE_LXC_BB 65536" \
  "lxc.rootfs.options = idmap=container"
chown -R "$BASE_LXC_BB:$BASE_LXC_BB" "$LXCPATH/lcbb-lxcu/etc"
# systemd under LXC: the working "lxc-priv" / "lxc-userns2" configurations
# of shared/reference/systemd-guest.md (cgroup:mixed, SIGRTMIN+3 to halt,
# sys_rawio dropped so that debugfs/tracefs mounts do not fail).
SDLXC="lxc.init.cmd = /sbin/init|lxc.signal.halt = SIGRTMIN+3|lxc.mount.auto = cgroup:mixed|lxc.tty.max = 0|lxc.pty.max = 1024"
IFS='|'; set -- $SDLXC; unset IFS
lxc_conf lcsd-lxc "$DEB" "$@" "lxc.cap.drop = mac_admin mac_override sys_time sys_module sys_rawio" >/dev/null
lxc_conf lcsd-lxcu "$DEB" "$@" "lxc.cap.drop = sys_rawio" "lxc.idmap = u 0 $BASE_LXC_SD 65536" \
  "lxc.idmap = g 0 $BASE_LXC_SD 65536" "lxc.rootfs.options = idmap=container" >/dev/null
set --
for n in $NSPAWN_CGS; do
  for h in /sys/fs/cgroup/*/; do
    [ -f "${h}cgroup.procs" ] || continue
    mkdir -p "$h$BENCH_CG/$n"
    if [ -f "${h}cpuset.cpus" ]; then
      cat "$h$BENCH_CG/cpuset.cpus" > "$h$BENCH_CG/$n/cpuset.cpus"
      cat "$h$BENCH_CG/cpuset.mems" > "$h$BENCH_CG/$n/cpuset.mems"
    fi
  done
done

export VS LXCPATH BB DEB TMP CYCLES SD_CYCLES SD_TIMEOUT BENCH_CG BASE_NSPAWN VSERVER_ROOT
python3 - <<'PY'
import json, os, shutil, signal, statistics, subprocess, sys, time

VS, LXCPATH, TMP = os.environ["VS"], os.environ["LXCPATH"], os.environ["TMP"]
DEB, CG = os.environ["DEB"], os.environ["BENCH_CG"]
CYCLES, SD_CYCLES = int(os.environ["CYCLES"]), int(os.environ["SD_CYCLES"])
SD_TIMEOUT = float(os.environ["SD_TIMEOUT"])
ROOT = os.environ["VSERVER_ROOT"]
NOUIDMAP = dict(os.environ, PATH="/usr/local/sbin:/usr/sbin:/sbin")  # LXC writes the maps itself


def log(*a):
    print("lifecycle:", *a, file=sys.stderr, flush=True)


def run(argv, env=None):
    """Runs argv; returns (ms, exit code, first line of stderr)."""
    with open(os.path.join(TMP, "stderr"), "w+") as err:
        t = time.perf_counter()
        r = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, env=env)
        ms = (time.perf_counter() - t) * 1000
        err.seek(0)
        lines = [l.strip() for l in err.read().splitlines() if l.strip()]
    return ms, r.returncode, (lines[0] if lines else "")


def out(argv, env=None, timeout=10):
    try:
        r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env, timeout=timeout)
        return r.returncode, (r.stdout + r.stderr).strip()
    except subprocess.TimeoutExpired:
        return -1, "timed out"


def lxc(*a):
    # Full path: the user-namespace rows run with a PATH without newuidmap.
    return [shutil.which("lxc-" + a[0]) or "lxc-" + a[0], "-P", LXCPATH, "-n", a[1], *a[2:]]


def fmt(v):
    return f"{v:.0f}" if v >= 100 else f"{v:.1f}"


def stats(xs):
    if not xs:
        return "-"
    return f"{fmt(statistics.median(xs))} ({fmt(min(xs))}–{fmt(max(xs))})"


def cell(s):
    return s.replace("|", "/")[:160]


# ---------------------------------------------------------------- busybox
class VsBB:
    name, what = "vserver (user namespace, sysv style)", "`vserver lcbb start` / `vserver lcbb stop`"

    def start(self):
        ms, rc, err = run([VS, "lcbb", "start"])
        if rc == 0 and run([VS, "lcbb", "running"])[1] != 0:
            return ms, 1, "start returned 0 but the guest is not running"
        return ms, rc, err

    def stop(self, cycle):
        return ("clean",) + run([VS, "lcbb", "stop"])


class LxcBB:
    def __init__(self, n, label, env=None):
        self.n, self.name, self.env = n, label, env
        self.what = f"`lxc-start -n {n} -d` + `lxc-wait -s RUNNING` / `lxc-stop` (odd cycles) or `lxc-stop -k` (even)"

    def start(self):
        ms, rc, err = run(lxc("start", self.n, "-d", "-o", f"{LXCPATH}/{self.n}/lxc.log", "-l", "WARN"), self.env)
        if rc != 0:
            return ms, rc, err
        ms2, rc, err = run(lxc("wait", self.n, "-s", "RUNNING", "-t", "10"))
        return ms + ms2, rc, err

    def stop(self, cycle):
        if cycle % 2 == 0:
            return ("clean",) + run(lxc("stop", self.n))
        return ("kill",) + run(lxc("stop", self.n, "-k"))


def bench_bb():
    rts = [VsBB(), LxcBB("lcbb-lxc", "LXC privileged, busybox init"),
           LxcBB("lcbb-lxcu", "LXC user namespace (idmapped rootfs), busybox init", NOUIDMAP)]
    res = {r.name: {"start": [], "clean": [], "kill": [], "fail": None} for r in rts}
    # Warm-up (untimed). Ours retries once: an lxcfs of another mount
    # namespace may hold DIR.pid (see the report), and lxcfs's start-up is
    # not what this measures.
    for r in rts:
        ms, rc, err = r.start()
        if rc != 0 and isinstance(r, VsBB) and "lxcfs" in err:
            log("first start failed on lxcfs, retrying:", err)
            ms, rc, err = r.start()
        if rc != 0:
            res[r.name]["fail"] = f"start failed (exit {rc}): {err}"
            continue
        time.sleep(0.2)
        k, ms, rc, err = r.stop(1)
        if rc != 0:
            res[r.name]["fail"] = f"stop failed (exit {rc}): {err}"
    for c in range(CYCLES):
        for r in rts:
            d = res[r.name]
            if d["fail"]:
                continue
            ms, rc, err = r.start()
            if rc != 0:
                d["fail"] = f"start failed in cycle {c + 1} (exit {rc}): {err}"
                r.stop(1)
                continue
            d["start"].append(ms)
            time.sleep(0.2)  # rc 3 (syslogd) is done, the guest idles
            kind, ms, rc, err = r.stop(c)
            if rc != 0:
                d["fail"] = f"stop failed in cycle {c + 1} (exit {rc}): {err}"
                continue
            d[kind].append(ms)
        log(f"busybox cycle {c + 1}/{CYCLES} done")
    ref = res[rts[0].name]["start"]
    print("### busybox guest, sysv style (init + /etc/init.d/rc 3 starting syslogd)\n")
    print("| runtime | start ms | clean stop ms | kill stop ms | start ratio to vserver |")
    print("|---|---:|---:|---:|---:|")
    for r in rts:
        d = res[r.name]
        if d["fail"] and not d["start"]:
            print(f"| {r.name} | failed: {cell(d['fail'])} | | | |")
            continue
        ratio = f"{statistics.median(d['start']) / statistics.median(ref):.2f}" if ref and d["start"] else "-"
        kill = stats(d["kill"]) if d["kill"] else "-"
        print(f"| {r.name} | {stats(d['start'])} | {stats(d['clean'])} | {kill} | {ratio} |")
        if d["fail"]:
            print(f"| {r.name}: later | failed: {cell(d['fail'])} | | | |")
    print()
    print("Medians (min–max) of " f"{CYCLES} interleaved cycles (LXC: {(CYCLES + 1) // 2} clean and "
          f"{CYCLES // 2} kill stops) after one warm-up cycle. Commands:\n")
    for r in rts:
        print(f"- {r.name}: {r.what}")
    print()


# ---------------------------------------------------------------- systemd
def poll(argv, t0, env=None):
    """Polls argv every 50 ms until it prints running or degraded; returns
    (ms since t0, state, polls) or (None, last output, polls)."""
    n, last = 0, ""
    while (time.perf_counter() - t0) < SD_TIMEOUT:
        n += 1
        rc, o = out(argv, env, timeout=5)
        s = o.splitlines()[-1].strip() if o else ""
        if s in ("running", "degraded"):
            return (time.perf_counter() - t0) * 1000, s, n
        last = o.splitlines()[0] if o else f"exit {rc}, no output"
        time.sleep(0.05)
    return None, last, n


class VsSD:
    name = "vserver (user namespace, plain style: systemd as pid 1)"
    what = ("`vserver lcsd start`, then `vserver lcsd exec systemctl is-system-running` every 50 ms / "
            "`vserver lcsd stop` (SIGRTMIN+3, then killseq)")

    def boot(self):
        t0 = time.perf_counter()
        ms, rc, err = run([VS, "lcsd", "start"])
        if rc != 0 and "lxcfs" in err:
            log("start failed on lxcfs, retrying:", err)
            t0 = time.perf_counter()
            ms, rc, err = run([VS, "lcsd", "start"])
        if rc != 0:
            return None, f"start failed (exit {rc}): {err}", 0
        return poll([VS, "lcsd", "exec", "systemctl", "is-system-running"], t0)

    def halt(self):
        return run([VS, "lcsd", "stop"])

    def diagnose(self):
        lines = []
        for args in (["is-system-running"], ["list-jobs", "--no-pager"], ["--failed", "--no-pager"]):
            rc, o = out([VS, "lcsd", "exec", "systemctl", *args])
            lines.append(f"`vserver lcsd exec systemctl {' '.join(args)}`: exit {rc}, "
                         f"`{(o.splitlines() or [''])[0]}`")
        try:
            st = json.load(open(f"{ROOT}/run/vservers/lcsd/state.json"))
            pid = st["init_pid"]
            comm = open(f"/proc/{pid}/comm").read().strip()
            wchan = open(f"/proc/{pid}/wchan").read().strip()
            nprocs = len(out([VS, "lcsd", "exec", "ps", "-e", "-o", "pid="])[1].split())
            lines.append(f"the guest's pid 1 (host pid {pid}, `{comm}`) sleeps in `{wchan}`; "
                         f"processes in the guest (with the `ps` asking): {nprocs}")
            cg = {l.split(":")[1]: l.split(":", 2)[2] for l in open(f"/proc/{pid}/cgroup").read().splitlines()}
            sd = cg.get("name=systemd")
            if sd is not None:
                d = f"/sys/fs/cgroup/systemd{sd}"
                own = os.stat(d).st_uid if os.path.isdir(d) else "?"
                lines.append(f"its name=systemd cgroup is `{sd}` (host uid of the directory: {own}); "
                             f"state.json `cgroups` has {'a' if any('/systemd/' in c for c in st['cgroups']) else 'no'} "
                             f"name=systemd hierarchy: {', '.join('`' + c.split('/')[4] + '`' for c in st['cgroups'])}")
            lines.append(f"its cgroup2 path: `{cg.get('', '?')}`; v1 memory: `{cg.get('memory', '?')}`")
            fd1 = os.readlink(f"/proc/{pid}/fd/1") if os.path.exists(f"/proc/{pid}/fd/1") else "closed"
            console = out([VS, "lcsd", "exec", "test", "-e", "/dev/console"])[0] == 0
            lines.append(f"systemd's own messages are lost: its stdout is `{fd1}` and the guest has "
                         f"{'a' if console else 'no'} `/dev/console`")
        except (OSError, KeyError, ValueError) as e:
            lines.append(f"state/proc not readable: {e}")
        try:
            tail = open(f"{ROOT}/var/log/vservers/lcsd.log").read().splitlines()[-3:]
            lines.append("guest log (last lines): " + " / ".join(f"`{l}`" for l in tail))
        except OSError as e:
            lines.append(f"guest log: {e}")
        return lines


class LxcSD:
    def __init__(self, n, label, env=None):
        self.n, self.name, self.env = n, label, env
        self.what = (f"`lxc-start -n {n} -d`, then `lxc-attach -n {n} -- systemctl is-system-running` every "
                     "50 ms / `lxc-stop` (SIGRTMIN+3, waits until STOPPED)")

    def boot(self):
        t0 = time.perf_counter()
        ms, rc, err = run(lxc("start", self.n, "-d", "-o", f"{LXCPATH}/{self.n}/lxc.log", "-l", "WARN"), self.env)
        if rc != 0:
            return None, f"lxc-start failed (exit {rc}): {err}", 0
        return poll(lxc("attach", self.n, "--", "systemctl", "is-system-running"), t0)

    def halt(self):
        return run(lxc("stop", self.n))

    def diagnose(self):
        return []

    def kill(self):
        run(lxc("stop", self.n, "-k"))


class NspawnSD:
    def __init__(self, cg, label, extra):
        self.cg, self.name, self.extra = cg, label, extra
        self.cmd = ["systemd-nspawn", "-q", "-D", DEB, "-b", "--register=no", "--keep-unit",
                    "--private-network", *extra]
        self.what = (f"`{' '.join(self.cmd)}` in the background (in its own cgroup), then "
                     "`nsenter -t INIT -a systemctl is-system-running` every 50 ms / `kill -RTMIN+3 INIT` "
                     "and wait for nspawn to exit")
        self.p = None

    def boot(self):
        # The launcher moves itself into its own cgroup in every hierarchy
        # (nspawn puts payload/ and supervisor/ below the caller's cgroup).
        sh = (f'for h in /sys/fs/cgroup/*/; do [ -f "${{h}}cgroup.procs" ] && echo $$ > "${{h}}{CG}/{self.cg}/cgroup.procs"; '
              'done; exec "$@"')
        t0 = time.perf_counter()
        self.console = open(os.path.join(TMP, self.cg + ".console"), "w")
        self.p = subprocess.Popen(["sh", "-c", sh, "sh", *self.cmd], stdin=subprocess.DEVNULL,
                                  stdout=self.console, stderr=subprocess.STDOUT)
        open(os.path.join(TMP, self.cg + ".pid"), "w").write(str(self.p.pid))
        self.init = None
        while self.init is None and time.perf_counter() - t0 < SD_TIMEOUT:
            if self.p.poll() is not None:
                c = open(self.console.name).read().strip().splitlines()
                return None, f"nspawn exited {self.p.returncode}: {c[-1] if c else ''}", 0
            try:
                for t in os.listdir(f"/proc/{self.p.pid}/task"):
                    for c in open(f"/proc/{self.p.pid}/task/{t}/children").read().split():
                        if open(f"/proc/{c}/comm").read().strip() == "systemd":
                            self.init = int(c)
            except OSError:
                pass
            if self.init is None:
                time.sleep(0.01)
        if self.init is None:
            return None, "no systemd child of nspawn appeared", 0
        return poll(["nsenter", "-t", str(self.init), "-a", "systemctl", "is-system-running"], t0)

    def halt(self):
        t = time.perf_counter()
        try:
            os.kill(self.init, signal.SIGRTMIN + 3)
            rc = self.p.wait(timeout=30)
            err = ""
        except (OSError, subprocess.TimeoutExpired) as e:
            rc, err = 1, str(e)
        return (time.perf_counter() - t) * 1000, rc, err

    def diagnose(self):
        return []

    def kill(self):
        if self.p and self.p.poll() is None:
            self.p.kill()
            self.p.wait()


def bench_sd():
    base = os.environ["BASE_NSPAWN"]
    rts = [VsSD(),
           LxcSD("lcsd-lxc", "LXC privileged"),
           LxcSD("lcsd-lxcu", "LXC user namespace (idmapped rootfs)", NOUIDMAP),
           NspawnSD("lc-nspawn", "systemd-nspawn privileged", []),
           NspawnSD("lc-nspawnu", "systemd-nspawn user namespace (idmapped rootfs)",
                    [f"--private-users={base}:65536", "--private-users-ownership=map"])]
    res = {r.name: {"boot": [], "stop": [], "states": [], "polls": [], "fail": None, "diag": [],
                    "failstop": None} for r in rts}
    for c in range(SD_CYCLES + 1):  # cycle 0 is the warm-up
        for r in rts:
            d = res[r.name]
            if d["fail"]:
                continue
            ms, state, polls = r.boot()
            if ms is None:
                d["fail"] = f"did not reach running/degraded within {SD_TIMEOUT:.0f} s: {state}"
                d["diag"] = r.diagnose()
                sms, rc, err = r.halt()
                d["failstop"] = f"{sms:.0f} ms (exit {rc})"
                if hasattr(r, "kill"):
                    r.kill()
                log(r.name, d["fail"])
                continue
            time.sleep(0.3)
            sms, rc, err = r.halt()
            if rc != 0:
                d["fail"] = f"stop failed (exit {rc}): {err}"
                if hasattr(r, "kill"):
                    r.kill()
                continue
            if c > 0:
                d["boot"].append(ms)
                d["stop"].append(sms)
                d["states"].append(state)
                d["polls"].append(polls)
        log(f"systemd cycle {c}/{SD_CYCLES} done")
    ok = [r for r in rts if res[r.name]["boot"]]
    ref = res[rts[0].name]["boot"]
    print("### systemd Debian guest (bookworm, $DEB) until `systemctl is-system-running` says running\n")
    print("| runtime | start to running ms | stop ms | state reached | polls | ratio to vserver |")
    print("|---|---:|---:|---|---:|---:|")
    for r in rts:
        d = res[r.name]
        if d["boot"]:
            ratio = f"{statistics.median(d['boot']) / statistics.median(ref):.2f}" if ref else "-"
            states = ", ".join(sorted(set(d["states"])))
            print(f"| {r.name} | {stats(d['boot'])} | {stats(d['stop'])} | {states} | "
                  f"{statistics.median(d['polls']):.0f} | {ratio} |")
        if d["fail"]:
            stop = f"; its stop then took {d['failstop']}" if d["failstop"] else ""
            print(f"| {r.name} | failed: {cell(d['fail'])}{stop} | | | | |")
    print()
    print(f"Medians (min–max) of {SD_CYCLES} interleaved boots after one warm-up boot; polls = how many "
          "`is-system-running` calls the median boot took (the first poll starts right after the start "
          "command returns). Ratios only where our guest reached running. Commands:\n")
    for r in rts:
        print(f"- {r.name}: {r.what}")
    for r in rts:
        if res[r.name]["diag"]:
            print(f"\n**{r.name} did not boot.** What it shows (read by the script at the timeout):\n")
            for l in res[r.name]["diag"]:
                print(f"- {l}")
    print()


print("\n## Full start/stop: busybox sysv guest and systemd Debian guest\n")
print("`bench/lifecycle.sh`: whole guests started and stopped, side by side with LXC 5.0.2 and "
      "systemd-nspawn 252, all on the same trees and in bench/enter's cgroup. Our guests run in a user "
      "namespace (the default); each LXC and nspawn row says whether it is privileged. The busybox guest "
      "`lcbb` is `vserver lcbb build -m busybox` (its own tree, identical to `$BB`); LXC boots `$BB` with "
      "busybox init and its own `/etc` (a copy with an inittab running `/etc/init.d/rc 3` at boot and "
      "`rc 0` at shutdown, i.e. the work of our sysv style). `vserver start` returns once the guest's init "
      "runs (it then starts rc 3); LXC's RUNNING is reached once its init is executed: neither waits for "
      "rc 3 to finish (each cycle idles 200 ms between start and stop). A clean LXC stop of busybox init includes busybox's own two 1-second pauses "
      "(SIGTERM to all, sleep 1, SIGKILL, sleep 1); `lxc-stop -k` kills at once. The systemd guest "
      "`lcsd` is a `-m skeleton --initstyle plain` guest whose `vdir` links to `$DEB` (Debian bookworm "
      "minbase + systemd-sysv); LXC and nspawn boot `$DEB` with `/sbin/init` (systemd) too. Times in ms, "
      "spawn to exit of each command, taken by one Python driver.\n")
bench_bb()
bench_sd()
PY
