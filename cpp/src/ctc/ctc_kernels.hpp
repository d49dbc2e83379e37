// Interface between the CTC entry points (ctc.cpp, compiled once) and the per-sample kernel
// (ctc_kernels.cpp, compiled once per instruction set). Plain data only: the layout arithmetic
// lives in ctc.cpp so no inline function is compiled with different ISA flags in two TUs.
#pragma once

#include <cstdint>

#include "common/target.hpp"
#include "losskit/half.hpp"

namespace losskit::detail {

// Where each array of one thread's scratch starts, in 8-byte units from the scratch base (every
// array starts on a 64-byte boundary when the base does). `row` is the padded row length of every
// array but occ: at least W + 11 for the W = 2S + 1 extended labels of the longest target (two
// cells of padding each side and the vector loops' overrun, see ctc_kernels.cpp).
//   alpha  alpha_rows x row doubles; extended label s of time t at [t * row + s + 2] (two leading
//          -inf cells, so s - 1 and s - 2 are always readable);
//   beta   2 x row doubles (time t in row t % 2), label s at [s] (two trailing -inf cells);
//   lpe    row doubles: log_probs[t, b, l'_s] of the current t, gathered;
//   allow  row doubles: 1 where the transition s - 2 -> s is allowed (Graves eq. 6), else 0
//          (also past W: beta reads allow[s + 2]);
//   post   row doubles: the posterior of each extended label at the current t;
//   ext    row int64: the extended label sequence l' (blank, l_1, blank, ..., l_S, blank), then
//          blanks to the row's end;
//   occ    C doubles (backward only): per-class occupation sum of Graves eq. (16);
//   scale  alpha_rows doubles (backward only): the scaled recursions' row exponents A_t;
//   y      alpha_rows x row doubles (backward only): the scaled recursions' e^lp of every band
//          cell, [t * row + s], kept from alpha's pass for beta's (ctc_kernels.cpp).
struct CtcLayout {
  int64_t row = 0;
  int64_t alpha_rows = 0;
  int64_t alpha = 0, beta = 0, lpe = 0, allow = 0, post = 0, ext = 0, occ = 0, scale = 0, y = 0;
  int64_t total = 0;  // 8-byte units per thread
};

// One sample b of the batch.
template <class T>
struct CtcItem {
  const T* log_probs = nullptr;     // element (t = 0, b, c = 0)
  T* grad = nullptr;                // element (0, b, 0) of grad_log_probs, or nullptr: loss only
  const int64_t* target = nullptr;  // the target_length labels of b, contiguous
  int64_t stride = 0;               // elements between consecutive t: N * C
  int64_t num_labels = 0;           // C
  int64_t max_time = 0;             // T: rows input_length .. T - 1 of grad are zeroed
  int64_t input_length = 0;
  int64_t target_length = 0;
  int64_t blank = 0;
  double grad_scale = 0.0;  // d(reduced loss) / d(loss_b), grad_output included
  bool zero_infinity = false;
  double* scratch = nullptr;  // this thread's workspace, laid out by `layout`
  CtcLayout layout;
};

// The negative log-likelihood of one sample (before zero_infinity); writes its gradient when
// item.grad is set. Inputs are checked beforehand: lengths in range, labels in [0, C) and not blank.
template <class T>
using CtcItemKernel = double (*)(const CtcItem<T>&);

}  // namespace losskit::detail

namespace losskit::kernels {
#define LOSSKIT_DECLARE_CTC(ns)                                                                    \
  namespace ns {                                                                                   \
  double ctc_item(const detail::CtcItem<float>& item);                                             \
  double ctc_item(const detail::CtcItem<double>& item);                                            \
  double ctc_item(const detail::CtcItem<bfloat16>& item);                                          \
  double ctc_item(const detail::CtcItem<float16>& item);                                           \
  }
LOSSKIT_FOR_EACH_TARGET(LOSSKIT_DECLARE_CTC)
#undef LOSSKIT_DECLARE_CTC
}  // namespace losskit::kernels
