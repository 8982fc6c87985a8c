#!/bin/sh
# bench/overhead.sh: what running inside costs, on the host vs inside a
# vserver guest vs inside an LXC container, all on the same Debian tree
# ($DEB) and the same binaries:
#   - sysbench cpu (events/s, 1 thread, fixed time),
#   - sysbench memory (MiB/s, 1 MiB blocks, writes, 1 thread, fixed time),
#   - ovbench (a static C program compiled here into $BENCH/bin and copied
#     into the tree for the run): a getppid() loop (syscalls/s), an
#     open+close loop of /etc/passwd (pairs/s) and a fork+_exit+waitpid loop
#     (forks/s), each for a fixed time; and the same loops on the host under
#     a one-instruction allow-all seccomp filter (ovbench -s), for scale.
# The guest is our own (ovg): a skeleton guest whose vdir link points at
# $DEB, init style cmd (/bin/sleep), unprivileged (user namespace, idmapped
# tree), default cflags but ~virt_mem; every test is `vserver ovg exec ...`,
# so it runs under the guest's seccomp filter and in its cgroups. The LXC
# container (ovlxc) is a privileged container on $DEB (lxc_conf, no seccomp
# profile), init /bin/sleep, every test through lxc-attach. The host runs
# /usr/bin/sysbench (the same Debian package) and the same ovbench binary.
# ROUNDS rounds (default 5), the environments interleaved within a round;
# the table shows medians and the ratios inside/host.
. "$(dirname "$0")/lib.sh"

ROUNDS=${ROUNDS:-5}
CPU_S=${CPU_S:-2}
MEM_S=${MEM_S:-2}
C_S=${C_S:-1}
G=ovg
L=ovlxc
GCFG=$VSERVER_ROOT/etc/vservers/$G
GOWN=$VSERVER_ROOT/var/lib/vservers/$G   # the guest's own (skeleton) tree
OVB=$BENCH/bin/ovbench
TREE_OVB=/usr/local/bin/vs-ovbench       # where it goes inside $DEB
W=$(mktemp -d "$BENCH/ov.XXXXXX")

log() { echo "overhead: $*" >&2; }

# The guest's vdir points at the shared $DEB: point it back at the guest's
# own tree before any delete, or delete would remove $DEB.
guest_gone() {
  [ -d "$GCFG" ] || return 0
  "$VS" "$G" stop >/dev/null 2>&1 || true
  ln -sfn "$GOWN" "$GCFG/vdir" || return 0   # never delete while it may point at $DEB
  "$VS" "$G" delete --force >/dev/null 2>&1 || log "could not delete guest $G"
}

