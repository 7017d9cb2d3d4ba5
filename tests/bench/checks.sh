# checks.sh: the assertions of the shell tests in tests/bench/, sourced by each. Every check
# prints one line, "ok: ..." or "FAIL: ..." with what was looked for; checks_done exits 1 when
# any failed, saying how many.
fails=0
ok() { echo "ok: $1"; }
bad() {
	echo "FAIL: $1"
	fails=$((fails + 1))
}
# expect DESCRIPTION FILE REGEX: a line of FILE matches REGEX (grep -E).
expect() {
	if grep -Eq -- "$3" "$2" 2>/dev/null; then ok "$1"; else bad "$1 (no /$3/ in $2)"; fi
}
# expect_text DESCRIPTION TEXT REGEX: the same over TEXT.
expect_text() {
	if grep -Eq -- "$3" <<<"$2"; then ok "$1"; else bad "$1: no /$3/ in: $2"; fi
}
# checks_done NAME: the verdict, and the exit status.
checks_done() {
	if ((fails)); then
		echo "$1: $fails check(s) FAILED"
		exit 1
	fi
	echo "$1: all passed"
}
