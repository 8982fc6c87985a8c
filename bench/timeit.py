#!/usr/bin/env python3
"""Interleaved wall-clock timing of whole commands.

hyperfine runs one command's series after the other, so a drift of the
machine (another tenant, a cache, the CPU clock) lands on one command only.
This driver runs the commands round-robin, in a new random order each
round, each spawned directly (os.posix_spawn, no shell) and timed from
spawn to reaped exit, and prints one markdown row per command: median,
10th-90th percentile, and the ratio of medians to the reference command.

Every command runs once untimed first; one that fails gets a row saying so
(exit status and the first line of its stderr) and is left out.

Usage: timeit.py [--runs N] [--warmup N] [--ref NAME] [--json FILE]
                 'NAME::COMMAND' ...
COMMAND is split like a shell would (shlex), but never run by one.
"""
import argparse
import json
import os
import random
import shlex
import statistics
import subprocess
import sys
import time


def spawn_time(argv):
    t = time.perf_counter_ns()
    pid = os.posix_spawnp(argv[0], argv, os.environ)
    _, status = os.waitpid(pid, 0)
    dt = time.perf_counter_ns() - t
    return dt / 1e6, os.waitstatus_to_exitcode(status)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--ref", default=None)
    ap.add_argument("--json", default=None)
    ap.add_argument("cmds", nargs="+")
    a = ap.parse_args()
    cmds = []
    for c in a.cmds:
        name, _, cmd = c.partition("::")
        cmds.append((name, shlex.split(cmd), cmd))
    ok, failed = [], []
    devnull = os.open(os.devnull, os.O_WRONLY)
    for name, argv, cmd in cmds:
        try:
            r = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        except OSError as e:
            failed.append((name, cmd, 127, str(e)))
            continue
        if r.returncode != 0:
            err = r.stderr.decode(errors="replace").strip().splitlines()
            failed.append((name, cmd, r.returncode, err[0] if err else ""))
        else:
            ok.append((name, argv, cmd))
    # Timed children write to /dev/null, as hyperfine's do.
    saved = os.dup(1), os.dup(2)
    times = {name: [] for name, _, _ in ok}
    bad = {}
    try:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        for rnd in range(a.warmup + a.runs):
            order = list(ok)
            random.shuffle(order)
            for name, argv, _ in order:
                if name in bad:
                    continue
                ms, code = spawn_time(argv)
                if code != 0:
                    bad[name] = code
                elif rnd >= a.warmup:
                    times[name].append(ms)
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
    med = {n: statistics.median(t) for n, t in times.items() if t and n not in bad}
    ref = med.get(a.ref) if a.ref else None
    print("| command | median ms | p10–p90 ms | ratio to " + (a.ref or "-") + " |")
    print("|---|---:|---:|---:|")
    for name, argv, cmd in ok:
        if name in bad:
            print(f"| {name} | failed during the timed runs (exit {bad[name]}) | | |")
            continue
        t = sorted(times[name])
        q = statistics.quantiles(t, n=10) if len(t) >= 2 else [t[0]] * 9
        ratio = f"{med[name] / ref:.2f}" if ref else "-"
        print(f"| {name} | {med[name]:.2f} | {q[0]:.2f}–{q[-1]:.2f} | {ratio} |")
    for name, cmd, code, err in failed:
        print(f"| {name} | failed: exit {code}: {err[:160].replace('|', '/')} | | |")
    print()
    print("Commands (as run, each timed from spawn to exit, "
          f"{a.runs} interleaved rounds after {a.warmup} warm-up rounds):")
    print()
    for name, _, cmd in ok + [(f[0], None, f[1]) for f in failed]:
        print(f"- {name}: `{cmd}`")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"times_ms": times, "failed": failed, "ref": a.ref}, f)


if __name__ == "__main__":
    sys.exit(main())
