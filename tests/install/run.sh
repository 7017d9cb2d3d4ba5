#!/usr/bin/env bash
# run.sh: swarm as a user installs it and builds against it (docs/install.md), ctest's
# install_package.
#
#   tests/install/run.sh BUILD_DIR VERSION LIBDIR [SANITIZE]
#
# VERSION is project(swarm VERSION) and LIBDIR is CMAKE_INSTALL_LIBDIR, both as the build
# was configured, and SANITIZE is 1 for a -DSWARM_SANITIZE=ON build (tests/CMakeLists.txt
# passes them). In a sanitizer build libswarm also needs the sanitizers' runtimes, and the
# outside clients are built with the same -fsanitize flags, since ASan must be loaded first.
# 1. `cmake --install BUILD_DIR --prefix TMP/prefix` into a fresh temporary prefix.
# 2. libswarm: its soname is libswarm.so.<SWARM_ABI_VERSION>, with the links beside it, it
#    needs only libc, and it exports swarm_* symbols only, swarm_version among them.
# 3. Every installed program prints one --version line "NAME VERSION (abi N, cuda yes|no)",
#    names --version in its --help, and runs with LD_LIBRARY_PATH unset, libswarm resolved
#    from the prefix (ldd); the man pages swarmd(8) and swarm(1), swarm.pc, the CMake package,
#    the headers, the docs and the scripts the programs run are there, and the installed
#    `swarm import onnx` runs the importer from PREFIX/share/swarm.
# 4. An outside client (tests/install/client/) is built twice, with find_package(swarm) and
#    with a Makefile over pkg-config, and both run against a swarmd started from the prefix
#    on a private socket, on a registry made by the installed `swarm registry init`.
#
# The last line is "N passed, N failed"; the exit status is non-zero on any failure. swarmd is
# stopped and the temporary folder removed on every exit.
set -euo pipefail

HERE=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BUILD_DIR=$(readlink -f "${1:?usage: run.sh BUILD_DIR VERSION LIBDIR}")
VERSION=${2:?usage: run.sh BUILD_DIR VERSION LIBDIR}
LIBDIR=${3:?usage: run.sh BUILD_DIR VERSION LIBDIR}
SANITIZE=${4:-0}
ABI=$(sed -n 's/^#define SWARM_ABI_VERSION \([0-9]*\)u\{0,1\}$/\1/p' "$ROOT/include/swarm/swarm.h")

# shellcheck source=../lib/check.sh
. "$ROOT/tests/lib/check.sh"
die() {
	echo "install: $*" >&2
	echo "$passed passed, $((failed + 1)) failed"
	exit 1
}
# show FILE: a file's lines, indented, under a failure.
show() { sed 's/^/        | /' "$1"; }

TMP=$(readlink -f "$(mktemp -d "${TMPDIR:-/tmp}/swarm-install.XXXXXX")")
PREFIX=$TMP/prefix
# tests/lib/serve.sh starts $BUILD/bin/swarmd: the installed one.
BUILD=$PREFIX
# shellcheck source=tests/lib/serve.sh
. "$ROOT/tests/lib/serve.sh"
trap serve_cleanup EXIT
trap 'exit 130' INT TERM
# Nothing here may find libswarm through the environment.
unset LD_LIBRARY_PATH SWARM_SOCKET SWARM_REGISTRY PKG_CONFIG_PATH
[[ -n $ABI ]] || die "no SWARM_ABI_VERSION in $ROOT/include/swarm/swarm.h"

# ---- 1. install -----------------------------------------------------------------------------
echo "install: cmake --install $BUILD_DIR --prefix $PREFIX"
cmake --install "$BUILD_DIR" --prefix "$PREFIX" >"$TMP/install.log" 2>&1 ||
	{ show "$TMP/install.log"; die "cmake --install failed"; }
ok "cmake --install into a temporary prefix"
LIB=$PREFIX/$LIBDIR

# ---- 2. libswarm ----------------------------------------------------------------------------
echo "install: libswarm"
real=$LIB/libswarm.so.$VERSION
if [[ -f $real && -L $LIB/libswarm.so.$ABI && -L $LIB/libswarm.so &&
	$(readlink -f "$LIB/libswarm.so") == "$real" ]]; then
	ok "libswarm.so.$VERSION with the links libswarm.so.$ABI and libswarm.so"
else
	bad "libswarm's files in $LIB are not libswarm.so.$VERSION and its two links"
	ls -l "$LIB" | sed 's/^/        | /'
