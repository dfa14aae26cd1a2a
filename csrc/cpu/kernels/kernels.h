// Per-ISA kernel entry points. Each kernels/*.cpp file is compiled once per ISA with
// MOAFAST_CPU_ISA set to that ISA's namespace name; csrc/cpu/*.cpp dispatch between them.
#pragma once

#include "moafast/hypervolume.h"
#include "moafast/logprobs.h"
#include "moafast/tilted_sampling.h"

#define MOAFAST_DECLARE_CPU_KERNELS(isa)                                              \
  namespace moafast::cpu::isa {                                                       \
  void logprobs_forward_rows(const LogprobsForwardArgs& args, int num_threads);       \
  void logprobs_backward_rows(const LogprobsBackwardArgs& args, int num_threads);     \
  int64_t tilted_sampling_rows(const TiltedSamplingArgs& args);                       \
  void topk_logsumexp_rows(const TopkLogsumexpArgs& args);                            \
  void hypervolume_small_sets(const HypervolumeArgs& args);                           \
  }

MOAFAST_DECLARE_CPU_KERNELS(baseline)
MOAFAST_DECLARE_CPU_KERNELS(avx2)
MOAFAST_DECLARE_CPU_KERNELS(avx512)

#undef MOAFAST_DECLARE_CPU_KERNELS
