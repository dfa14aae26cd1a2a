// Runtime choice among the CPU instruction-set builds of each kernel.
// Every file in csrc/cpu/kernels/ is compiled once per ISA into namespace moafast::cpu::<isa>.
#pragma once

#include <string>

namespace moafast::cpu {

enum class Isa { kBaseline = 0, kAvx2 = 1, kAvx512 = 2 };

// The widest ISA this build and this processor both support, or the one forced by set_isa.
Isa active_isa();
// Forces an ISA ("baseline", "avx2", "avx512" or "auto"); throws std::invalid_argument when
// the name is unknown or the processor or build lacks it.
void set_isa(const std::string& name);
std::string isa_name(Isa isa);
bool isa_compiled(Isa isa);
bool isa_supported_by_cpu(Isa isa);

}  // namespace moafast::cpu
