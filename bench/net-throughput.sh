#!/bin/sh
# TCP throughput host -> host, host -> shared-mode guest, host -> private-mode
# guest (veth + bridge), in a network namespace of its own (nothing of the
# host's network is touched). Prints MB/s and the ratios to host -> host.
# Usage: bench/net-throughput.sh [MiB]   (as root, after cargo build --release)
set -eu
cd "$(dirname "$0")/.."
MIB=${1:-2000}
VS="$PWD/target/release/vserver"
[ -x "$VS" ] || { echo "build first: cargo build --release" >&2; exit 1; }
export VS MIB
export VSERVER_ROOT=$(mktemp -d /var/tmp/vserver-bench.XXXXXX)
trap 'for g in bshared bpriv; do $VS $g stop >/dev/null 2>&1; $VS $g delete --force >/dev/null 2>&1; done; rm -rf "$VSERVER_ROOT"' EXIT
$VS bshared build -m busybox --context 4801 --interface 10.91.0.2/32 --flags ~virt_mem >/dev/null
$VS bpriv build -m busybox --context 4802 --interface 10.92.0.2/24 --flags ~virt_mem >/dev/null
mkdir -p "$VSERVER_ROOT/etc/vservers/bpriv/netns"
echo vsbench0 > "$VSERVER_ROOT/etc/vservers/bpriv/netns/bridge"
unshare -n sh -eu -c '
ip link set lo up
ip link add vsbench0 type bridge; ip addr add 10.92.0.1/24 dev vsbench0; ip link set vsbench0 up
ip addr add 10.91.0.2/32 dev lo
send() { python3 -c "
import socket, sys, time
mib = int(sys.argv[2])
s = socket.create_connection((sys.argv[1], 5001))
buf = bytes(1 << 20)
t = time.time()
for _ in range(mib):
    s.sendall(buf)
s.shutdown(socket.SHUT_WR)
s.recv(1)
print(round(mib / (time.time() - t)))
" "$1" "$MIB"
}
busybox nc -l -p 5001 >/dev/null & sleep 0.3
HOST=$(send 127.0.0.1)
$VS bshared start; $VS bshared exec sh -c "nc -l -p 5001 >/dev/null &"; sleep 0.3
SHARED=$(send 10.91.0.2)
$VS bpriv start; $VS bpriv exec sh -c "nc -l -p 5001 >/dev/null &"; sleep 0.3
PRIV=$(send 10.92.0.2)
$VS bshared stop; $VS bpriv stop
echo
echo "## Network throughput"
echo
echo "\`bench/net-throughput.sh $MIB\`: $MIB MiB per path over one TCP stream, a Python sender on the"
echo "host, busybox \`nc\` receiving in the guest, everything in a network namespace of its own."
echo
echo "| path | MB/s | ratio to host->host |"
echo "|---|---|---|"
echo "| host -> host (loopback) | $HOST | 1.00 |"
echo "| host -> shared-mode guest (loopback, BPF confined) | $SHARED | $(python3 -c "print(f\"{$SHARED/$HOST:.2f}\")") |"
echo "| host -> private-mode guest (veth + bridge) | $PRIV | $(python3 -c "print(f\"{$PRIV/$HOST:.2f}\")") |"
'
