// The C++ API with caller-owned memory (warp-ctc style): a fused call with a workspace sized by
// ctc_loss_workspace_size must give bitwise the same loss and gradient as one where the core owns
// its scratch, and a too-small or misaligned workspace must raise before any work.
// Built and run by tests/test_ctc.py::test_cpp_caller_owned_workspace.
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>
#include "losskit/ctc.hpp"
#include "losskit/errors.hpp"
#include "losskit/threads.hpp"
using namespace losskit;
int main() {
  const int64_t T = 200, N = 6, C = 7, S = 20;  // 49200 cells: above the serial threshold
  std::vector<double> lp(T * N * C);
  for (size_t i = 0; i < lp.size(); ++i) lp[i] = std::log(1.0 / C) + 0.01 * std::sin(double(i));
  std::vector<int64_t> tg(N * S), il(N, T), tl(N, S);
  for (size_t i = 0; i < tg.size(); ++i) tg[i] = 1 + int64_t(i % (C - 1));
  std::vector<double> g1(lp.size()), g2(lp.size());
  double o1 = 0, o2 = 0;
  View<double> vlp(lp.data(), {T, N, C});
  View<int64_t> vtg(tg.data(), {N, S}), vil(il.data(), {N}), vtl(tl.data(), {N});
  ctc_loss_forward_backward<double>(vlp, vtg, vil, vtl, {}, MutView<double>(&o1, {}),
                                    MutView<double>(g1.data(), {T, N, C}));
  set_num_threads(4);
  size_t need = ctc_loss_workspace_size({T, N, C}, S, true, 1);
  std::vector<unsigned char> ws(need * 2 + 7);  // room for 2 threads
  ctc_loss_forward_backward<double>(vlp, vtg, vil, vtl, {}, MutView<double>(&o2, {}),
                                    MutView<double>(g2.data(), {T, N, C}), {},
                                    {ws.data(), ws.size()});
  if (!(o1 == o2 && g1 == g2 && std::isfinite(o1))) return 1;
  int raised = 0;
  try {
    ctc_loss<double>(vlp, vtg, vil, vtl, MutView<double>(&o2, {}), {}, {ws.data(), 16});
  } catch (const ValueError& e) {
    raised += std::string(e.what()).find("workspace expected at least") != std::string::npos;
  }
  try {
    ctc_loss<double>(vlp, vtg, vil, vtl, MutView<double>(&o2, {}), {}, {ws.data() + 1, need});
  } catch (const ValueError& e) {
    raised += std::string(e.what()).find("aligned") != std::string::npos;
  }
  // Forward only needs two rows of alphas, not T.
  if (!(ctc_loss_workspace_size({T, C}, S, false, 1) < need)) return 2;
  if (raised != 2) return 3;
  printf("ok\n");
  return 0;
}
