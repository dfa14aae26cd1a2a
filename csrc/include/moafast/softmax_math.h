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

// exp(x) for x <= 0, -inf and NaN, in float32, about 1 ulp: Cody-Waite reduction
// x = n ln2 + r, |r| <= ln2/2, then a degree-7 minimax polynomial for exp(r).
// Results below the smallest normal float flush to 0. Branch-free so that CPU loops vectorise.
MOAFAST_HD float exp_nonpositive(float x) {
  const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  // round(x / ln2)
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t exponent = static_cast<int32_t>(x < -87.0f ? 0.0f : n) + 127;
  const float scaled = p * bits_to_float(static_cast<uint32_t>(exponent) << 23);
  return x < -87.0f ? 0.0f : scaled;  // NaN fails the comparison and stays NaN through p
}

MOAFAST_HD double exp_nonpositive(double x) { return exp(x); }

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
    sum_a = sum_a * exp_nonpositive(max_a - max_b) + sum_b;
    max_a = max_b;
  } else if (max_b <= max_a) {
    sum_a = sum_a + sum_b * exp_nonpositive(max_b - max_a);
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
  return softmax_coef * exp_nonpositive(x - lse) + target_coef;
}

}  // namespace moafast
