// CPU launchers for the tilted sampler and its top-k stage: run the widest ISA build of the row kernel.
#include "cpu/isa.h"
#include "cpu/kernels/kernels.h"

namespace moafast::cpu {

int64_t tilted_sampling(const TiltedSamplingArgs& args) {
  switch (active_isa()) {
#if defined(MOAFAST_HAVE_X86_ISAS)
    case Isa::kAvx512: return avx512::tilted_sampling_rows(args);
    case Isa::kAvx2: return avx2::tilted_sampling_rows(args);
#endif
    default: return baseline::tilted_sampling_rows(args);
  }
}

void topk_logsumexp(const TopkLogsumexpArgs& args) {
  switch (active_isa()) {
#if defined(MOAFAST_HAVE_X86_ISAS)
    case Isa::kAvx512: return avx512::topk_logsumexp_rows(args);
    case Isa::kAvx2: return avx2::topk_logsumexp_rows(args);
#endif
    default: return baseline::topk_logsumexp_rows(args);
  }
}

}  // namespace moafast::cpu