lxc_gone() {
  if [ -d "$LXCPATH/$L" ]; then
    lxc-stop -n "$L" -P "$LXCPATH" -k >/dev/null 2>&1 || true
    # never lxc-destroy: it would remove the rootfs, which is $DEB
    rm -rf "${LXCPATH:?}/$L"
  fi
  for h in /sys/fs/cgroup/*/; do
    [ -d "$h$BENCH_CG/lxc/$L" ] && { find "$h$BENCH_CG/lxc/$L" -depth -type d -exec rmdir {} + 2>/dev/null || true; }
    rmdir "$h$BENCH_CG/lxc" 2>/dev/null || true
  done
  return 0
}

cleanup() {
  guest_gone
  lxc_gone
  rm -f "$DEB$TREE_OVB"
  rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

[ -x "$DEB/usr/bin/sysbench" ] || die "$DEB has no sysbench: run bench/prepare"
command -v sysbench >/dev/null || die "host sysbench missing: run bench/setup"
guest_gone   # leftovers of an interrupted run
lxc_gone

# The C program.
cat > "$W/ovbench.c" <<'EOF'
/* ovbench [-s] SECONDS: getppid(), open+close and fork+wait loops, each
 * for SECONDS of wall time; prints "NAME OPS_PER_SECOND" per loop. -s
 * first installs a one-instruction allow-all seccomp filter (the cost of
 * having any filter at all). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <string.h>
#include <sys/prctl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}
static int op_getppid(void) { return syscall(SYS_getppid) < 0; }
static int op_openclose(void) {
  int fd = open("/etc/passwd", O_RDONLY | O_CLOEXEC);
  return fd < 0 || close(fd) != 0;
}
static int op_fork(void) {
  pid_t p = fork();
  if (p < 0) return 1;
  if (p == 0) _exit(0);
  int st;
  return waitpid(p, &st, 0) != p || !WIFEXITED(st);
}
static void run(const char *name, int (*op)(void), int batch, double secs) {
  long n = 0;
  double t0 = now(), t;
  do {
    for (int i = 0; i < batch; i++)
      if (op()) { perror(name); exit(1); }
    n += batch;
  } while ((t = now()) - t0 < secs);
  printf("%s %.0f\n", name, n / (t - t0));
  fflush(stdout);
}
int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "-s") == 0) {
    struct sock_filter allow[] = {BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)};
    struct sock_fprog prog = {1, allow};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog)) {
      perror("seccomp"); return 1;
    }
    argv++; argc--;
  }
  double secs = argc > 1 ? atof(argv[1]) : 1.0;
  if (secs <= 0) { fprintf(stderr, "usage: ovbench [-s] SECONDS\n"); return 2; }
  run("getppid", op_getppid, 10000, secs);
  run("openclose", op_openclose, 1000, secs);
  run("fork", op_fork, 50, secs);
  return 0;
}
EOF
gcc -O2 -static -Wall -o "$OVB" "$W/ovbench.c" || die "gcc -static failed (libc6-dev installed?)"
mkdir -p "$DEB/usr/local/bin"
cp "$OVB" "$DEB$TREE_OVB"

# The guest and the container. A failed setup writes the first line of
# its error to $W/ENV.err.
log "building guest $G and container $L"
if ! "$VS" "$G" build -m skeleton --flags ~virt_mem >"$W/out" 2>&1; then
  head -n1 "$W/out" > "$W/guest.err"
else
  mkdir -p "$GCFG/apps/init"
  echo cmd > "$GCFG/apps/init/style"
  printf '/bin/sleep\n100000\n' > "$GCFG/apps/init/cmd.start"
  ln -sfn "$DEB" "$GCFG/vdir"
  "$VS" "$G" start >"$W/out" 2>&1 || grep -m1 . "$W/out" > "$W/guest.err" || echo "start failed" > "$W/guest.err"
fi
lxc_conf "$L" "$DEB" "lxc.init.cmd = /bin/sleep 100000" >/dev/null
if ! lxc-start -n "$L" -P "$LXCPATH" -d -l WARN -o "$W/lxc.log" >"$W/out" 2>&1 \
  || ! lxc-wait -n "$L" -P "$LXCPATH" -s RUNNING -t 10 >>"$W/out" 2>&1; then
  { cat "$W/out" "$W/lxc.log" 2>/dev/null; echo "lxc-start failed"; } | grep -m1 . > "$W/lxc.err"
fi

# in_env ENV CMD...: runs CMD (a path inside the tree) in ENV. hostsc is
# the host with ovbench under a one-instruction allow-all seccomp filter.
in_env() {
  e=$1; shift
  case $e in
    host|hostsc)
      if [ "$1" = "$TREE_OVB" ]; then
        shift
        if [ $e = hostsc ]; then set -- "$OVB" -s "$@"; else set -- "$OVB" "$@"; fi
      fi
      "$@" ;;
    guest) "$VS" "$G" exec "$@" ;;
    lxc) lxc-attach -n "$L" -P "$LXCPATH" -- "$@" ;;
  esac
}

# fail ENV: keeps the first line of $W/out as why ENV failed.
fail() { { grep -m1 . "$W/out" || echo "failed without a message"; } > "$W/$1.err"; }

# measure ENV: one round of every test in ENV; appends one value per test
# to $W/ENV.TEST. A failing test stops ENV and records its first error line.
measure() {
  e=$1
  [ -s "$W/$e.err" ] && return 0
  if [ $e != hostsc ]; then
    if in_env $e /usr/bin/sysbench cpu --threads=1 --time="$CPU_S" run >"$W/out" 2>&1; then
      sed -n 's/.*events per second: *\([0-9.]*\).*/\1/p' "$W/out" >> "$W/$e.cpu"
    else
      fail $e; return 0
    fi
    if in_env $e /usr/bin/sysbench memory --threads=1 --time="$MEM_S" --memory-block-size=1M \
        --memory-total-size=100T --memory-oper=write run >"$W/out" 2>&1; then
      sed -n 's/.*(\([0-9.]*\) MiB\/sec).*/\1/p' "$W/out" >> "$W/$e.mem"
    else
      fail $e; return 0
    fi
  fi
  if in_env $e "$TREE_OVB" "$C_S" >"$W/out" 2>&1; then
    for t in getppid openclose fork; do
      awk -v t=$t '$1 == t {print $2}' "$W/out" >> "$W/$e.$t"
    done
  else
    fail $e; return 0
  fi
}

r=1
while [ $r -le "$ROUNDS" ]; do
  log "round $r/$ROUNDS"
  # a new order each round
  case $((r % 4)) in
    1) order="host guest lxc hostsc";; 2) order="guest lxc hostsc host";;
    3) order="lxc hostsc host guest";; 0) order="hostsc host guest lxc";;
  esac
  for e in $order; do measure $e; done
  r=$((r + 1))
