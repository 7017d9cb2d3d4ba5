#!/usr/bin/env bash
# client_only.sh: -DSWARM_CLIENT_ONLY=ON configures, builds and installs libswarm with nothing
# but a C compiler and libc (docs/install.md), ctest's client_only_build.
#
#   tests/install/client_only.sh SOURCE_DIR WORK_DIR
#
# pkg-config is hidden (PKG_CONFIG=/bin/false, and CMake's PkgConfig module disabled, so that
# any pkg_check_modules would be an error), then the configure must have looked up none of
# the full build's dependencies, libswarm.so must need libc alone, and the install must hold
# libswarm, its headers, swarm.pc and the CMake package, and no program. WORK_DIR is emptied
# first; it stays for a look after a failure.
# The last line is "N passed, N failed"; the exit status is non-zero on any failure.
set -euo pipefail

SRC=$(readlink -f "${1:?usage: client_only.sh SOURCE_DIR WORK_DIR}")
WORK=${2:?usage: client_only.sh SOURCE_DIR WORK_DIR}
# shellcheck source=../lib/check.sh
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../lib/check.sh"
show() { sed 's/^/        | /' "$1"; }

rm -rf -- "$WORK"
mkdir -p "$WORK"
WORK=$(readlink -f "$WORK")
B=$WORK/build

if PKG_CONFIG=/bin/false cmake -S "$SRC" -B "$B" -DSWARM_CLIENT_ONLY=ON \
	-DCMAKE_DISABLE_FIND_PACKAGE_PkgConfig=ON -DCMAKE_BUILD_TYPE=Release \
	>"$WORK/configure.log" 2>&1; then
	ok "configures with -DSWARM_CLIENT_ONLY=ON and no pkg-config"
else
	bad "does not configure with -DSWARM_CLIENT_ONLY=ON and no pkg-config"
	show "$WORK/configure.log"
	echo "$passed passed, $failed failed"
	exit 1
fi
# What the full build looks up, none of which a client-only configure may touch.
looked=$(grep -E '^(PKG_CONFIG|URING|HWLOC|JEMALLOC|JANSSON|LIBCRYPTO|OPENBLAS|CRITERION|OpenMP|CUDAToolkit|CMAKE_CUDA_COMPILER)[_:A-Za-z]*[:=]' \
	"$B/CMakeCache.txt" | cut -d= -f1 || true)
if [[ -z $looked ]] && ! grep -qE 'Checking for module|Found OpenMP|Looking for a CUDA' "$WORK/configure.log"; then
	ok "looked up no dependency (no pkg-config module, OpenMP, CUDA or library in the cache)"
else
	bad "looked up: ${looked//$'\n'/ }"
	show "$WORK/configure.log"
fi

if cmake --build "$B" -j2 >"$WORK/build.log" 2>&1; then
	ok "builds"
else
	bad "does not build"
	show "$WORK/build.log"
fi
so=$B/lib/libswarm.so
# glibc's dynamic loader (ld-linux) comes with libc: libswarm's thread-local error text
# needs its __tls_get_addr.
needed=$(readelf -d "$so" 2>/dev/null | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' ')
extra=$(tr ' ' '\n' <<<"$needed" | grep -vxE 'libc\.so\.6|ld-linux[-a-z0-9_.]*\.so\.[0-9]+|' || true)
if [[ $needed == *libc.so.6* && -z $extra ]]; then
	ok "libswarm.so needs only glibc: $needed"
else
	bad "libswarm.so needs: ${needed:-(no libswarm.so at $so)}"
fi
built=$(cd "$B" && find . -type f -perm -u+x ! -path './CMakeFiles/*' ! -name '*.so*' | sort)
if [[ -z $built ]]; then
	ok "built no program"
else
	bad "built programs: ${built//$'\n'/ }"
fi

P=$WORK/prefix
if cmake --install "$B" --prefix "$P" >"$WORK/install.log" 2>&1; then
	ok "installs"
else
	bad "does not install"
	show "$WORK/install.log"
fi
libdir=$(dirname "$(find "$P" -name 'libswarm.so' | head -1)")
for f in include/swarm/swarm.h include/swarm/swarm_backend.h; do
	[[ -f $P/$f ]] && ok "installed $f" || bad "not installed: $f"
done
for f in pkgconfig/swarm.pc cmake/swarm/swarmConfig.cmake cmake/swarm/swarmTargets.cmake; do
	[[ -f $libdir/$f ]] && ok "installed ${libdir#"$P"/}/$f" || bad "not installed: lib*/$f"
done
if [[ ! -e $P/bin ]]; then
	ok "installed no program"
else
	bad "installed programs: $(ls "$P/bin" | tr '\n' ' ')"
fi

echo "$passed passed, $failed failed"
((failed == 0))
