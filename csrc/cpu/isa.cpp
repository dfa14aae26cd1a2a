#include "cpu/isa.h"

#include <atomic>
#include <stdexcept>

namespace moafast::cpu {
namespace {

// -1: automatic; otherwise the forced Isa.
std::atomic<int> forced_isa{-1};

Isa widest_usable() {
  for (Isa isa : {Isa::kAvx512, Isa::kAvx2})
    if (isa_compiled(isa) && isa_supported_by_cpu(isa)) return isa;
  return Isa::kBaseline;
}

}  // namespace

bool isa_compiled(Isa isa) {
#if defined(MOAFAST_HAVE_X86_ISAS)
  (void)isa;
  return true;
#else
  return isa == Isa::kBaseline;
#endif
}

bool isa_supported_by_cpu(Isa isa) {
#if defined(__x86_64__) || defined(__i386__)
  switch (isa) {
    case Isa::kBaseline: return true;
    case Isa::kAvx2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case Isa::kAvx512:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
  }
  return false;
#else
  return isa == Isa::kBaseline;
#endif
}

std::string isa_name(Isa isa) {
  switch (isa) {
    case Isa::kBaseline: return "baseline";
    case Isa::kAvx2: return "avx2";
    case Isa::kAvx512: return "avx512";
  }
  return "unknown";
}

Isa active_isa() {
  const int forced = forced_isa.load();
  return forced < 0 ? widest_usable() : static_cast<Isa>(forced);
}

void set_isa(const std::string& name) {
  if (name == "auto") {
    forced_isa.store(-1);
    return;
  }
  for (Isa isa : {Isa::kBaseline, Isa::kAvx2, Isa::kAvx512}) {
    if (isa_name(isa) != name) continue;
    if (!isa_compiled(isa)) throw std::invalid_argument("CPU ISA '" + name + "' was not compiled into this build");
    if (!isa_supported_by_cpu(isa)) throw std::invalid_argument("this processor does not support CPU ISA '" + name + "'");
    forced_isa.store(static_cast<int>(isa));
    return;
  }
  throw std::invalid_argument("unknown CPU ISA '" + name + "'; expected one of auto, baseline, avx2, avx512");
}

}  // namespace moafast::cpu
