#!/bin/sh
# bench/start-exit.sh: start-to-exit of /bin/true in a fresh container, for
# vserver and its peers, on the busybox tree ($BB) and the Debian tree ($DEB).
#
# How: bench/timeit.py times each whole command from spawn to reaped exit,
# interleaved (RUNS rounds after WARMUP untimed rounds, default 40 and 3),
# one table per tree, reference = the C floor (bench/floor.c) with a user
# namespace and v1 cgroups. Rows: the C floor (plain, + user ns, + user ns
# and cgroups), unshare + chroot, `vserver NAME run -- /bin/true` (the
# default unprivileged guest, one without virt_mem/lxcfs, one privileged),
# bwrap (with and without a user ns), lxc-execute (privileged; user ns; user
# ns + idmapped rootfs), crun run and runc run (with and without a user ns;
# crun through the nsenter wrapper of lib.sh, and that wrapper alone), and
# systemd-nspawn (with and without private users). Then a table of where
# vserver stands against the targets of issue 6 (<= 1.3 x the C floor,
# <= 0.4 x crun).
#
# The extra vserver guests (se-*) are `build -m skeleton` guests whose vdir
# link is pointed at the shared tree; they are deleted at the end with their
# vdir link taken away first, so that `delete` removes only their own empty
# skeleton tree, never the shared one. LXC's user-namespace containers need
# a subordinate id range for root: a file naming root:300000:65536 is bound
# over /etc/subuid and /etc/subgid in this (private) mount namespace only,
# for the length of this script.
#
# Usage (as root): bench/enter bench/start-exit.sh   (or bench/run-all)
. "$(dirname "$0")/lib.sh"
RUNS=${RUNS:-40}
WARMUP=${WARMUP:-3}
UBASE=300000              # host id base of every peer's user namespace here
SE_GUESTS="se-bbn se-bbp se-debn se-debp"
OCI_IDS="se-bb se-bbu se-deb se-debu"
LXC_NAMES="se-bb se-bbu se-bbi se-deb se-debu se-debi"
SUBID=$BENCH/se-subid
CRUNNS=""
SUBID_BOUND=""

log() { echo "start-exit: $*" >&2; }

. "$(dirname "$0")/guests.sh"

# make_guest NAME TREE BUILD-ARGS...: a skeleton guest running TREE.
make_guest() {
  g=$1; tree=$2; shift 2
  vs_gone "$g"
  "$VS" "$g" build -m skeleton "$@" >&2 || die "vserver $g build failed"
  ln -sfn "$tree" "$VSERVER_ROOT/etc/vservers/$g/vdir"
}

cleanup() {
  set +e
  for g in $SE_GUESTS; do vs_gone "$g"; done
  for id in $OCI_IDS; do
    runc delete -f "$id" >/dev/null 2>&1
    [ -n "$CRUNNS" ] && nsenter -m -t "$CRUNNS" crun delete -f "$id" >/dev/null 2>&1
    rm -rf "${OCI:?}/$id"
    cg_rm "$BENCH_CG/oci/$id"
  done
  for n in $LXC_NAMES; do lxc_gone "$n"; done
  if [ -n "$SUBID_BOUND" ]; then umount /etc/subuid /etc/subgid 2>/dev/null; rm -f "$SUBID"; fi
  rm -f "$OUT"/start-exit-*.json
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The crun wrapper's mount namespace (lib.sh's crun_ns; bench/enter ends it).
CRUNNS=$(crun_ns)

# Subordinate ids for LXC's newuidmap/newgidmap (this mount namespace only).
{ cat /etc/subuid 2>/dev/null; echo "root:$UBASE:65536"; } > "$SUBID"
if mount --bind "$SUBID" /etc/subuid && mount --bind "$SUBID" /etc/subgid; then
  SUBID_BOUND=1
else
  log "could not bind $SUBID over /etc/subuid, /etc/subgid: LXC user-namespace rows will fail"
fi

[ -x "$BB/bin/busybox" ] || die "$BB is missing (bench/prepare)"
[ -x "$DEB/bin/true" ] || die "$DEB is missing (bench/prepare still running?)"
"$VS" bb status >/dev/null 2>&1 && log "warning: guest bb is running; its run row may fail"
"$VS" deb status >/dev/null 2>&1 && log "warning: guest deb is running; its run row may fail"

