// Softmax statistics and log-prob formulas shared by the CPU and CUDA kernels.
//
// A row's statistics are (max, sum) with lse = max + log(sum), sum = sum_j exp(x_j - max).
// Policy (documented in moafast.ops.logprobs_from_logits):
//   * -inf logits carry zero mass; a row whose logits are all -inf has lse = -inf.
//   * NaN or +inf anywhere in a row makes that row's lse (and so its log-prob) NaN.
#pragma once

#include <cmath>

#include "moafast/common.h"

namespace moafast {

// exp(x) in float32 for x <= 88 (larger x is the caller's to avoid), -inf and NaN, within about 1.5 ulp
// (relative error 1.64e-7 with FMA, 1.80e-7 without; tests/test_softmax_math.py checks ten million floats):
// x = n ln2 + r with |r| <= ln2/2 (Cody-Waite split of ln2), exp(r) by a degree-5 polynomial fitted for
// relative error (9.1e-8; the degree of PyTorch's faster `Vectorized<float>::exp_u20`), 2^n built in the exponent
// bits.
// Branch-free so that CPU loops vectorise:
//  * x is clamped at -88 (NaN kept: the comparison is false), so n + 127 lies in [0, 254];
//  * rounding adds 1.5 * 2^23 + 127, which leaves n + 127 in the low mantissa bits of `shifted`;
//    shifting those bits into the exponent field gives 2^n, and 2^-127 comes out as exactly 0,
//    so exp(-inf) = 0 and results below ~1e-38 flush to 0.
MOAFAST_HD float bounded_exp(float x) {
  constexpr float kRoundAndBias = 12582912.0f + 127.0f;
  x = -88.0f > x ? -88.0f : x;
  const float shifted = x * 1.44269504088896341f + kRoundAndBias;
  const float n = shifted - kRoundAndBias;
  const float r = (x - n * 0.693359375f) - n * -2.12194440e-4f;
  float p = 8.290315047e-3f;
  p = p * r + 4.189793020e-2f;
  p = p * r + 1.666763574e-1f;
  p = p * r + 4.999915063e-1f;
  p = p * r + 9.999997020e-1f;
  p = p * r + 1.0f;
  return p * bits_to_float(float_to_bits(shifted) << 23);
}

MOAFAST_HD double bounded_exp(double x) { return exp(x); }

MOAFAST_HD float log_acc(float x) { return logf(x); }
MOAFAST_HD double log_acc(double x) { return log(x); }

template <typename A> MOAFAST_HD A negative_infinity() { return -static_cast<A>(INFINITY); }

// Merges the statistics (max_b, sum_b) of one part of a row into (max_a, sum_a).
// Parts with max -inf hold no mass and are skipped, so -inf - -inf is never formed.
template <typename A> MOAFAST_HD void merge_softmax_stats(A& max_a, A& sum_a, A max_b, A sum_b) {
  if (max_b == negative_infinity<A>()) return;
  if (max_a == negative_infinity<A>()) {
    max_a = max_b;
    sum_a = sum_b;
    return;
  }
  if (max_b > max_a) {
    sum_a = sum_a * bounded_exp(max_a - max_b) + sum_b;
    max_a = max_b;
  } else if (max_b <= max_a) {
    sum_a = sum_a + sum_b * bounded_exp(max_b - max_a);
  } else {  // a NaN max poisons the row
    max_a = max_a + max_b;
    sum_a = max_a;
  }
}

template <typename A> MOAFAST_HD A lse_from_stats(A max, A sum) {
  if (max == negative_infinity<A>()) return max;
  return max + log_acc(sum);
}

// log p(target) = x_target - lse; a row with no mass gives -inf.
template <typename A> MOAFAST_HD A logprob_from_lse(A target_logit, A lse) {
  if (lse == negative_infinity<A>()) return lse;
  return target_logit - lse;
}

// d/dx_j of (g_logp * logp + g_lse * lse) = (g_lse - g_logp) * p_j + [j == target] * g_logp,
// with p_j = exp(x_j - lse). softmax_coef = g_lse - g_logp; target_coef = g_logp on the target, else 0.
template <typename A> MOAFAST_HD A logprob_grad(A x, A lse, A softmax_coef, A target_coef) {
  return softmax_coef * bounded_exp(x - lse) + target_coef;
}

}  // namespace moafast
