#!/bin/sh
# bench/net-throughput.sh: TCP throughput host -> host (loopback), host ->
# shared-mode guest (the guest's address on the host's loopback, confined by
# cgroup BPF) and host -> private-mode guest (veth on a bridge), with iperf3:
# `iperf3 -s` is the init of each guest (init style cmd), the client runs on
# the host side. The guests (nts, ntp) are skeleton guests whose vdir link
# points at the Debian tree of bench/prepare (it has iperf3; the host runs
# its own iperf3, the same Debian package). Everything with addresses and
# links happens in a network namespace this script makes (unshare -n): the
# host's network is never touched. ROUNDS rounds (default 3) of T seconds
# (default 3) per path, the paths interleaved; medians.
. "$(dirname "$0")/lib.sh"

ROUNDS=${ROUNDS:-3}
T=${T:-3}
S=nts                 # shared-mode guest
P=ntp                 # private-mode guest
SADDR=10.91.0.2
PADDR=10.92.0.2
BR=vsbench0

log() { echo "net-throughput: $*" >&2; }
cfg() { echo "$VSERVER_ROOT/etc/vservers/$1"; }

# ---------------------------------------------------------------- inner part
# Runs inside the new network namespace: sets it up, starts the servers,
# measures; writes "PATH BITS_PER_SECOND" lines (or "PATH failed: WHY") to
# $W/raw; stops the guests before it returns.
if [ "${1:-}" = --inner ]; then
  W=$2
  HPID=
  inner_done() {
    "$VS" $S stop >/dev/null 2>&1 || true
    "$VS" $P stop >/dev/null 2>&1 || true
    [ -z "$HPID" ] || kill "$HPID" 2>/dev/null || true
  }
  trap inner_done EXIT
  trap 'exit 130' INT TERM HUP
  ip link set lo up
  ip addr add $SADDR/32 dev lo
  ip link add $BR type bridge
  ip addr add 10.92.0.1/24 dev $BR
  ip link set $BR up
  iperf3 -s -B 127.0.0.1 >"$W/host-iperf3.log" 2>&1 &
  HPID=$!
  for g in $S $P; do
    "$VS" $g start >"$W/out" 2>&1 || { printf 'failed: %s\n' "$(grep -m1 . "$W/out")" > "$W/$g.err"; }
  done
  # client PATH ADDR: one measurement
  client() {
    if [ -s "$W/$1.err" ]; then return 0; fi
    i=0
    # wait for the server to listen (the guest's init starts it)
    while :; do
      if iperf3 -c "$2" -t "$T" -J >"$W/out" 2>"$W/stderr"; then
        python3 -c 'import json, sys; print(sys.argv[1], json.load(open(sys.argv[2]))["end"]["sum_received"]["bits_per_second"])' \
          "$1" "$W/out" >> "$W/raw" && return 0
      fi
      i=$((i + 1))
      if [ $i -ge 20 ] || ! grep -q -i "refused\|connect" "$W/out" "$W/stderr"; then
        why=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1])).get("error", ""))' "$W/out" 2>/dev/null || true)
        [ -n "$why" ] || why=$(grep -m1 . "$W/stderr" || echo "iperf3 failed")
        printf 'failed: iperf3 -c %s: %s\n' "$2" "$why" > "$W/$1.err"
        return 0
      fi
      sleep 0.2
    done
  }
  r=1
  while [ $r -le "$ROUNDS" ]; do
    log "round $r/$ROUNDS"
    case $((r % 3)) in
      1) order="host shared private";; 2) order="shared private host";; 0) order="private host shared";;
    esac
    for p in $order; do
      case $p in
        host) client host 127.0.0.1 ;;
        shared) client shared $SADDR ;;
        private) client private $PADDR ;;
      esac
    done
    r=$((r + 1))
  done
  # the guests' errors under the paths' names
  [ ! -s "$W/$S.err" ] || cp "$W/$S.err" "$W/shared.err"
  [ ! -s "$W/$P.err" ] || cp "$W/$P.err" "$W/private.err"
  exit 0
fi

# ---------------------------------------------------------------- outer part
W=$(mktemp -d "$BENCH/nt.XXXXXX")

