# Cross-compiles losskit's C++ core for 64-bit Arm Linux with Debian's cross toolchain
# (apt-get install g++-aarch64-linux-gnu; libgomp for aarch64 comes with it):
#
#   cmake -S . -B build/aarch64 -G Ninja -DLOSSKIT_BUILD_PYTHON=OFF \
#         -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/aarch64-linux-gnu.cmake
#
# Only the `baseline` kernel target is compiled for a processor other than x86-64 (CMakeLists.txt).
# Programs built with it run here under qemu-user (apt-get install qemu-user):
#   qemu-aarch64 -L /usr/aarch64-linux-gnu ./program
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)

# Debian's cross gcc already knows its headers and libraries (multiarch, no --sysroot); the target
# root is only where find_library/find_path/find_package look, never the build machine's /usr.
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# try_run and ctest run target programs through qemu-user where it is installed.
find_program(LOSSKIT_QEMU_AARCH64 qemu-aarch64)
if(LOSSKIT_QEMU_AARCH64)
  set(CMAKE_CROSSCOMPILING_EMULATOR ${LOSSKIT_QEMU_AARCH64} -L /usr/aarch64-linux-gnu)
endif()
