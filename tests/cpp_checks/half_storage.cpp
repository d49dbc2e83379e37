// An embedding program passes raw 16-bit buffers (the bits of bfloat16 / float16 values, as JAX or
// a C library hands them over) to the public API: losskit::bfloat16 and losskit::float16 are
// 2-byte views of those bits. Checks, through the public headers only:
//   - the header's conversions: every float16 and bfloat16 bit pattern widens and narrows back
//     to itself (NaN to a NaN of the same sign), and a tie rounds to even;
//   - mse_loss_forward_backward, cross_entropy_forward_backward ((N, C) and K-dimensional),
//     nll_loss_forward_backward, multi_margin_loss_forward_backward,
//     softmax_focal_loss_forward_backward, poly1_cross_entropy_forward_backward,
//     cosine_embedding_loss_forward_backward, complete_box_iou_loss_forward_backward,
//     ctc_loss_forward_backward and info_nce_loss_forward_backward (the caller's float GEMM, here
//     a plain loop, several row blocks) on 16-bit buffers equal the
//     float instantiations on the widened values, rounded once to 16 bits (a reduced value within
//     one 16-bit ulp: its sum is cut into other blocks).
// Built and run by tests/test_low_precision.py::test_cpp_embedding_program.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "check.hpp"
#include "losskit/losskit.hpp"

using namespace losskit;

namespace {

template <class H>
void check_round_trips(const char* name) {
  int bad = 0;
  for (uint32_t b = 0; b < 65536; ++b) {
    const H h = H::from_bits(static_cast<uint16_t>(b));
    const float f = h;
    const H back(f);
    if (std::isnan(f)) bad += !std::isnan(static_cast<float>(back)) || ((back.bits ^ b) & 0x8000u);
    else bad += back.bits != b;
  }
  CHECK(bad == 0, "%s: %d bit patterns do not survive widening and narrowing", name, bad);
}

template <class H>
std::vector<H> narrowed(const std::vector<float>& v) {
  std::vector<H> out;
  for (float f : v) out.emplace_back(f);
  return out;
}

template <class H>
std::vector<float> widened(const std::vector<H>& v) {
  return std::vector<float>(v.begin(), v.end());
}

template <class H>
bool same_bits(const std::vector<H>& a, const std::vector<float>& b) {
  for (size_t i = 0; i < a.size(); ++i)
    if (a[i].bits != H(b[i]).bits) return false;
  return true;
}

// The caller's GEMM for info_nce_loss: c = alpha op(a) op(b) + beta c, row-major (a plain loop; an
// embedding program passes its BLAS).
void plain_gemm(void*, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
                int64_t ldc) {
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double acc = 0.0;
      for (int64_t p = 0; p < k; ++p)
        acc += static_cast<double>(trans_a ? a[p * lda + i] : a[i * lda + p]) *
               static_cast<double>(trans_b ? b[j * ldb + p] : b[p * ldb + j]);
      const float prior = beta == 0.0f ? 0.0f : beta * c[i * ldc + j];
      c[i * ldc + j] = static_cast<float>(alpha * acc) + prior;
    }
}

