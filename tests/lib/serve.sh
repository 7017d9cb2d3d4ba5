# serve.sh: sourced by the end-to-end test scripts that serve a real model (tests/minilm,
# tests/onnx). It needs BUILD and TMP set, and a die function; it owns SWARMD_PID.
#
#   serve_start REGISTRY [SWARMD ARGS...]   starts BUILD/bin/swarmd on TMP/swarmd.sock in a
#                                           session of its own; waits for event=ready
#   serve_stop                              SIGTERM, then the whole process group SIGKILL'd
#   serve_cleanup                           the EXIT trap: serve_stop, then TMP removed
SWARMD_PID=""
SERVE_READY_TIMEOUT_S=${SERVE_READY_TIMEOUT_S:-30}

serve_start()
{
	local registry=$1
	shift
	setsid "$BUILD/bin/swarmd" --registry "$registry" --socket "$TMP/swarmd.sock" "$@" \
		>"$TMP/swarmd.log" 2>&1 &
	SWARMD_PID=$!
	local i
	for ((i = 0; i < SERVE_READY_TIMEOUT_S * 10; i++)); do
		grep -q 'event=ready' "$TMP/swarmd.log" && return 0
		kill -0 "$SWARMD_PID" 2>/dev/null || break
		sleep 0.1
	done
	sed 's/^/  | /' "$TMP/swarmd.log" >&2
	die "swarmd did not say event=ready within ${SERVE_READY_TIMEOUT_S} s"
}

serve_stop()
{
	[[ -n $SWARMD_PID ]] || return 0
	kill -TERM "$SWARMD_PID" 2>/dev/null || true
	local i
	for ((i = 0; i < 50; i++)); do
		kill -0 "$SWARMD_PID" 2>/dev/null || break
		sleep 0.1
	done
	# swarmd runs in a session of its own: its workers share its process group.
	kill -KILL -- "-$SWARMD_PID" 2>/dev/null || true
	wait "$SWARMD_PID" 2>/dev/null || true
	SWARMD_PID=""
}

serve_cleanup()
{
	trap - EXIT INT TERM
	serve_stop
	[[ -z $TMP ]] || rm -rf -- "$TMP"
}