done

# Raw values for the record.
for e in host guest lxc hostsc; do
  for t in cpu mem getppid openclose fork; do
    if [ -f "$W/$e.$t" ]; then printf '%s %s %s\n' $e $t "$(tr '\n' ' ' < "$W/$e.$t")"; fi
  done
  if [ -s "$W/$e.err" ]; then printf '%s failed: %s\n' $e "$(cat "$W/$e.err")"; fi
done > "$OUT/overhead.raw"

med() { if [ -s "$W/$1.$2" ]; then median < "$W/$1.$2"; fi; }
cell() {  # cell ENV TEST: the median, or why there is none
  v=$(med $1 $2)
  if [ -n "$v" ] && [ -s "$W/$1.err" ]; then
    printf '%.0f (%s runs, then failed: %s)' "$v" "$(wc -l < "$W/$1.$2")" "$(tr '|`' "/'" < "$W/$1.err" | cut -c1-120)"
  elif [ -n "$v" ]; then printf '%.0f' "$v"
  elif [ -s "$W/$1.err" ]; then printf 'failed: %s' "$(tr '|`' "/'" < "$W/$1.err" | cut -c1-120)"
  else printf 'no value'; fi
}
ratio() {  # ratio A B TEST: median of A / median of B
  a=$(med $1 $3); b=$(med $2 $3)
  if [ -n "$a" ] && [ -n "$b" ]; then awk -v a="$a" -v b="$b" 'BEGIN {printf "%.3f", a / b}'; else printf -- '-'; fi
}
name() {
  case $1 in
    cpu) echo "sysbench cpu (events/s)";;
    mem) echo "sysbench memory write (MiB/s)";;
    getppid) echo "getppid() (syscalls/s)";;
    openclose) echo "open+close (pairs/s)";;
    fork) echo "fork+wait (forks/s)";;
  esac
}

section "Overhead inside a guest"
cat <<EOF
$(cmdline) (ROUNDS=$ROUNDS): the same workloads on the host, inside a vserver guest
and inside an LXC container, all on the Debian tree of \`bench/prepare\` with
the same binaries: \`sysbench cpu --threads=1 --time=$CPU_S\` (events/s),
\`sysbench memory --threads=1 --time=$MEM_S --memory-block-size=1M --memory-oper=write\`
(MiB/s), and a static C program of this script's (\`bin/ovbench\`) running a
\`getppid()\` loop (syscalls/s), an \`open("/etc/passwd")\`+\`close\` loop (pairs/s)
and a \`fork\`+\`_exit\`+\`waitpid\` loop (forks/s), ${C_S} s each. Host: run directly
(in the \`vserver-bench\` cgroup, no limits). Guest: a skeleton guest whose
\`vdir\` points at the Debian tree, init style \`cmd\` (\`/bin/sleep\`), unprivileged
(user namespace, idmapped tree), \`--flags ~virt_mem\`, each test run with
\`vserver ovg exec\`: the guest's seccomp filter, capability set, namespaces and
cgroups (cpu, cpuacct, cpuset, memory, pids, blkio, cgroup2 with its BPF
programs) are part of what is measured. LXC: \`lxc-start\` of a privileged
container on the same tree (\`lxc.init.cmd = /bin/sleep\`, no seccomp profile,
no user namespace), each test with \`lxc-attach\`. $ROUNDS rounds, the
environments interleaved in a new order each round; medians. Ratio = inside /
host: 1.000 means no overhead, 0.990 means 1 % slower inside (the target is
within 1 %). Raw values: \`out/overhead.raw\`.

| test | host | vserver guest | LXC container | ratio guest/host | ratio LXC/host |
|---|---|---|---|---|---|
EOF
for t in cpu mem getppid openclose fork; do
  printf '| %s | %s | %s | %s | %s | %s |\n' "$(name $t)" "$(cell host $t)" "$(cell guest $t)" \
    "$(cell lxc $t)" "$(ratio guest host $t)" "$(ratio lxc host $t)"
done
cat <<EOF

What seccomp costs by itself: the same C loops on the host under a
one-instruction allow-all seccomp filter (\`ovbench -s\` installs it itself;
interleaved with the runs above). Any filter at all sends every system call
through the kernel's seccomp entry path; the last column compares the guest's
deny list with that minimum.

| test | host, no filter | host, allow-all filter | vserver guest | ratio allow-all/host | ratio guest/allow-all |
|---|---|---|---|---|---|
EOF
for t in getppid openclose fork; do
  printf '| %s | %s | %s | %s | %s | %s |\n' "$(name $t)" "$(cell host $t)" "$(cell hostsc $t)" \
    "$(cell guest $t)" "$(ratio hostsc host $t)" "$(ratio guest hostsc $t)"
done