template <class H>
void check_losses(const char* name) {
  const int64_t n = 50000, C = 1000, N = 40;
  std::vector<float> xs(n), ys(n), logits(N * C);
  for (int64_t i = 0; i < n; ++i) xs[i] = std::sin(0.37f * i) * 3, ys[i] = std::cos(0.11f * i);
  for (int64_t i = 0; i < N * C; ++i) logits[i] = std::sin(0.013f * i * i) * 4;
  // The raw buffers an embedding program owns: the 16-bit bits, reinterpreted as H.
  std::vector<uint16_t> xbits(n), ybits(n);
  for (int64_t i = 0; i < n; ++i) xbits[i] = H(xs[i]).bits, ybits[i] = H(ys[i]).bits;
  const auto* x = reinterpret_cast<const H*>(xbits.data());
  const auto* y = reinterpret_cast<const H*>(ybits.data());
  std::vector<H> gx(n);
  H loss;
  mse_loss_forward_backward<H>(View<H>(x, {n}), View<H>(y, {n}), {}, {}, MutView<H>(&loss, {}),
                               MutView<H>(gx.data(), {n}), {});
  std::vector<float> x32(x, x + n), y32(y, y + n), g32(n);
  float loss32;
  mse_loss_forward_backward<float>(View<float>(x32.data(), {n}), View<float>(y32.data(), {n}), {},
                                   {}, MutView<float>(&loss32, {}), MutView<float>(g32.data(), {n}),
                                   {});
  CHECK(loss.bits == H(loss32).bits, "%s mse_loss: %g, float gives %g", name, double(float(loss)),
        double(loss32));
  CHECK(same_bits(gx, g32), "%s mse_loss: gradient differs from the float one rounded", name);

  const std::vector<H> lh = narrowed<H>(logits);
  const std::vector<float> l32 = widened(lh);
  std::vector<int64_t> t(N);
  for (int64_t i = 0; i < N; ++i) t[i] = (i * 7919) % C;
  std::vector<H> out(N), g(N * C);
  std::vector<float> out32(N), gf(N * C);
  CrossEntropyOptions o;
  o.reduction = Reduction::None;
  o.label_smoothing = 0.1;
  cross_entropy_forward_backward<H>(View<H>(lh.data(), {N, C}), View<int64_t>(t.data(), {N}), {},
                                    {}, MutView<H>(out.data(), {N}), MutView<H>(g.data(), {N, C}),
                                    o);
  cross_entropy_forward_backward<float>(View<float>(l32.data(), {N, C}),
                                        View<int64_t>(t.data(), {N}), {}, {},
                                        MutView<float>(out32.data(), {N}),
                                        MutView<float>(gf.data(), {N, C}), o);
  CHECK(same_bits(out, out32), "%s cross_entropy: losses differ from the float ones rounded", name);
  CHECK(same_bits(g, gf), "%s cross_entropy: gradient differs from the float one rounded", name);

  // The same logits as a K-dimensional (N, C / 10, 10) input with z_loss-free defaults, nll_loss
  // on them, and multi_margin_loss: every classification loss takes 16-bit buffers.
  const int64_t K = 10, Ck = C / K;
  std::vector<int64_t> tk(N * K);
  for (int64_t i = 0; i < N * K; ++i) tk[i] = (i * 31) % Ck;
  std::vector<H> outk(N * K), gk(N * C);
  std::vector<float> outk32(N * K), gk32(N * C);
  cross_entropy_forward_backward<H>(View<H>(lh.data(), {N, Ck, K}),
                                    View<int64_t>(tk.data(), {N, K}), {}, {},
                                    MutView<H>(outk.data(), {N, K}),
                                    MutView<H>(gk.data(), {N, Ck, K}), o);
  cross_entropy_forward_backward<float>(View<float>(l32.data(), {N, Ck, K}),
                                        View<int64_t>(tk.data(), {N, K}), {}, {},
                                        MutView<float>(outk32.data(), {N, K}),
                                        MutView<float>(gk32.data(), {N, Ck, K}), o);
  CHECK(same_bits(outk, outk32), "%s K-dimensional cross_entropy: losses differ", name);
  CHECK(same_bits(gk, gk32), "%s K-dimensional cross_entropy: gradient differs", name);
  NllLossOptions no;
  no.reduction = Reduction::None;
  nll_loss_forward_backward<H>(View<H>(lh.data(), {N, Ck, K}), View<int64_t>(tk.data(), {N, K}), {},
                               {}, MutView<H>(outk.data(), {N, K}),
                               MutView<H>(gk.data(), {N, Ck, K}), no);
  nll_loss_forward_backward<float>(View<float>(l32.data(), {N, Ck, K}),
                                   View<int64_t>(tk.data(), {N, K}), {}, {},
                                   MutView<float>(outk32.data(), {N, K}),
                                   MutView<float>(gk32.data(), {N, Ck, K}), no);
  CHECK(same_bits(outk, outk32) && same_bits(gk, gk32), "%s nll_loss differs", name);
  H mm;
  float mm32;
  multi_margin_loss_forward_backward<H>(View<H>(lh.data(), {N, C}), View<int64_t>(t.data(), {N}),
                                        {}, {}, MutView<H>(&mm, {}), MutView<H>(g.data(), {N, C}),
                                        {});
  multi_margin_loss_forward_backward<float>(View<float>(l32.data(), {N, C}),
                                            View<int64_t>(t.data(), {N}), {}, {},
                                            MutView<float>(&mm32, {}),
                                            MutView<float>(gf.data(), {N, C}), {});
  const float eps = std::is_same_v<H, bfloat16> ? 0x1p-7f : 0x1p-10f;  // one ulp at 1
  CHECK(std::fabs(float(mm) - float(H(mm32))) <= std::fabs(mm32) * 2 * eps,
        "%s multi_margin_loss: %g, float gives %g", name, double(float(mm)), double(mm32));
  CHECK(same_bits(g, gf), "%s multi_margin_loss: gradient differs", name);

  // Beyond torch.nn on cross_entropy's kernels: softmax_focal_loss on the K-dimensional input
  // (staged tiles) and poly1_cross_entropy with smoothing (its own kernel on staged rows).
  SoftmaxFocalLossOptions fo;
  fo.reduction = Reduction::None;
  softmax_focal_loss_forward_backward<H>(View<H>(lh.data(), {N, Ck, K}),
                                         View<int64_t>(tk.data(), {N, K}), {}, {},
                                         MutView<H>(outk.data(), {N, K}),
                                         MutView<H>(gk.data(), {N, Ck, K}), fo);
  softmax_focal_loss_forward_backward<float>(View<float>(l32.data(), {N, Ck, K}),
                                             View<int64_t>(tk.data(), {N, K}), {}, {},
                                             MutView<float>(outk32.data(), {N, K}),
                                             MutView<float>(gk32.data(), {N, Ck, K}), fo);
  CHECK(same_bits(outk, outk32) && same_bits(gk, gk32), "%s softmax_focal_loss differs", name);
  Poly1CrossEntropyOptions po;
  po.reduction = Reduction::None;
  po.label_smoothing = 0.1;
  poly1_cross_entropy_forward_backward<H>(View<H>(lh.data(), {N, C}), View<int64_t>(t.data(), {N}),
                                          {}, {}, MutView<H>(out.data(), {N}),
                                          MutView<H>(g.data(), {N, C}), po);
  poly1_cross_entropy_forward_backward<float>(View<float>(l32.data(), {N, C}),
                                              View<int64_t>(t.data(), {N}), {}, {},
                                              MutView<float>(out32.data(), {N}),
                                              MutView<float>(gf.data(), {N, C}), po);
  CHECK(same_bits(out, out32) && same_bits(g, gf), "%s poly1_cross_entropy differs", name);

  // cosine_embedding_loss on rows of the same logits (the embedding family's 16-bit entry points).
  const int64_t half_rows = N / 2;
  std::vector<H> labels(half_rows);
  for (int64_t i = 0; i < half_rows; ++i) labels[i] = H(i % 3 == 0 ? -1.0f : 1.0f);
  const std::vector<float> labels32 = widened(labels);
  CosineEmbeddingLossOptions co;
  co.reduction = Reduction::None;
  co.margin = 0.1;
  std::vector<H> cos_out(half_rows), g1(half_rows * C), g2(half_rows * C);
  std::vector<float> cos_out32(half_rows), g1f(half_rows * C), g2f(half_rows * C);
  const H* second = lh.data() + half_rows * C;
  cosine_embedding_loss_forward_backward<H>(View<H>(lh.data(), {half_rows, C}),
                                            View<H>(second, {half_rows, C}),
                                            View<H>(labels.data(), {half_rows}), {},
                                            MutView<H>(cos_out.data(), {half_rows}),
                                            MutView<H>(g1.data(), {half_rows, C}),
                                            MutView<H>(g2.data(), {half_rows, C}), co);
  cosine_embedding_loss_forward_backward<float>(
      View<float>(l32.data(), {half_rows, C}),
      View<float>(l32.data() + half_rows * C, {half_rows, C}),
      View<float>(labels32.data(), {half_rows}), {}, MutView<float>(cos_out32.data(), {half_rows}),
      MutView<float>(g1f.data(), {half_rows, C}), MutView<float>(g2f.data(), {half_rows, C}), co);
  CHECK(same_bits(cos_out, cos_out32) && same_bits(g1, g1f) && same_bits(g2, g2f),
        "%s cosine_embedding_loss differs from the float one rounded", name);

  // complete_box_iou_loss on the same values as 2 x 2600 boxes (any box is valid input, inverted
  // ones too): the stages widen what they gather and round what they write back.
  const int64_t nbox = 2600;
  std::vector<H> box_out(nbox), gb1(4 * nbox), gb2(4 * nbox);
  std::vector<float> box_out32(nbox), gb1f(4 * nbox), gb2f(4 * nbox);
  BoxIouLossOptions bo;
  complete_box_iou_loss_forward_backward<H>(View<H>(lh.data(), {nbox, 4}),
                                            View<H>(lh.data() + 4 * nbox, {nbox, 4}), {},
                                            MutView<H>(box_out.data(), {nbox}),
                                            MutView<H>(gb1.data(), {nbox, 4}),
                                            MutView<H>(gb2.data(), {nbox, 4}), bo);
  complete_box_iou_loss_forward_backward<float>(View<float>(l32.data(), {nbox, 4}),
                                                View<float>(l32.data() + 4 * nbox, {nbox, 4}), {},
                                                MutView<float>(box_out32.data(), {nbox}),
                                                MutView<float>(gb1f.data(), {nbox, 4}),
                                                MutView<float>(gb2f.data(), {nbox, 4}), bo);
  CHECK(same_bits(box_out, box_out32) && same_bits(gb1, gb1f) && same_bits(gb2, gb2f),
        "%s complete_box_iou_loss differs from the float one rounded", name);

  // ctc_loss on the same values as (T, N, C) = (20, 2, 1000) log-probabilities (CTC does not need
  // them normalised): the kernel widens what it reads, the gradient is rounded as it is stored.
  const int64_t T = 20, Nc = 2;
  const std::vector<int64_t> labels_ctc = {3, 7, 7, 1, 9, 4, 2, 8, 0, 0};
  const std::vector<int64_t> input_lengths = {20, 18}, target_lengths = {5, 3};
  CtcLossOptions ctc_o;
  ctc_o.reduction = Reduction::None;
  std::vector<H> ctc_out(Nc), ctc_g(T * Nc * C);
  std::vector<float> ctc_out32(Nc), ctc_g32(T * Nc * C);
  ctc_loss_forward_backward<H>(View<H>(lh.data(), {T, Nc, C}),
                               View<int64_t>(labels_ctc.data(), {Nc, 5}),
                               View<int64_t>(input_lengths.data(), {Nc}),
                               View<int64_t>(target_lengths.data(), {Nc}), {},
                               MutView<H>(ctc_out.data(), {Nc}),
                               MutView<H>(ctc_g.data(), {T, Nc, C}), ctc_o);
  ctc_loss_forward_backward<float>(View<float>(l32.data(), {T, Nc, C}),
                                   View<int64_t>(labels_ctc.data(), {Nc, 5}),
                                   View<int64_t>(input_lengths.data(), {Nc}),
                                   View<int64_t>(target_lengths.data(), {Nc}), {},
                                   MutView<float>(ctc_out32.data(), {Nc}),
                                   MutView<float>(ctc_g32.data(), {T, Nc, C}), ctc_o);
  CHECK(same_bits(ctc_out, ctc_out32) && same_bits(ctc_g, ctc_g32),
        "%s ctc_loss differs from the float one rounded", name);

  // info_nce_loss on (50, 16) embedding pairs from the same values, symmetric (two passes over 3
  // row blocks of 20), normalised and not: 16-bit storage computes the float loss on the widened
  // rows (the GEMM on float copies), every result rounded once.
  const int64_t Ne = 50, De = 16, block = 20;
  for (const bool normalize : {true, false}) {
    InfoNceOptions nce_o;
    nce_o.temperature = 0.5;
    nce_o.normalize = normalize;
    std::vector<H> nce_loss(1), nce_g1(Ne * De), nce_g2(Ne * De);
    std::vector<float> nce_loss32(1), nce_g1f(Ne * De), nce_g2f(Ne * De);
    std::vector<float> ws16(info_nce_workspace_size(Ne, De, block, true));
    std::vector<float> ws32(info_nce_workspace_size(Ne, De, block));
    const LinearCrossEntropyGemm<float> gemm{&plain_gemm, nullptr};
    info_nce_loss_forward_backward(View<H>(lh.data(), {Ne, De}),
                                   View<H>(lh.data() + Ne * De, {Ne, De}), {},
                                   MutView<H>(nce_loss.data(), {}),
                                   MutView<H>(nce_g1.data(), {Ne, De}),
                                   MutView<H>(nce_g2.data(), {Ne, De}),
                                   MutView<float>(ws16.data(), {int64_t(ws16.size())}), block,
                                   nce_o, gemm);
    info_nce_loss_forward_backward<float>(View<float>(l32.data(), {Ne, De}),
                                          View<float>(l32.data() + Ne * De, {Ne, De}), {},
                                          MutView<float>(nce_loss32.data(), {}),
                                          MutView<float>(nce_g1f.data(), {Ne, De}),
                                          MutView<float>(nce_g2f.data(), {Ne, De}),
                                          MutView<float>(ws32.data(), {int64_t(ws32.size())}),
                                          block, nce_o, gemm);
    CHECK(same_bits(nce_loss, nce_loss32) && same_bits(nce_g1, nce_g1f) &&
              same_bits(nce_g2, nce_g2f),
          "%s info_nce_loss (normalize %d) differs from the float one rounded", name, normalize);
  }
}

}  // namespace

int main() {
  check_round_trips<bfloat16>("bfloat16");
  check_round_trips<float16>("float16");
  // Ties to even: 1 + 2^-8 lies halfway between bfloat16's 1 and 1 + 2^-7 (even: 1), 1 + 3 * 2^-8
  // between 1 + 2^-7 and 1 + 2^-6 (even: 1 + 2^-6); float16's halfway point 1 + 2^-11 goes to 1.
  CHECK(float(bfloat16(1.0f + 0x1p-8f)) == 1.0f, "bfloat16 tie not to even");
  CHECK(float(bfloat16(1.0f + 3 * 0x1p-8f)) == 1.0f + 0x1p-6f, "bfloat16 tie not to even");
  CHECK(float(float16(1.0f + 0x1p-11f)) == 1.0f, "float16 tie not to even");
  CHECK(std::isinf(float(float16(65520.0f))) && float(float16(65519.0f)) == 65504.0f,
        "float16 overflow threshold");
  check_losses<bfloat16>("bfloat16");
  check_losses<float16>("float16");
  if (failures == 0) std::printf("ok\n");
  return failures != 0;
}
