// The assertion of the C++ checks in this folder: CHECK(condition, printf-format, args...) prints
// "FAIL: ..." and counts the failure; main returns `failures != 0`.
#pragma once

#include <cstdio>

static int failures = 0;
#define CHECK(cond, ...)                                                                           \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      std::printf("FAIL: " __VA_ARGS__);                                                           \
      std::printf("\n");                                                                           \
      ++failures;                                                                                  \
    }                                                                                              \
  } while (0)
