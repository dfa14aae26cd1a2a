// Batched driver: per set, gather the points that take part (unmasked, strictly dominating the reference),
// run the algorithms in minimisation form, scatter the results back. OpenMP over the sets.
#include "moafast/hypervolume.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

#include "cpu/isa.h"
#include "cpu/kernels/kernels.h"
#include "hv_algorithms.h"
#include "moafast/hv_small_sets.h"

namespace moafast::cpu {
namespace {

void one_set(const HypervolumeArgs& args, int64_t b) {
  const int64_t n = args.n, d = args.d;
  const double sign = args.maximize ? -1.0 : 1.0;
  const double* points = args.points + b * n * d;
  std::vector<double> ref(d);
  hv::PointSet set{{}, static_cast<int>(d)};
  set.values.reserve(n * d);
  std::vector<int64_t> members;
  members.reserve(n);
  // On the boundary: y <= r with exactly one equality. Such a point adds no volume, but moving it inwards
  // along that objective does: its gradient there is its face.
  std::vector<std::pair<int64_t, int>> boundary;
  for (int64_t k = 0; k < d; ++k) ref[k] = sign * args.ref[b * args.ref_batch_stride + k];
  for (int64_t i = 0; i < n; ++i) {
    if (args.mask && !args.mask[b * n + i]) continue;
    const int role = point_role(points + i * d, ref.data(), sign, d);
    if (role == kNotTakingPart) continue;
    if (role != kMember) {
      boundary.emplace_back(i, role);
      continue;
    }
    members.push_back(i);
    for (int64_t k = 0; k < d; ++k) set.values.push_back(sign * points[i * d + k]);
  }
  if (args.hv) args.hv[b] = hv::volume(set, ref.data());
  if (args.contributions) {
    double* out = args.contributions + b * n;
    std::fill(out, out + n, 0.0);
    std::vector<double> values(members.size());
    hv::contributions(set, ref.data(), values.data());
    for (size_t m = 0; m < members.size(); ++m) out[members[m]] = values[m];
  }
  if (args.grad_points) {
    double* out = args.grad_points + b * n * d;
    std::fill(out, out + n * d, 0.0);
    std::vector<double> faces(members.size() * d);
    hv::faces(set, ref.data(), faces.data());
    for (size_t m = 0; m < members.size(); ++m)
      for (int64_t k = 0; k < d; ++k) out[members[m] * d + k] = -sign * faces[m * d + k];
    std::vector<double> query(d);
    for (const auto& [i, k] : boundary) {
      for (int64_t l = 0; l < d; ++l) query[l] = sign * points[i * d + l];
      out[i * d + k] = -sign * hv::face(set, query.data(), k, ref.data());
    }
  }
  if (args.grad_ref) {
    double* out = args.grad_ref + b * d;
    std::fill(out, out + d, 0.0);
    for (int64_t k = 0; k < d; ++k) {  // moving r_k outwards also brings in the points on that boundary
      hv::PointSet grown = set;
      for (const auto& [i, on] : boundary)
        if (on == k)
          for (int64_t l = 0; l < d; ++l) grown.values.push_back(sign * points[i * d + l]);
      out[k] = sign * hv::projected_volume(grown, static_cast<int>(k), ref.data());
    }
  }
}

// x - x is 0 for finite x and NaN for inf or NaN, so the sums stay 0 exactly when every value is finite; four
// running sums vectorise. The common all-finite case costs one streaming read.
bool all_finite(const double* values, int64_t count) {
  double sums[4] = {0.0, 0.0, 0.0, 0.0};
  int64_t i = 0;
  for (; i + 4 <= count; i += 4)
    for (int l = 0; l < 4; ++l) sums[l] += values[i + l] - values[i + l];
  for (; i < count; ++i) sums[0] += values[i] - values[i];
  return (sums[0] + sums[1]) + (sums[2] + sums[3]) == 0.0;
}

}  // namespace

int64_t first_non_finite(const HypervolumeArgs& args) {
  const int64_t ref_rows = args.ref_batch_stride ? args.batch : 1;
  for (int64_t k = 0; k < ref_rows * args.d; ++k)
    if (!std::isfinite(args.ref[k])) return -2;
  if (all_finite(args.points, args.batch * args.n * args.d)) return -1;
  for (int64_t i = 0; i < args.batch * args.n; ++i) {
    if (args.mask && !args.mask[i]) continue;
    for (int64_t k = 0; k < args.d; ++k)
      if (!std::isfinite(args.points[i * args.d + k])) return i;
  }
  return -1;
}

void hypervolume(const HypervolumeArgs& args) {
  const bool value_only = !args.contributions && !args.grad_points && !args.grad_ref;
  if (hv_small::fits(args.n, args.d, value_only ? hv_small::kSweepMaxObjectives : hv_small::kSlabMaxObjectives)) {
    switch (active_isa()) {
#if defined(MOAFAST_HAVE_X86_ISAS)
      case Isa::kAvx512: return avx512::hypervolume_small_sets(args);
      case Isa::kAvx2: return avx2::hypervolume_small_sets(args);
#endif
      default: return baseline::hypervolume_small_sets(args);
    }
  }
  const int threads = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(args.num_threads, args.batch)));
#pragma omp parallel for num_threads(threads) schedule(dynamic, 16) if (threads > 1)
  for (int64_t b = 0; b < args.batch; ++b) one_set(args, b);
}

}  // namespace moafast::cpu
