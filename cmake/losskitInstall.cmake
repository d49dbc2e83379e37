# Install and export rules: the C++ package that `find_package(losskit)` finds.
#
# Included once, at the end of the top-level CMakeLists.txt, so that the family engineers' source
# lists above stay the only thing they edit. Two layouts, one set of rules:
#   * `cmake --install build --prefix P`: P/include/losskit/*.hpp, P/lib/liblosskit.a,
#     P/lib/cmake/losskit/losskit{Config,ConfigVersion,Targets}.cmake (GNUInstallDirs).
#   * the wheel (scikit-build-core, SKBUILD set): the same tree under the Python package,
#     site-packages/losskit/{include,lib,share/cmake/losskit}, found through the `cmake.root`
#     entry point or `-Dlosskit_DIR=$(python -m losskit --cmake-dir)`, as pybind11 does.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

if(SKBUILD)
  set(LOSSKIT_INSTALL_INCLUDEDIR losskit/include)
  set(LOSSKIT_INSTALL_LIBDIR losskit/lib)
  set(LOSSKIT_INSTALL_CMAKEDIR losskit/share/cmake/losskit)
else()
  set(LOSSKIT_INSTALL_INCLUDEDIR ${CMAKE_INSTALL_INCLUDEDIR})
  set(LOSSKIT_INSTALL_LIBDIR ${CMAKE_INSTALL_LIBDIR})
  set(LOSSKIT_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/losskit)
endif()

# A consumer compiles our headers, so it needs C++17 too: a usage requirement, not a global flag.
target_compile_features(losskit PUBLIC cxx_std_17)
# Installed name liblosskit.a (the kernel objects are inside it: $<TARGET_OBJECTS> in its sources).
set_target_properties(losskit PROPERTIES EXPORT_NAME losskit OUTPUT_NAME losskit)
# The installed include directory differs between the two layouts, so it is set here only.
target_include_directories(losskit PUBLIC $<INSTALL_INTERFACE:${LOSSKIT_INSTALL_INCLUDEDIR}>)

install(TARGETS losskit EXPORT losskitTargets
  ARCHIVE DESTINATION ${LOSSKIT_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${LOSSKIT_INSTALL_LIBDIR})
# The whole public header directory, so each family's new header is installed without a list.
install(DIRECTORY cpp/include/losskit DESTINATION ${LOSSKIT_INSTALL_INCLUDEDIR}
  FILES_MATCHING PATTERN "*.hpp")
install(EXPORT losskitTargets NAMESPACE losskit:: FILE losskitTargets.cmake
  DESTINATION ${LOSSKIT_INSTALL_CMAKEDIR})

configure_package_config_file(cmake/losskitConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/losskitConfig.cmake
  INSTALL_DESTINATION ${LOSSKIT_INSTALL_CMAKEDIR})
# 0.x: a minor release may change the C++ API, so only the same minor version is compatible.
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/losskitConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/losskitConfig.cmake
  ${CMAKE_CURRENT_BINARY_DIR}/losskitConfigVersion.cmake
  DESTINATION ${LOSSKIT_INSTALL_CMAKEDIR})
