# Shared by the bench scripts that make guests and containers (sourced
# after bench/lib.sh): stopping and deleting them without ever touching the
# shared trees, LXC containers on the busybox tree, leftover cgroups.
ME=$(basename "$0" .sh)
E=$VSERVER_ROOT/etc/vservers
V=$VSERVER_ROOT/var/lib/vservers
LXCFS_DIR=$V/.lxcfs


# vs_gone NAME: stops and deletes one of this script's guests. A vdir that
# is not the guest's own tree (a link to a shared tree) is unlinked first,
# so that `delete` can never remove $BB or $DEB.
vs_gone() {
  [ -d "$E/$1" ] || return 0
  "$VS" "$1" stop >/dev/null 2>&1 || true
  if [ -L "$E/$1/vdir" ] && [ "$(readlink "$E/$1/vdir")" != "$V/$1" ]; then
    rm -f "$E/$1/vdir"
  fi
  for t in "$BB" "$DEB"; do
    if [ "$(readlink -f "$E/$1/vdir" 2>/dev/null || echo "$V/$1")" = "$(readlink -f "$t")" ]; then
      echo "$ME: refusing to delete $1: its vdir is $t" >&2; return 1
    fi
  done
  "$VS" "$1" delete --force >/dev/null 2>&1 || echo "$ME: delete $1 failed" >&2
}

# drop_all: stops and removes every container in $LXCS and guest in
# $GUESTS (at the start, leftovers of an interrupted run; at the end, the
# script's own). The lxcfs their guests started goes with bench/enter.
drop_all() {
  for n in $LXCS; do lxc_gone "$n"; done
  for g in $GUESTS; do vs_gone "$g"; done
}

# cg_rm PATH: removes PATH (relative to each hierarchy) depth-first in
# every cgroup hierarchy; only empty cgroups go.
cg_rm() {
  for h in /sys/fs/cgroup/*/; do
    [ -d "$h$1" ] && find "$h$1" -depth -type d -exec rmdir {} + 2>/dev/null
  done
  return 0
}

# lxc_gone NAME: kills and removes one of this script's LXC containers.
lxc_gone() {
  [ -d "$LXCPATH/$1" ] || return 0
  lxc-stop -P "$LXCPATH" -n "$1" -k >/dev/null 2>&1 || true
  rm -rf "${LXCPATH:?}/$1"
  cg_rm "$BENCH_CG/lxc/$1"
}

# lxc_bb NAME [LINES...]: a container on the shared busybox tree booting
# busybox init, with its own /etc (a copy of $BB/etc plus an inittab that
# runs rc 3 at boot and rc 0 at shutdown) bound over the tree's.
lxc_bb() {
  n=$1; shift
  lxc_conf "$n" "$BB" "lxc.init.cmd = /sbin/init" "lxc.signal.halt = SIGUSR2" \
    "lxc.mount.entry = $LXCPATH/$n/etc etc none bind 0 0" "$@" >/dev/null
  cp -a "$BB/etc" "$LXCPATH/$n/etc"
  printf '::sysinit:/etc/init.d/rc 3\n::shutdown:/etc/init.d/rc 0\n' > "$LXCPATH/$n/etc/inittab"
}

# bench_begin: call once the script's own cleanup() exists: runs it on exit
# (and exits on an interrupt), drops what an earlier run left, and checks
# that bench/prepare made the shared busybox tree.
bench_begin() {
  trap cleanup EXIT
  trap 'exit 130' INT TERM
  drop_all
  [ -x "$BB/bin/busybox" ] || die "no busybox tree at $BB: run bench/prepare"
}

# bb_guests CTX NAME...: skeleton guests with contexts CTX, CTX+1, ...
# whose vdir is a link to the shared busybox tree.
bb_guests() {
  ctx=$1
  shift
  for g in "$@"; do
    "$VS" "$g" build -m skeleton --context "$ctx" >/dev/null 2>"$TMP/err" || die "build $g: $(head -1 "$TMP/err")"
    rm -rf "${V:?}/$g"
    ln -sfn "$BB" "$E/$g/vdir"
    ctx=$((ctx + 1))
  done
}
