// CPU launcher for logprobs_from_logits: validates targets, then runs the widest ISA build.
#include "cpu/huge_pages.h"
#include "cpu/isa.h"
#include "cpu/kernels/kernels.h"

namespace moafast::cpu {
namespace {

template <typename Args> int64_t first_bad_target(const Args& args) {
  for (int64_t n = 0; n < args.rows; ++n) {
    const int64_t target = args.targets[n * args.targets_stride];
    if (target != args.ignore_index && (target < 0 || target >= args.vocab)) return n;
  }
  return -1;
}

}  // namespace

int64_t logprobs_forward(const LogprobsForwardArgs& args, int num_threads) {
  if (const int64_t bad = first_bad_target(args); bad >= 0) return bad;
  switch (active_isa()) {
#if defined(MOAFAST_HAVE_X86_ISAS)
    case Isa::kAvx512: avx512::logprobs_forward_rows(args, num_threads); break;
    case Isa::kAvx2: avx2::logprobs_forward_rows(args, num_threads); break;
#endif
    default: baseline::logprobs_forward_rows(args, num_threads);
  }
  return -1;
}

int64_t logprobs_backward(const LogprobsBackwardArgs& args, int num_threads) {
  if (const int64_t bad = first_bad_target(args); bad >= 0) return bad;
  advise_huge_pages(args.grad_logits, static_cast<size_t>(args.rows * args.vocab) * dtype_size(args.dtype));
  switch (active_isa()) {
#if defined(MOAFAST_HAVE_X86_ISAS)
    case Isa::kAvx512: avx512::logprobs_backward_rows(args, num_threads); break;
    case Isa::kAvx2: avx2::logprobs_backward_rows(args, num_threads); break;
#endif
    default: baseline::logprobs_backward_rows(args, num_threads);
  }
  return -1;
}

}  // namespace moafast::cpu
