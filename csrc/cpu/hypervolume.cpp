// Batched driver: per set, gather the points that take part (unmasked, strictly dominating the reference),
// run the algorithms in minimisation form, scatter the results back. OpenMP over the sets.
#include "moafast/hypervolume.h"

#include <algorithm>
#include <cstddef>
#include <vector>

#include "hv_algorithms.h"

namespace moafast::cpu {
namespace {

void small(const HypervolumeArgs& args, int64_t b, const hv::PointSet& set, const std::vector<int64_t>& members,
           const std::vector<std::pair<int64_t, int>>& boundary, const double* ref) {
  const int64_t n = args.n, d = args.d;
  const double sign = args.maximize ? -1.0 : 1.0;
  const double* points = args.points + b * n * d;
  static thread_local hv::PointSet edge;
  edge.values.clear();
  edge.d = static_cast<int>(d);
  int axes[hv::kSmallSetMax];
  for (size_t e = 0; e < boundary.size(); ++e) {
    axes[e] = boundary[e].second;
    for (int64_t l = 0; l < d; ++l) edge.values.push_back(sign * points[boundary[e].first * d + l]);
  }
  double volume = 0.0, contributions[hv::kSmallSetMax], faces[hv::kSmallSetMax * 3], edge_faces[hv::kSmallSetMax],
         projected[3];
  hv::small_set(set, edge, axes, ref, args.hv ? &volume : nullptr, args.contributions ? contributions : nullptr,
                args.grad_points ? faces : nullptr, args.grad_points ? edge_faces : nullptr,
                args.grad_ref ? projected : nullptr);
  if (args.hv) args.hv[b] = volume;
  if (args.contributions) {
    double* out = args.contributions + b * n;
    std::fill(out, out + n, 0.0);
    for (size_t m = 0; m < members.size(); ++m) out[members[m]] = contributions[m];
  }
  if (args.grad_points) {
    double* out = args.grad_points + b * n * d;
    std::fill(out, out + n * d, 0.0);
    for (size_t m = 0; m < members.size(); ++m)
      for (int64_t k = 0; k < d; ++k) out[members[m] * d + k] = -sign * faces[m * d + k];
    for (size_t e = 0; e < boundary.size(); ++e) out[boundary[e].first * d + axes[e]] = -sign * edge_faces[e];
  }
  if (args.grad_ref)
    for (int64_t k = 0; k < d; ++k) args.grad_ref[b * d + k] = sign * projected[k];
}

void one_set(const HypervolumeArgs& args, int64_t b) {
  const int64_t n = args.n, d = args.d;
  const double sign = args.maximize ? -1.0 : 1.0;
  const double* points = args.points + b * n * d;
  // Per-thread buffers: many small sets would otherwise spend their time in the allocator.
  static thread_local std::vector<double> ref;
  static thread_local hv::PointSet set;
  static thread_local std::vector<int64_t> members;
  // On the boundary: y <= r with exactly one equality. Such a point adds no volume, but moving it inwards
  // along that objective does: its gradient there is its face.
  static thread_local std::vector<std::pair<int64_t, int>> boundary;
  ref.resize(d);
  set.values.clear();
  set.d = static_cast<int>(d);
  members.clear();
  boundary.clear();
  for (int64_t k = 0; k < d; ++k) ref[k] = sign * args.ref[b * args.ref_batch_stride + k];
  for (int64_t i = 0; i < n; ++i) {
    if (args.mask && !args.mask[b * n + i]) continue;
    int equal = 0, on = -1;
    bool inside = true;
    for (int64_t k = 0; k < d; ++k) {
      const double y = sign * points[i * d + k];
      inside = inside && y <= ref[k];
      if (y == ref[k]) equal += 1, on = static_cast<int>(k);
    }
    if (!inside || equal > 1) continue;
    if (equal == 1) {
      boundary.emplace_back(i, on);
      continue;
    }
    members.push_back(i);
    for (int64_t k = 0; k < d; ++k) set.values.push_back(sign * points[i * d + k]);
  }
  if ((d == 2 || d == 3) && members.size() + boundary.size() <= hv::kSmallSetMax) {
    small(args, b, set, members, boundary, ref.data());
    return;
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

}  // namespace

void hypervolume(const HypervolumeArgs& args) {
  const int threads = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(args.num_threads, args.batch)));
#pragma omp parallel for num_threads(threads) schedule(dynamic, 16) if (threads > 1)
  for (int64_t b = 0; b < args.batch; ++b) one_set(args, b);
}

}  // namespace moafast::cpu
