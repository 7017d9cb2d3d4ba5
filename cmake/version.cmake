# version.cmake: the numbers a build carries (included right after project()).
#
# SWARM_ABI_VERSION is read from include/swarm/swarm.h, its one definition: it is the client
# ABI spoken on the control socket and written into every segment, and libswarm's SOVERSION
# is that number (install.cmake), so that a libswarm that cannot talk to the same swarmd gets
# a new soname. The generated swarm_build_info.h gives the C code the project's version and
# where an installed swarm keeps its data.
include(GNUInstallDirs)

file(STRINGS ${PROJECT_SOURCE_DIR}/include/swarm/swarm.h swarm_abi_line
     REGEX "^#define SWARM_ABI_VERSION [0-9]+u?$")
if(NOT swarm_abi_line MATCHES "SWARM_ABI_VERSION ([0-9]+)")
  message(FATAL_ERROR "swarm: no '#define SWARM_ABI_VERSION N' in include/swarm/swarm.h")
endif()
set(SWARM_ABI_VERSION ${CMAKE_MATCH_1})

# PREFIX/share/swarm and PREFIX/lib seen from PREFIX/bin ("../share/swarm" and "../lib" with
# the GNU defaults): relative, so that an install moved elsewhere (cmake --install --prefix
# P, a package unpacked anywhere) still finds its data and its libswarm.
file(RELATIVE_PATH SWARM_DATADIR_FROM_BINDIR ${CMAKE_INSTALL_FULL_BINDIR}
     ${CMAKE_INSTALL_FULL_DATADIR}/swarm)
file(RELATIVE_PATH SWARM_LIBDIR_FROM_BINDIR ${CMAKE_INSTALL_FULL_BINDIR}
     ${CMAKE_INSTALL_FULL_LIBDIR})

configure_file(${PROJECT_SOURCE_DIR}/cmake/swarm_build_info.h.in
               ${PROJECT_BINARY_DIR}/generated/swarm_build_info.h @ONLY)
message(STATUS "swarm: version ${PROJECT_VERSION}, client ABI ${SWARM_ABI_VERSION}")