fi
soname=$(readelf -d "$real" 2>/dev/null | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
if [[ $soname == "libswarm.so.$ABI" ]]; then
	ok "soname $soname (the client ABI, SWARM_ABI_VERSION)"
else
	bad "soname '$soname', expected libswarm.so.$ABI"
fi
# glibc's dynamic loader (ld-linux) comes with libc: libswarm's thread-local error text
# needs its __tls_get_addr.
glibc='libc\.so\.6|ld-linux[-a-z0-9_.]*\.so\.[0-9]+'
[[ $SANITIZE == 1 ]] && glibc+='|lib(asan|ubsan|m|dl|rt|pthread|gcc_s)\.so\.[0-9]+'
needed=$(readelf -d "$real" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' |
	{ grep -vxE "$glibc" || true; } | tr '\n' ' ')
if [[ -z $needed ]]; then
	ok "libswarm needs only glibc (libc.so.6, ld-linux$([[ $SANITIZE == 1 ]] && echo ", and the sanitizers' runtimes"))"
else
	bad "libswarm needs more than glibc: $needed"
fi
exported=$(nm -D --defined-only "$real" | awk '$2 ~ /^[TDBR]$/ {print $3}')
foreign=$(grep -v '^swarm_' <<<"$exported" || true)
if [[ -z $foreign ]] && grep -qx swarm_version <<<"$exported"; then
	ok "libswarm exports $(wc -l <<<"$exported") swarm_* symbols, swarm_version among them"
else
	bad "libswarm's exports: swarm_version $(grep -cx swarm_version <<<"$exported") time(s); not swarm_*: ${foreign//$'\n'/ }"
fi

# ---- 3. programs, man pages, pkg-config, CMake package, files -------------------------------
echo "install: programs"
programs=(swarmd swarm-worker swarm swarm-sim swarm-bench)
[[ -x $BUILD_DIR/bin/swarm-gpu-bench ]] && programs+=(swarm-gpu-bench)
for p in "${programs[@]}"; do
	exe=$PREFIX/bin/$p
	if [[ ! -x $exe ]]; then
		bad "$p is not installed in $PREFIX/bin"
		continue
	fi
	out=$(env -u LD_LIBRARY_PATH "$exe" --version 2>&1) && rc=0 || rc=$?
	if [[ $rc == 0 && $out =~ ^$p\ ${VERSION//./\\.}\ \(abi\ $ABI,\ cuda\ (yes|no)\)$ ]]; then
		ok "$p --version: $out"
	else
		bad "$p --version exit $rc, printed: $out"
	fi
	if "$exe" --help 2>&1 | grep -q -- '--version'; then
		ok "$p --help names --version"
	else
		bad "$p --help does not name --version"
	fi
	ldd "$exe" >"$TMP/ldd" 2>&1 || true
	if grep -q 'not found' "$TMP/ldd"; then
		bad "$p: a library is not found with LD_LIBRARY_PATH unset"
		show "$TMP/ldd"
	elif grep -q libswarm "$TMP/ldd"; then
		got=$(sed -n 's/.*libswarm\.so[^ ]* => \([^ ]*\) .*/\1/p' "$TMP/ldd")
		if [[ -n $got && $(readlink -f "$got") == "$real" ]]; then
			ok "$p loads the prefix's libswarm (RPATH), no LD_LIBRARY_PATH"
		else
			bad "$p loads libswarm from '$got', not $LIB"
			show "$TMP/ldd"
		fi
	fi
done

echo "install: man pages, headers, pkg-config, CMake package, docs, scripts"
for page in man8/swarmd.8 man1/swarm.1; do
	f=$PREFIX/share/man/$page
	name=$(basename "$page")
	if [[ -f $f ]] && grep -q '^\.TH' "$f" && grep -q 'version' "$f" && grep -q 'socket' "$f"; then
		ok "man page $name (from --help)"
	else
		bad "man page $f missing or without its --help text (is help2man installed?)"
	fi
	if ! command -v man >/dev/null 2>&1; then
		echo "  note  no man command (man-db): $name's rendering not checked"
	else
		if MANWIDTH=80 man -l "$f" 2>"$TMP/man.err" | grep -q -- '--version'; then
			ok "man -l $name renders, --version in it"
		else
			bad "man -l $name does not render"
			show "$TMP/man.err"
		fi
	fi
done
for f in include/swarm/swarm.h include/swarm/swarm_backend.h "$LIBDIR/pkgconfig/swarm.pc" \
	"$LIBDIR/cmake/swarm/swarmConfig.cmake" "$LIBDIR/cmake/swarm/swarmConfigVersion.cmake" \
	"$LIBDIR/cmake/swarm/swarmTargets.cmake" share/doc/swarm/README.md \
	share/doc/swarm/install.md share/swarm/import-onnx.py share/swarm/onnx_ops.py \
	share/swarm/ort_runner.py; do
	[[ -f $PREFIX/$f ]] && ok "installed $f" || bad "not installed: $f"
done
export PKG_CONFIG_PATH=$LIB/pkgconfig
pcver=$(pkg-config --modversion swarm 2>&1) || true
pcinc=$(pkg-config --variable=includedir swarm 2>&1) || true
if [[ $pcver == "$VERSION" && $(readlink -f "$pcinc") == "$PREFIX/include" ]]; then
	ok "pkg-config: swarm $pcver, includedir resolves to the prefix wherever it is"
else
	bad "pkg-config: version '$pcver' (expected $VERSION), includedir '$pcinc'"
fi

# The installed swarm runs the installed importer: a stand-in interpreter says what it got.
printf '#!/bin/sh\necho "importer: $1"\n' >"$TMP/fake-python"
chmod +x "$TMP/fake-python"
got=$(PYTHON=$TMP/fake-python "$PREFIX/bin/swarm" import onnx m.onnx --name m --check 2>&1) || true
if [[ $got == importer:\ * && $(readlink -f "${got#importer: }") == "$PREFIX/share/swarm/import-onnx.py" ]]; then
	ok "swarm import onnx runs PREFIX/share/swarm/import-onnx.py"
else
	bad "swarm import onnx ran: $got"
fi

# ---- 4. an outside client, built two ways, against the installed swarmd -----------------------
echo "install: an outside client against the installed swarm"
"$PREFIX/bin/swarm" registry --registry "$TMP/registry" init >"$TMP/init.log" 2>&1 ||
	{ show "$TMP/init.log"; die "the installed swarm registry init failed"; }
serve_start "$TMP/registry" --devices cpu:1
ok "the installed swarmd serves on $TMP/swarmd.sock"

# check_client HOW EXE: the built client runs against swarmd and loads the prefix's libswarm.
check_client()
{
	local how=$1 exe=$2 lib
	lib=$(ldd "$exe" | sed -n 's/.*libswarm\.so[^ ]* => \([^ ]*\) .*/\1/p')
	if [[ $(readlink -f "$lib") != "$real" ]]; then
		bad "$how client loads libswarm from '$lib', not the prefix"
		return
	fi
	if "$exe" "$TMP/swarmd.sock" "$VERSION" >"$TMP/client.log" 2>&1; then
		ok "$how client: $(tail -1 "$TMP/client.log")"
	else
		bad "$how client failed"
		show "$TMP/client.log"
	fi
}

cp -r "$HERE/client" "$TMP/client"
if [[ $SANITIZE == 1 ]]; then
	# Read by CMake's first configure and by the Makefile's +=.
	export CFLAGS="-fsanitize=address,undefined" LDFLAGS="-fsanitize=address,undefined"
fi
if cmake -S "$TMP/client" -B "$TMP/client-cmake" -DCMAKE_PREFIX_PATH="$PREFIX" \
	>"$TMP/client-cmake.log" 2>&1 && cmake --build "$TMP/client-cmake" >>"$TMP/client-cmake.log" 2>&1; then
	if grep -q "from $LIB/cmake/swarm" "$TMP/client-cmake.log"; then
		ok "find_package(swarm) found the prefix's package"
	else
		bad "find_package(swarm) found another swarm"
		show "$TMP/client-cmake.log"
	fi
	check_client "CMake (find_package, swarm::swarm)" "$TMP/client-cmake/outside-client"
else
	bad "the CMake client does not build"
	show "$TMP/client-cmake.log"
fi
# SameMinorVersion: another minor version, older or newer, or major version is refused.
major=${VERSION%%.*}
minor=${VERSION#*.}
minor=${minor%%.*}
wants=("$major.$((minor + 1))" "$((major + 1)).$minor")
((minor == 0)) || wants+=("$major.$((minor - 1))")
for want in "${wants[@]}"; do
	if cmake -S "$TMP/client" -B "$TMP/client-want" -DCMAKE_PREFIX_PATH="$PREFIX" \
		-DWANT_SWARM="$want" >"$TMP/want.log" 2>&1; then
		bad "find_package(swarm $want) accepted swarm $VERSION"
	elif grep -q "version: $VERSION" "$TMP/want.log"; then
		ok "find_package(swarm $want) refuses swarm $VERSION"
	else
		bad "find_package(swarm $want) failed for another reason"
		show "$TMP/want.log"
	fi
	rm -rf "$TMP/client-want"
done
if make -C "$TMP/client" >"$TMP/client-make.log" 2>&1; then
	check_client "make (pkg-config)" "$TMP/client/outside-client"
else
	bad "the pkg-config client does not build"
	show "$TMP/client-make.log"
fi
serve_stop

echo "$passed passed, $failed failed"
((failed == 0))
