// Batches of small sets (hv_small::fits) on the CPU, one set per OpenMP iteration.
// Compiled per ISA: the 3-D sweep's per-row loops vectorise.
#include <algorithm>

#include "cpu/kernels/kernels.h"
#include "moafast/hv_small_sets.h"

namespace moafast::cpu::MOAFAST_CPU_ISA {

void hypervolume_small_sets(const HypervolumeArgs& args) {
  const int threads = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(args.num_threads, args.batch)));
#pragma omp parallel for num_threads(threads) schedule(dynamic, 64) if (threads > 1)
  for (int64_t b = 0; b < args.batch; ++b) hv_small::one_set<hv_small::kSlabMaxObjectives>(args, b);
}

}  // namespace moafast::cpu::MOAFAST_CPU_ISA
