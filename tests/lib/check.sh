# check.sh: sourced by the test scripts that report one line per check and a count at the end
# (tests/install, tests/onnx). ok and bad print a check's line and count it; the script ends
# with `echo "$passed passed, $failed failed"` and fails when failed is not 0.
passed=0
failed=0
ok() {
	echo "  ok    $*"
	passed=$((passed + 1))
}
bad() {
	echo "  FAIL  $*"
	failed=$((failed + 1))
}
