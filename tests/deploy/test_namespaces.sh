#!/usr/bin/env bash
# test_namespaces.sh: proves docs/deploy.md's claim without a container engine: a client in
# another container needs only swarmd's socket directory mounted, not --ipc=host, because a
# session's segment is a memfd and its doorbells eventfds, all passed over the unix socket
# (SCM_RIGHTS), and futexes on a shared mapping need no shared IPC namespace.
#
# swarmd runs as a container would run it: in PID, IPC, network, UTS and mount namespaces of
# its own (pid 1 there, its workers beside it). The client runs in another set (ns_view.sh
# builds its view: fresh tmpfs over /run, /tmp, /dev/shm, /var/tmp, only the socket directory
# bind-mounted back). The test checks the client's output values (y = 2x + 1 on the built-in
# affine model), that its slots are mapped from a memfd, and, as negative controls, that the
# host's SysV segment, POSIX shm object, a marker file beside the socket directory and
# swarmd's processes are all invisible from the client's side.
#
# usage: test_namespaces.sh MODE BUILD_DIR NS_CLIENT
#   MODE root:   the client runs as root (CI's case). Needs root, else skipped (77).
#   MODE userns: the client runs as uid 65534 in a user namespace of its own (unshare --user
#                --map-root-user, rootless podman's case); swarmd allows that uid only, and a
#                second client as uid 65533 must be refused by uid: swarmd sees host uids
#                through SO_PEERCRED, not the 0 the clients have inside. Needs root to pick
#                the uids, and user namespaces, else skipped (77).
set -euo pipefail

MODE=${1:?mode}
BUILD=${2:?build dir}
CLIENT=${3:?ns_client path}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
NAME="deploy_namespaces($MODE)"
REQUESTS=3
ROWS=2           # ns_client's rows per request
ROW_FLOATS=16    # the built-in affine model's input row: f32 [-1, 16]

die() {
	echo "$NAME: FAIL: $*" >&2
	exit 1
}
skip() {
	echo "$NAME: SKIP: $*"
	exit 77
}

[[ $MODE == root || $MODE == userns ]] || die "mode is root or userns, not '$MODE'"
((EUID == 0)) || skip "needs root (mount namespaces, and setpriv for the userns mode's uids)"
for tool in unshare setpriv ipcmk ipcs ipcrm; do
	command -v "$tool" >/dev/null || die "$tool is missing (util-linux; tools/install-deps.sh)"
done
[[ -x $BUILD/bin/swarmd && -x $CLIENT ]] || die "no $BUILD/bin/swarmd or $CLIENT: build first"
# Root may still be refused namespaces (a container without CAP_SYS_ADMIN, a seccomp or
# AppArmor profile): that is this machine's limit, not swarm's, and is said as a skip.
if ! out=$(unshare --ipc --mount --pid --net --uts --fork --mount-proc \
	sh -c 'mount -t tmpfs swarm-ns-probe /tmp' 2>&1); then
	skip "this machine refuses new namespaces or a tmpfs in them even to root: $out"
fi
if [[ $MODE == userns ]] &&
	! out=$(setpriv --reuid=65534 --regid=65534 --clear-groups \
		unshare --user --map-root-user true 2>&1); then
	skip "this kernel or sandbox refuses unprivileged user namespaces: $out"
fi

# Under /tmp by choice: ns_view.sh hides /tmp, so the marker beside the socket directory
# must be there for the negative control to mean something.
WORK=$(mktemp -d /tmp/swarm-deploy-ns.XXXXXX)
SWARMD_PID=""
SHMID=""
POSIX_SHM="swarm-deploy-ns.$$"