# table TAG GUEST ROOT: the timeit table of one tree.
table() {
  tag=$1; guest=$2; root=$3
  log "$tag: setting up"
  make_guest "se-${tag}n" "$root" --flags '~virt_mem'
  make_guest "se-${tag}p" "$root" --privileged --flags '~virt_mem'
  lp=$(lxc_conf "se-$tag" "$root")
  lu=$(lxc_conf "se-${tag}u" "$root" "lxc.idmap = u 0 $UBASE 65536" "lxc.idmap = g 0 $UBASE 65536")
  li=$(lxc_conf "se-${tag}i" "$root" "lxc.idmap = u 0 $UBASE 65536" "lxc.idmap = g 0 $UBASE 65536" \
    "lxc.rootfs.options = idmap=container")
  ob=$(oci_bundle "se-$tag" "$root" '["/bin/true"]')
  obu=$(oci_bundle "se-${tag}u" "$root" '["/bin/true"]' 1 "$UBASE")
  # A first run outside the timing: it starts lxcfs in this mount namespace
  # (a one-time cost, not part of a start) if the guest's virt_mem needs it.
  i=0
  until "$VS" "$guest" run -- /bin/true >/dev/null 2>"$OUT/start-exit-prerun.err"; do
    i=$((i + 1))
    log "$tag: vserver $guest run failed (try $i): $(head -c 300 "$OUT/start-exit-prerun.err")"
    [ $i -ge 3 ] && break
    sleep 1
  done
  rm -f "$OUT/start-exit-prerun.err"
  log "$tag: timing ($RUNS rounds)"
  $TIMEIT --runs "$RUNS" --warmup "$WARMUP" --ref floor-U-c --json "$OUT/start-exit-$tag.json" \
    "floor::$FLOOR $root /bin/true" \
    "floor-U::$FLOOR -U $UBASE $root /bin/true" \
    "floor-U-c::$FLOOR -U $UBASE -c $root /bin/true" \
    "unshare+chroot::unshare -m -u -i -n -p -f chroot $root /bin/true" \
    "vserver run (default)::$VS $guest run -- /bin/true" \
    "vserver run (~virt_mem)::$VS se-${tag}n run -- /bin/true" \
    "vserver run (privileged, ~virt_mem)::$VS se-${tag}p run -- /bin/true" \
    "bwrap::bwrap --unshare-all --bind $root / --proc /proc --dev /dev /bin/true" \
    "bwrap (user ns)::bwrap --unshare-all --unshare-user --uid 0 --gid 0 --bind $root / --proc /proc --dev /dev /bin/true" \
    "lxc-execute (privileged)::lxc-execute -n se-$tag -P $LXCPATH -f $lp -- /bin/true" \
    "lxc-execute (user ns)::lxc-execute -n se-${tag}u -P $LXCPATH -f $lu -- /bin/true" \
    "lxc-execute (user ns, idmapped rootfs)::lxc-execute -n se-${tag}i -P $LXCPATH -f $li -- /bin/true" \
    "nsenter wrapper alone::nsenter -m -t $CRUNNS /bin/true" \
    "crun run::nsenter -m -t $CRUNNS crun run -b $ob se-$tag" \
    "crun run (user ns)::nsenter -m -t $CRUNNS crun run -b $obu se-${tag}u" \
    "runc run::runc run -b $ob se-$tag" \
    "runc run (user ns)::runc run -b $obu se-${tag}u" \
    "systemd-nspawn::systemd-nspawn -D $root --register=no --keep-unit -q /bin/true" \
    "systemd-nspawn (private users, idmapped)::systemd-nspawn -D $root --register=no --keep-unit -q --private-users=$UBASE:65536 --private-users-ownership=map /bin/true"
  vs_gone "se-${tag}n"
  vs_gone "se-${tag}p"
}

