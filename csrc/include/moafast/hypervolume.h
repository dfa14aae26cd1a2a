// Exact hypervolume, exclusive contributions and one-sided partial derivatives of batches of point sets.
//
// Minimisation internally (maximize flips signs at the boundary). A point takes part when it is unmasked and
// strictly dominates the reference (y < r in every objective). Derivatives are one-sided, in the direction
// in which HV grows. Definitions, per set S of taking-part points:
//   HV(S)                 Lebesgue measure of { x : x <= r, some y in S with y <= x }
//   contribution(i)       HV(S) - HV(S \ {y_i})  (0 for duplicates and weakly dominated points)
//   grad_points(i, k)     d HV / d y_ik for y_ik decreasing (the improving direction):
//                         -( prod_{l != k} (r_l - y_il) - HV_{d-1}({ max(pi_k y_i, pi_k y_j) : y_jk < y_ik }) )
//   grad_ref(k)           d HV / d r_k for r_k increasing: HV_{d-1}(pi_k (S + points on boundary k), pi_k r)
// pi_k drops objective k. A point on the boundary (y <= r, one equality y_ik = r_k) gets its face along k;
// other points that do not take part get 0 everywhere.
#pragma once

#include <cstdint>

#include "moafast/common.h"

namespace moafast {

constexpr int kNotTakingPart = -2;
constexpr int kMember = -1;

// The part a point plays, in minimisation form (y = sign * point, r = sign * ref): kMember when y < r in
// every objective; the objective k when y <= r with the one equality y_k = r_k (on the boundary: no volume,
// but a face along k); kNotTakingPart otherwise.
MOAFAST_HD int point_role(const double* point, const double* ref, double sign, int64_t d) {
  int equal = 0, on = kMember;
  for (int64_t k = 0; k < d; ++k) {
    const double y = sign * point[k];
    if (y > ref[k]) return kNotTakingPart;
    if (y == ref[k]) equal += 1, on = static_cast<int>(k);
  }
  return equal > 1 ? kNotTakingPart : on;
}

struct HypervolumeArgs {
  const double* points = nullptr;  // [batch, n, d], contiguous
  const double* ref = nullptr;     // [d] (ref_batch_stride = 0) or [batch, d]
  int64_t ref_batch_stride = 0;
  const uint8_t* mask = nullptr;   // [batch, n] or null: 1 = the point takes part
  int64_t batch = 0, n = 0, d = 0;
  bool maximize = false;
  double* hv = nullptr;             // [batch] or null
  double* contributions = nullptr;  // [batch, n] or null
  double* grad_points = nullptr;    // [batch, n, d] or null
  double* grad_ref = nullptr;       // [batch, d] or null
  int num_threads = 1;
};

namespace cpu {
void hypervolume(const HypervolumeArgs& args);
// -2 when a reference coordinate is not finite, else the first (set * n + point) whose unmasked coordinates
// are not all finite, else -1.
int64_t first_non_finite(const HypervolumeArgs& args);
}  // namespace cpu

namespace cuda {
// Sets of at most 16 points in 2 or 3 objectives (hv_small::fits up to kSweepMaxObjectives), one thread per
// set, on `stream` of `device`.
void hypervolume_small_sets(const HypervolumeArgs& args, int device, void* stream);
}  // namespace cuda

}  // namespace moafast