cleanup() {
	trap - EXIT INT TERM
	if [[ -n $SWARMD_PID ]]; then
		# The group: unshare (which ignores SIGTERM while it waits), swarmd, its workers.
		kill -TERM -- "-$SWARMD_PID" 2>/dev/null || true
		for ((i = 0; i < 50; i++)); do
			kill -0 "$SWARMD_PID" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL -- "-$SWARMD_PID" 2>/dev/null || true
		wait "$SWARMD_PID" 2>/dev/null || true
	fi
	[[ -z $SHMID ]] || ipcrm -m "$SHMID" 2>/dev/null || true
	rm -f "/dev/shm/$POSIX_SHM"
	rm -rf -- "$WORK"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

print_log() {
	echo "--- swarmd's log:" >&2
	sed 's/^/  | /' "$WORK/swarmd.log" >&2 || true
}

# ---- the host side: the socket directory, the client's binaries, the negative controls ----
mkdir "$WORK/sock" "$WORK/bin" "$WORK/home"
# Passable (and the socket directory listable) for the unprivileged clients of the userns mode.
chmod 0711 "$WORK"
chmod 0755 "$WORK/sock"
cp "$CLIENT" "$WORK/bin/ns_client"
cp "$HERE/ns_view.sh" "$WORK/bin/ns_view.sh"
cp -P "$BUILD"/lib/libswarm.so* "$WORK/bin/"
chmod -R a+rX "$WORK/bin"
echo "not for the client's eyes" >"$WORK/marker"
SHMID=$(ipcmk -M 4096 | awk '{ print $NF }')
[[ $SHMID =~ ^[0-9]+$ ]] || die "ipcmk gave no segment id ('$SHMID')"
ipcs -m | awk -v id="$SHMID" '$2 == id { f = 1 } END { exit !f }' ||
	die "the host's own SysV segment $SHMID is not in its ipcs (the control is broken)"
echo "host" >"/dev/shm/$POSIX_SHM"

# ---- swarmd in namespaces of its own, as in a container -----------------------------------
# --spin-us 0: the worker sleeps as soon as it is idle, so that every request crosses the
# boundary through the eventfd doorbell (and its completion through the futex).
swarmd_args=(--socket "$WORK/sock/swarmd.sock" --devices cpu:1 --spin-us 0)
[[ $MODE == userns ]] && swarmd_args+=(--allow-user 65534)
# No registry: XDG_DATA_HOME points at nothing, so only the built-in models are served
# whatever this machine's user has under ~/.local/share. Should this script be killed past
# its trap (ctest's timeout), --pdeathsig kills unshare, --kill-child then swarmd, the pid 1
# of its namespace, and the kernel the rest of that namespace: nothing outlives the test.
env -u SWARM_REGISTRY -u SWARM_SOCKET -u XDG_RUNTIME_DIR HOME="$WORK/home" \
	XDG_DATA_HOME="$WORK/no-data" \
	setsid setpriv --pdeathsig KILL \
	unshare --pid --ipc --net --uts --mount --mount-proc --fork --kill-child \
	"$BUILD/bin/swarmd" "${swarmd_args[@]}" >"$WORK/swarmd.log" 2>&1 &
SWARMD_PID=$!
for ((i = 0; i < 300; i++)); do
	grep -q 'event=ready' "$WORK/swarmd.log" && break
	kill -0 "$SWARMD_PID" 2>/dev/null || {
		print_log
		die "swarmd exited before event=ready"
	}
	sleep 0.1
done
grep -q 'event=ready' "$WORK/swarmd.log" || {
	print_log
	die "swarmd did not say event=ready within 30 s"
}
[[ -S $WORK/sock/swarmd.sock ]] || die "no socket at $WORK/sock/swarmd.sock"

# ---- the client in namespaces of its own ----------------------------------------------------
run_client() { # UID: the client's output on stdout, its status returned
	local as=()
	if [[ $MODE == userns ]]; then
		as=(setpriv --reuid="$1" --regid="$1" --clear-groups unshare --user --map-root-user)
	fi
	"${as[@]}" unshare --ipc --mount --pid --net --uts --fork --mount-proc \
		bash "$WORK/bin/ns_view.sh" "$WORK/sock" "$WORK/bin" "$WORK/marker" "$SHMID" \
		"$POSIX_SHM" "$REQUESTS" 2>&1
}

client_uid=0
[[ $MODE == userns ]] && client_uid=65534
status=0
out=$(run_client "$client_uid") || status=$?
echo "--- the client's view and output:"
echo "$out" | grep -v '^value ' || true
echo "($(echo "$out" | grep -c '^value ') value lines)"
((status == 0)) || {
	print_log
	die "the client exited $status"
}

expect_view() { # KEY VALUE
	grep -qxF "view $1=$2" <<<"$out" ||
		die "the client's view has no '$1=$2' (got: $(echo "$out" | grep "^view $1=" || echo none))"
}
# In the userns mode the client is root inside its namespace although the host knows it as
# 65534: what swarmd's credential check saw is shown by the refusal further down.
expect_view uid 0
expect_view marker absent
expect_view posix_shm absent
expect_view sysv_shm absent
expect_view sysv_shm_count 0
expect_view swarm_processes 0
expect_view net_links 1 # lo only: no TCP path to swarmd, no shared abstract sockets
expect_view sockdir "swarmd.sock "
expect_view tmp_entries 0

# The slot the client wrote into is a memfd swarmd passed over the socket, not a file.
seg=$(echo "$out" | sed -n 's/^segment //p')
[[ $seg == /memfd:swarm-session* ]] ||
	die "the client's slot is mapped from '$seg', not the memfd /memfd:swarm-session"

# Every value: y = 2x + 1 exactly (the inputs are quarters, exact in f32).
want=$((REQUESTS * ROWS * ROW_FLOATS))
echo "$out" | awk -v want="$want" '
	/^value / {
		n++
		split($0, kv, /[ =]/)  # value req R i I x X y Y
		x = kv[7] + 0; y = kv[9] + 0
		if (y != 2 * x + 1) { printf "wrong: %s (want y=%.9g)\n", $0, 2 * x + 1; bad++ }
		if (x != kv[5] / 4 - 8 + kv[3]) { printf "input not what was sent: %s\n", $0; bad++ }
	}
	END {
		if (n != want) { printf "%d value lines, want %d\n", n, want; exit 1 }
		exit bad > 0
	}' >&2 || die "the client's outputs are not y = 2x + 1 for the inputs it sent"
grep -qx "served $REQUESTS" <<<"$out" || die "the client did not report $REQUESTS served"
grep -q 'event=session_open .*model=affine' "$WORK/swarmd.log" || {
	print_log
	die "swarmd's log has no session_open for affine"
}

if [[ $MODE == userns ]]; then
	# Root inside its user namespace, 65533 on the host: swarmd must refuse it by that uid.
	status=0
	out=$(run_client 65533) || status=$?
	((status != 0)) || die "a client of uid 65533 was served; swarmd allows 65534 only"
	grep -q "user 65533 is not allowed" <<<"$out" || {
		echo "$out" >&2
		die "the refusal does not name the host uid 65533"
	}
	echo "$NAME: uid 65533 (root in its namespace) refused by its host uid, as it must be"
fi

echo "$NAME: PASS: $want values of y = 2x + 1 through a memfd segment, the client in its own" \
	"IPC, mount, PID, network and UTS namespaces with only the socket directory shared"
