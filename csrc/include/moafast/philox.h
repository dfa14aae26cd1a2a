// Counter-based random numbers (Philox4x32-10, Salmon et al., SC'11), identical on host and device.
// A draw is a pure function of (key, counter): no state, so a request's randomness depends only on its seed,
// its stream and its step, never on the batch around it or on how the work is split across threads.
#pragma once

#include <cstdint>

#include "moafast/common.h"

namespace moafast::philox {

struct Block {
  uint32_t x[4];
};

MOAFAST_HD uint32_t mul_hi(uint32_t a, uint32_t b) {
  return static_cast<uint32_t>((static_cast<uint64_t>(a) * b) >> 32);
}

// The 4 x 32-bit output block for counter (c0..c3) under key (k0, k1).
MOAFAST_HD Block philox4x32_10(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0, uint32_t k1) {
  constexpr uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u, kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;
  for (int round = 0; round < 10; ++round) {
    const uint32_t hi0 = mul_hi(kMul0, c0), lo0 = kMul0 * c0;
    const uint32_t hi1 = mul_hi(kMul1, c2), lo1 = kMul1 * c2;
    const uint32_t next0 = hi1 ^ c1 ^ k0, next2 = hi0 ^ c3 ^ k1;
    c0 = next0;
    c1 = lo1;
    c2 = next2;
    c3 = lo0;
    k0 += kWeyl0;
    k1 += kWeyl1;
  }
  return Block{{c0, c1, c2, c3}};
}

// A uniform double in [0, 1) with 53 random bits, keyed by `seed`, at counter (offset, stream).
MOAFAST_HD double uniform(uint64_t seed, uint64_t offset, uint64_t stream) {
  const Block block = philox4x32_10(static_cast<uint32_t>(offset), static_cast<uint32_t>(offset >> 32),
                                    static_cast<uint32_t>(stream), static_cast<uint32_t>(stream >> 32),
                                    static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
  const uint64_t bits = (static_cast<uint64_t>(block.x[0]) << 21) ^ (block.x[1] >> 11);
  return static_cast<double>(bits & ((uint64_t{1} << 53) - 1)) * (1.0 / 9007199254740992.0);
}

}  // namespace moafast::philox