# guest_gone NAME: stops the guest (from inside the namespace its monitor
# runs in, if that is still alive) and deletes it, after pointing its vdir
# back at its own tree (delete would remove the shared Debian tree).
guest_gone() {
  c=$(cfg "$1")
  [ -d "$c" ] || return 0
  if "$VS" "$1" running 2>/dev/null; then
    m=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["monitor_pid"])' \
      "$VSERVER_ROOT/run/vservers/$1/state.json" 2>/dev/null || true)
    if [ -n "$m" ]; then nsenter -n -t "$m" "$VS" "$1" stop >/dev/null 2>&1 || true; fi
    "$VS" "$1" stop >/dev/null 2>&1 || true
  fi
  ln -sfn "$VSERVER_ROOT/var/lib/vservers/$1" "$c/vdir" || return 0
  "$VS" "$1" delete --force >/dev/null 2>&1 || log "could not delete guest $1"
}
cleanup() {
  guest_gone $S
  guest_gone $P
  rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

[ -x "$DEB/usr/bin/iperf3" ] || die "$DEB has no iperf3: run bench/prepare"
command -v iperf3 >/dev/null || die "host iperf3 missing: run bench/setup"
guest_gone $S   # leftovers of an interrupted run
guest_gone $P

# build NAME ADDR/PREFIX: a skeleton guest on the Debian tree whose init is
# iperf3 -s on its address.
build() {
  "$VS" "$1" build -m skeleton --interface "$2" --flags ~virt_mem >"$W/out" 2>&1 \
    || { printf 'failed: build: %s\n' "$(grep -m1 . "$W/out")" > "$W/$1.err"; return 0; }
  c=$(cfg "$1")
  mkdir -p "$c/apps/init"
  echo cmd > "$c/apps/init/style"
  printf '%s\n' /usr/bin/iperf3 -s -B "${2%/*}" > "$c/apps/init/cmd.start"
  ln -sfn "$DEB" "$c/vdir"
}
log "building guests $S and $P"
build $S $SADDR/32
build $P $PADDR/24
if [ -d "$(cfg $P)" ]; then
  mkdir -p "$(cfg $P)/netns"
  echo $BR > "$(cfg $P)/netns/bridge"
fi

ROUNDS=$ROUNDS T=$T unshare -n "$0" --inner "$W" || log "the measuring part ended with status $?"

# the raw figures, for the record
{ cat "$W/raw" 2>/dev/null; for p in host shared private; do
    [ ! -s "$W/$p.err" ] || printf '%s %s\n' $p "$(cat "$W/$p.err")"; done; } > "$OUT/net-throughput.raw"

gbit() {  # gbit PATH: the median in Gbit/s, or why there is none
  v=$(awk -v p="$1" '$1 == p {print $2}' "$W/raw" 2>/dev/null | median)
  if [ "$v" != nan ]; then awk -v v="$v" 'BEGIN {printf "%.2f", v / 1e9}'
  elif [ -s "$W/$1.err" ]; then tr '|`' "/'" < "$W/$1.err" | cut -c1-160
  else printf 'failed: no result'; fi
}
HOST=$(gbit host)
ratio() {
  v=$(gbit "$1")
  case "$v$HOST" in *[!0-9.]*) printf -- '-' ;; *) awk -v a="$v" -v b="$HOST" 'BEGIN {printf "%.2f", a / b}' ;; esac
}

section "Network throughput"
cat <<EOF
$(cmdline) (ROUNDS=$ROUNDS, T=$T): one TCP stream, \`iperf3 -c ADDR -t $T\` on
the host side, \`iperf3 -s -B ADDR\` as the init of the guest (init style \`cmd\`;
a skeleton guest whose \`vdir\` points at the Debian tree, unprivileged,
\`--flags ~virt_mem\`), all in a network namespace the script makes (\`unshare
-n\`): the shared-mode guest's address $SADDR/32 is on that namespace's
loopback (no device; the guest is confined to it by cgroup BPF, whose packet
counters run too), the private-mode guest ($PADDR/24, \`netns/bridge\`) is
reached through the bridge $BR and its veth. Host -> host is the same iperf3
pair on 127.0.0.1. $ROUNDS rounds, the paths interleaved; medians of the
receiver's rate (iperf3's \`sum_received\`). On this 2-CPU machine sender and
receiver share the CPUs, so the figures are CPU-bound; the ratio is what
matters. Raw values: \`out/net-throughput.raw\`.

| path | Gbit/s | ratio to host -> host |
|---|---|---|
| host -> host (loopback) | $HOST | $(ratio host) |
| host -> shared-mode guest (loopback, BPF confined) | $(gbit shared) | $(ratio shared) |
| host -> private-mode guest (veth + bridge) | $(gbit private) | $(ratio private) |
EOF
