# install.cmake: what `cmake --install BUILD --prefix P` puts where (docs/install.md), included
# at the end of CMakeLists.txt, or after libswarm in a client-only build. GNUInstallDirs names
# the folders; the programs find libswarm through a relative RPATH and their data through a
# relative path (runtime/build_info.c), so that an install can be moved as a whole.
include(CMakePackageConfigHelpers)

set(SWARM_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/swarm)

# ---- libswarm, its headers, swarm.pc and the CMake package (client-only builds too) ---------
install(TARGETS swarm EXPORT swarmTargets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(FILES include/swarm/swarm.h include/swarm/swarm_backend.h
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/swarm)

install(EXPORT swarmTargets NAMESPACE swarm:: DESTINATION ${SWARM_CMAKE_DIR})
configure_package_config_file(cmake/swarmConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/swarmConfig.cmake
                              INSTALL_DESTINATION ${SWARM_CMAKE_DIR})
# 0.x: a minor release may change the API (semver's rule before 1.0), so a request for 0.2
# is met by any 0.2.z and by nothing else. From 1.0 on this becomes SameMajorVersion.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/swarmConfigVersion.cmake
                                 COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/swarmConfig.cmake
              ${PROJECT_BINARY_DIR}/swarmConfigVersion.cmake
        DESTINATION ${SWARM_CMAKE_DIR})

# swarm.pc names its folders from its own place (${pcfiledir}), not from the configured
# prefix, since `cmake --install --prefix P` may put it anywhere.
file(RELATIVE_PATH SWARM_PC_TO_PREFIX ${CMAKE_INSTALL_FULL_LIBDIR}/pkgconfig
     ${CMAKE_INSTALL_PREFIX})
string(REGEX REPLACE "/$" "" SWARM_PC_TO_PREFIX "${SWARM_PC_TO_PREFIX}")
file(RELATIVE_PATH SWARM_PC_LIBDIR ${CMAKE_INSTALL_PREFIX} ${CMAKE_INSTALL_FULL_LIBDIR})
file(RELATIVE_PATH SWARM_PC_INCLUDEDIR ${CMAKE_INSTALL_PREFIX} ${CMAKE_INSTALL_FULL_INCLUDEDIR})
configure_file(cmake/swarm.pc.in ${PROJECT_BINARY_DIR}/swarm.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/swarm.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

install(FILES README.md LICENSE DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(DIRECTORY docs/ DESTINATION ${CMAKE_INSTALL_DOCDIR}
        FILES_MATCHING PATTERN "*.md" PATTERN "*.svg" PATTERN "*.png")
install(FILES examples/example_client.c DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples)

if(SWARM_CLIENT_ONLY)
  return()
endif()

# ---- programs -------------------------------------------------------------------------------
set(SWARM_PROGRAMS swarmd swarm-worker swarm-cli swarm-sim swarm-bench)
if(TARGET swarm-gpu-bench)
  list(APPEND SWARM_PROGRAMS swarm-gpu-bench)
endif()
# PREFIX/lib seen from PREFIX/bin: the installed programs load the installed libswarm
# without LD_LIBRARY_PATH wherever the prefix is; the build tree keeps its own RPATH.
set_target_properties(${SWARM_PROGRAMS} PROPERTIES
                      INSTALL_RPATH "$ORIGIN/${SWARM_LIBDIR_FROM_BINDIR}")
# swarmd starts swarm-worker from its own folder, and swarm-bench starts swarmd and swarm
# from its own: all of them go to one bin folder.
install(TARGETS ${SWARM_PROGRAMS} RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

# An example custom backend (docs/backends.md): swarmd --backend-dir PREFIX/lib/swarm/backends.
install(TARGETS swarm_example_backend LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}/swarm/backends)
install(DIRECTORY examples/backends/ DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples/backends)

# What the programs run at run time, found under PREFIX/share/swarm (runtime/build_info.h):
# `swarm import onnx`'s importer and its modules, swarm-bench's ONNX Runtime child.
install(FILES tools/import-onnx.py tools/onnx_common.py tools/onnx_ops.py tools/onnx_rewrite.py
              tools/safetensors_writer.py bench/ort_runner.py
        DESTINATION ${CMAKE_INSTALL_DATADIR}/swarm)
if(TARGET swarm-gpu-bench)
  install(FILES bench/gpu_load_torch.py DESTINATION ${CMAKE_INSTALL_DATADIR}/swarm)
endif()

# ---- man pages, from the programs' own --help (help2man), so that they stay true ------------
find_program(SWARM_HELP2MAN help2man)
if(SWARM_HELP2MAN)
  set(swarm_man_pages "")
  foreach(page "swarmd;swarmd;8;the swarm inference daemon"
               "swarm-cli;swarm;1;the swarm command line")
    list(GET page 0 target)
    list(GET page 1 name)
    list(GET page 2 section)
    list(GET page 3 what)
    set(out ${PROJECT_BINARY_DIR}/man/${name}.${section})
    add_custom_command(OUTPUT ${out}
      COMMAND ${CMAKE_COMMAND} -E make_directory ${PROJECT_BINARY_DIR}/man
      COMMAND ${SWARM_HELP2MAN} --no-info --no-discard-stderr --section=${section}
              "--name=${what}" --version-string=${PROJECT_VERSION}
              --include=${PROJECT_SOURCE_DIR}/cmake/man/${name}.h2m
              --output=${out} $<TARGET_FILE:${target}>
      DEPENDS ${target} ${PROJECT_SOURCE_DIR}/cmake/man/${name}.h2m
      COMMENT "help2man: ${name}(${section})" VERBATIM)
    install(FILES ${out} DESTINATION ${CMAKE_INSTALL_MANDIR}/man${section})
    list(APPEND swarm_man_pages ${out})
  endforeach()
  add_custom_target(swarm_man ALL DEPENDS ${swarm_man_pages})
else()
  message(WARNING "swarm: no help2man, so no man pages are built or installed "
                  "(tools/install-deps.sh installs it)")
endif()
