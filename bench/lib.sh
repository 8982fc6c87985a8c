# Shared by the bench/ scripts (sourced, POSIX sh). Every script runs as
# root, inside the private mount namespace that bench/run-all (or
# bench/enter) makes: tmpfs on /run, so the peers' state (lxc, runc, crun,
# nspawn) never reaches the host's /run.
#
# Layout under $BENCH (default /var/tmp/vserver-bench):
#   vs/        VSERVER_ROOT of this project's guests
#   roots/     nothing by default; peers use the guests' trees below
#   lxc/       LXC containers (lxcpath)
#   oci/       OCI bundles for crun and runc
#   out/       each script's markdown section and raw JSON
# The shared root trees, built once by bench/prepare:
#   $BB   busybox tree   (vserver guest "bb", built with -m busybox)
#   $DEB  Debian minbase (vserver guest "deb", -m debootstrap)
set -eu
REPO=$(cd "$(dirname "$0")/.." && pwd)
BENCH=${BENCH:-/var/tmp/vserver-bench}
VS=${VS:-$REPO/target/release/vserver}
export VSERVER_ROOT=$BENCH/vs
BB=$VSERVER_ROOT/var/lib/vservers/bb
DEB=$VSERVER_ROOT/var/lib/vservers/deb
LXCPATH=$BENCH/lxc
OCI=$BENCH/oci
OUT=$BENCH/out
TIMEIT="python3 $REPO/bench/timeit.py"
# The C floor (bench/floor.c), built by bench/prepare.
FLOOR=$BENCH/bin/floor
mkdir -p "$BENCH" "$LXCPATH" "$OCI" "$OUT" "$BENCH/bin"

# The cgroup every peer makes its cgroups under (bench/enter moves the
# benchmark there in every hierarchy), relative to each hierarchy's root.
BENCH_CG=vserver-bench

die() { echo "bench: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root"
[ -x "$VS" ] || die "build first: cargo build --release ($VS missing)"

# in_private_ns: true when /run is the tmpfs bench/enter mounted.
in_private_ns() { [ -e /run/.vserver-bench ]; }
in_private_ns || die "run through bench/run-all or bench/enter (private mount namespace, tmpfs /run)"

# section TITLE: starts a markdown section on stdout.
section() { printf '\n## %s\n\n' "$1"; }

# cmdline: prints how the script was run, for the section text.
cmdline() { printf '`bench/%s`' "$(basename "$0")"; }

# lxc_conf NAME ROOT [EXTRA...]: writes an LXC container config for
# (never lxc-destroy such a container: that deletes ROOT, a shared tree)
# lxc-execute / lxc-start with rootfs ROOT and no network, unconfined
# (no AppArmor on this host), cgroups under $BENCH_CG/lxc.
lxc_conf() {
  name=$1; root=$2; shift 2
  mkdir -p "$LXCPATH/$name"
  {
    echo "lxc.uts.name = $name"
    echo "lxc.rootfs.path = dir:$root"
    echo "lxc.net.0.type = empty"
    echo "lxc.apparmor.profile = unconfined"
    echo "lxc.cgroup.dir = $BENCH_CG/lxc/$name"
    echo "lxc.mount.auto = proc:mixed sys:ro"
    echo "lxc.autodev = 1"
    echo "lxc.log.level = WARN"
    for l in "$@"; do echo "$l"; done
  } > "$LXCPATH/$name/config"
  echo "$LXCPATH/$name/config"
}

# oci_bundle NAME ROOT ARGS_JSON [USERNS [BASE]]: writes an OCI bundle for
# crun and runc: read-only ROOT, process ARGS_JSON (e.g. '["/bin/true"]'),
# cgroupsPath /$BENCH_CG/oci/NAME; with USERNS=1 a user namespace mapping
# 0..65535 to BASE (default 300000, the range every peer's user namespace
# uses here).
oci_bundle() {
  name=$1; root=$2; args=$3; userns=${4:-0}; base=${5:-300000}
  d=$OCI/$name; mkdir -p "$d"
  python3 - "$d/config.json" "$root" "$args" "$userns" "$BENCH_CG/oci/$name" "$base" <<'PY'
import json, sys
path, root, args, userns, cg = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4] == "1", sys.argv[5]
base = int(sys.argv[6])
caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
c = {
  "ociVersion": "1.0.2",
  "process": {"terminal": False, "user": {"uid": 0, "gid": 0}, "args": args,
              "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"], "cwd": "/",
              "capabilities": {k: caps for k in ["bounding", "effective", "permitted"]},
              "noNewPrivileges": True},
  "root": {"path": root, "readonly": True},
  "hostname": "oci",
  "mounts": [
    {"destination": "/proc", "type": "proc", "source": "proc"},
    {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
    {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
    {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
    {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
  ],
  "linux": {
    "cgroupsPath": "/" + cg,
    "namespaces": [{"type": t} for t in ["pid", "network", "ipc", "uts", "mount", "cgroup"]],
    "maskedPaths": ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware"],
    "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
  },
}
if userns:
    c["linux"]["namespaces"].append({"type": "user"})
    c["linux"]["uidMappings"] = [{"containerID": 0, "hostID": base, "size": 65536}]
    c["linux"]["gidMappings"] = [{"containerID": 0, "hostID": base, "size": 65536}]
    # sysfs cannot be mounted in a user namespace without a network
    # namespace of its own owned by it: bind the host's read-only.
    c["mounts"][-1] = {"destination": "/sys", "type": "bind", "source": "/sys", "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]}
json.dump(c, open(path, "w"), indent=1)
PY
  echo "$d"
}

# crun cannot run in this host's hybrid layout (it refuses while the
# controller-less cgroup2 hierarchy at /sys/fs/cgroup/unified is mounted):
# crun_ns prints the pid of a process whose mount namespace has it
# unmounted; run crun as `nsenter -m -t PID crun ...` (the nsenter floor
# row says what that adds).
crun_ns() {
  if [ ! -s "$BENCH/crun-ns.pid" ] || ! kill -0 "$(cat "$BENCH/crun-ns.pid")" 2>/dev/null; then
    unshare -m --propagation private sh -c 'umount /sys/fs/cgroup/unified 2>/dev/null; exec sleep 100000' \
      </dev/null >/dev/null 2>&1 &
    echo $! > "$BENCH/crun-ns.pid"
    sleep 0.2
  fi
  cat "$BENCH/crun-ns.pid"
}

# crun_ns_stop: ends the process crun_ns started (bench/enter calls it).
crun_ns_stop() {
  if [ -s "$BENCH/crun-ns.pid" ]; then
    kill "$(cat "$BENCH/crun-ns.pid")" 2>/dev/null || true
    rm -f "$BENCH/crun-ns.pid"
  fi
}

# median: the median of the numbers on stdin, one per line.
median() { sort -n | awk '{a[NR]=$1} END {if (NR==0) print "nan"; else if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

# now_ms: milliseconds since the epoch, with fraction.
now_ms() { python3 -c 'import time; print(f"{time.time()*1000:.3f}")'; }