section "Start to exit: a fresh container running /bin/true"
cat <<EOF
$(cmdline): each command starts a container on the same root tree, runs \`/bin/true\` in it
and returns when everything is torn down; timed from spawn to reaped exit by
\`bench/timeit.py\` ($RUNS interleaved rounds after $WARMUP warm-up rounds, each command checked
once before; a peer that fails has a row with its first error line). Two trees: busybox (\`$BB\`,
the guest \`bb\`) and Debian bookworm minbase (\`$DEB\`, the guest \`deb\`). Ratios are to
\`floor-U-c\`, the C floor (\`bench/floor.c\`: clone of mount, pid, uts, ipc, net and user
namespaces, id maps $UBASE+65536 written by the parent, bind + pivot_root + /proc, exec, with
mkdir/attach/rmdir of v1 memory, cpu and pids cgroups and a memory limit); \`floor\` is the same
without user namespace and cgroups, \`floor-U\` without cgroups. Rows:

- \`vserver run (default)\`: \`vserver bb|deb run -- /bin/true\`, the guests as built (unprivileged:
  user namespace, idmapped root, cgroups in every hierarchy, seccomp, masked /proc, minimal /dev,
  \`virt_mem\` = lxcfs files over /proc). \`(~virt_mem)\`: the same without lxcfs. \`(privileged,
  ~virt_mem)\`: built with \`--privileged\` (no user namespace). These two are \`-m skeleton\`
  guests whose \`vdir\` points at the same tree.
- user-namespace peers map to host ids $UBASE..$((UBASE + 65535)); LXC's \`(user ns)\` sees the tree's
  files as nobody, \`(user ns, idmapped rootfs)\` adds \`lxc.rootfs.options = idmap=container\` (LXC
  needs a root entry in /etc/subuid, /etc/subgid for them: bound over in the script's private mount
  namespace). LXC config: \`lxc_conf\` of bench/lib.sh (no network, proc:mixed, sys:ro, autodev).
- crun works on this hybrid-cgroup host only with /sys/fs/cgroup/unified unmounted, so it runs as
  \`nsenter -m -t PID crun ...\` into a mount namespace without it; \`nsenter wrapper alone\` is
  what that adds. crun and runc bundles: \`oci_bundle\` of bench/lib.sh (read-only root, proc,
  tmpfs /dev, sysfs, masked paths).
- bwrap: \`--unshare-all --bind ROOT / --proc /proc --dev /dev\`, \`(user ns)\` adds \`--unshare-user
  --uid 0 --gid 0\`. systemd-nspawn: \`--register=no --keep-unit -q\` (no systemd or D-Bus to
  register with here); \`(private users, idmapped)\` is what \`-U\` does on a file system with
  idmapped mounts, with a fixed range: \`--private-users=$UBASE:65536 --private-users-ownership=map\`.
EOF
for t in bb deb; do
  if [ $t = bb ]; then g=bb; r=$BB; title="busybox tree"; else g=deb; r=$DEB; title="Debian tree"; fi
  printf '\n### %s\n\n' "$title"
  table "$t" "$g" "$r"
done

printf '\n### Where vserver stands\n\n'
python3 - "$OUT/start-exit-bb.json" "$OUT/start-exit-deb.json" <<'PY'
import json, statistics, sys
print("Targets of issue 6: `vserver run (default)` within 1.3 x `floor-U-c` and within 0.4 x `crun run`. "
      "`crun run, wrapper subtracted` takes the median of `nsenter wrapper alone` off crun's.")
print()
print("| tree | vserver run (default) ms | x floor-U-c (target <= 1.3) | x crun run (target <= 0.4) | x crun run, wrapper subtracted | x crun run (user ns) |")
print("|---|---:|---:|---:|---:|---:|")
for tree, path in zip(["busybox", "Debian"], sys.argv[1:]):
    try:
        t = json.load(open(path))["times_ms"]
    except Exception as e:
        print(f"| {tree} | no data ({e}) | | | | |")
        continue
    m = {k: statistics.median(v) for k, v in t.items() if v}
    vs = m.get("vserver run (default)")
    def ratio(den, target=None):
        if vs is None or den is None or den <= 0:
            return "n/a"
        r = vs / den
        mark = "" if target is None else (" (met)" if r <= target else " (**not met**)")
        return f"{r:.2f}{mark}"
    crun = m.get("crun run")
    wrap = m.get("nsenter wrapper alone")
    crun_nowrap = crun - wrap if crun is not None and wrap is not None else None
    print(f"| {tree} | {'n/a' if vs is None else f'{vs:.2f}'} | {ratio(m.get('floor-U-c'), 1.3)} | "
          f"{ratio(crun, 0.4)} | {ratio(crun_nowrap)} | {ratio(m.get('crun run (user ns)'))} |")
PY
