// Sets of at most kSmallSetMax points in 2 to 6 objectives (HaM's many small fronts), all outputs at once on
// fixed-size local arrays: shared by the CPU driver (one set per OpenMP task, up to 6 objectives) and the CUDA
// kernel (one set per thread, up to 3), so the CPU tests exercise the formulas the GPU runs. Same definitions as
// hypervolume.h. In 3 objectives, contributions and faces come from one sweep (hv_small_sweep3d.h); in 4 to 6
// from slabs of the last objective over it (hv_small_slabs.h); in 2, from the definitions over the rows that no
// other row beats in every objective.
#pragma once

#include <cstdint>

#include "moafast/common.h"
#include "moafast/hv_small_slabs.h"
#include "moafast/hv_small_sweep3d.h"
#include "moafast/hv_small_volumes.h"
#include "moafast/hypervolume.h"

namespace moafast::hv_small {

constexpr int kSweepMaxObjectives = 3;  // sets done in one sweep, on the CPU and by the CUDA kernel
// With slabs of the last objective above the sweep: the CPU driver's sets when more than the value is wanted (for
// the value alone the general algorithms are faster from about 8 points up).
constexpr int kSlabMaxObjectives = 6;

MOAFAST_HD bool fits(int64_t n, int64_t d, int max_objectives) {
  return n <= kSmallSetMax && d >= 2 && d <= max_objectives;
}

// The face of `query` along objective k, prod_{l != k}(r_l - q_l) - HV_{D-1}({max(pi_k q, pi_k y_j) : y_jk < q_k}):
// its exclusive (D-1)-volume, projected along k, against the rows below it in k.
template <int D>
MOAFAST_HD double face(const double* rows, int n, const double* query, int k, const double* ref) {
  double lower[kSmallSetMax * (D - 1)], projected_query[D - 1], projected_ref[D - 1];
  int count = 0;
  for (int j = 0; j < n; ++j)
    if (rows[j * D + k] < query[k]) project<D>(rows + j * D, 1, k, lower + (count++) * (D - 1));
  project<D>(query, 1, k, projected_query);
  project<D>(ref, 1, k, projected_ref);
  return exclusive_volume<D - 1>(lower, count, projected_query, projected_ref);
}

// d HV / d r_k for every k: the (D-1)-volume of the projection along k of the members and of the points on
// boundary k (moving r_k outwards brings those in).
template <int D>
MOAFAST_HD void reference_faces(const double* members, int count, const double* edge, const int* edge_axes,
                                int edges, const double* ref, double sign, double* out) {
  for (int k = 0; k < D; ++k) {
    double rows[kSmallSetMax * (D - 1)], projected_ref[D - 1];
    project<D>(members, count, k, rows);
    int size = count;
    for (int e = 0; e < edges; ++e)
      if (edge_axes[e] == k) project<D>(edge + e * D, 1, k, rows + (size++) * (D - 1));
    project<D>(ref, 1, k, projected_ref);
    out[k] = sign * volume_of<D - 1>(rows, size, projected_ref);
  }
}

// Drops the members that two or more others beat in every objective: such a row adds nothing to any output
// (its own are 0) and cannot shape another row's (one of its beaters other than that row covers it). About a
// quarter of a random set; the sweep is O(count^2). Returns the new count.
MOAFAST_HD int drop_twice_beaten(double* members, int* member_rows, int count) {
  const int width = (count + 3) & ~3;  // padding rows at +inf beat no row: the loop over i vectorises
  double x[kSmallSetMax], y[kSmallSetMax], z[kSmallSetMax];
  int64_t beaters[kSmallSetMax];
  for (int i = 0; i < width; ++i) {
    const bool member = i < count;
    x[i] = member ? members[i * 3] : DBL_MAX;
    y[i] = member ? members[i * 3 + 1] : DBL_MAX;
    z[i] = member ? members[i * 3 + 2] : DBL_MAX;
    beaters[i] = 0;
  }
  for (int j = 0; j < count; ++j)
    for (int i = 0; i < width; ++i) beaters[i] += (x[j] < x[i]) & (y[j] < y[i]) & (z[j] < z[i]);
  int kept = 0;
  for (int i = 0; i < count; ++i) {  // every row is written, and the dropped ones overwritten: no branch to miss
    members[kept * 3] = x[i], members[kept * 3 + 1] = y[i], members[kept * 3 + 2] = z[i];
    member_rows[kept] = member_rows[i];
    kept += beaters[i] < 2;
  }
  return kept;
}

// Every output of a set in D = 3 to 6 objectives from one pass (the 3-D sweep, or slabs over it), scattered back
// to the set's rows; the faces of points on the reference boundary from their definition (they are rare).
template <int D>
MOAFAST_HD void one_set_at_once(const HypervolumeArgs& args, int64_t b, const double* members, const int* member_rows,
                                int count, const double* edge, const int* edge_rows, const int* edge_axes, int edges,
                                const double* ref, double sign) {
  const int n = static_cast<int>(args.n);
  double contributions[kSmallSetMax], faces[kSmallSetMax * D];
  if (args.contributions || args.grad_points) {
    const double value = sweep_every_output<D>(members, count, ref, args.contributions ? contributions : nullptr,
                                               args.grad_points ? faces : nullptr);
    if (args.hv) args.hv[b] = value;
  } else if (args.hv) {
    args.hv[b] = volume_of<D>(members, count, ref);
  }
  if (args.contributions) {
    double* out = args.contributions + b * args.n;
    for (int i = 0; i < n; ++i) out[i] = 0.0;
    for (int i = 0; i < count; ++i) out[member_rows[i]] = contributions[i];
  }
  if (args.grad_points) {
    double* out = args.grad_points + b * args.n * D;
    for (int i = 0; i < n * D; ++i) out[i] = 0.0;
    for (int i = 0; i < count; ++i)
      for (int k = 0; k < D; ++k) out[member_rows[i] * D + k] = -sign * faces[i * D + k];
    for (int e = 0; e < edges; ++e)
      out[edge_rows[e] * D + edge_axes[e]] = -sign * face<D>(members, count, edge + e * D, edge_axes[e], ref);
  }
  if (args.grad_ref)
    reference_faces<D>(members, count, edge, edge_axes, edges, ref, sign, args.grad_ref + b * D);
}

// Set b of the batch: gather (minimisation form), compute what args asks for, scatter. Requires
// fits(n, d, kMaxObjectives).
template <int kMaxObjectives>
MOAFAST_HD void one_set(const HypervolumeArgs& args, int64_t b) {
  const int n = static_cast<int>(args.n), d = static_cast<int>(args.d);
  const double sign = args.maximize ? -1.0 : 1.0;
  const double* points = args.points + b * args.n * args.d;
  double ref[kMaxObjectives], members[kSmallSetMax * kMaxObjectives], edge[kSmallSetMax * kMaxObjectives];
  int member_rows[kSmallSetMax], edge_rows[kSmallSetMax], edge_axes[kSmallSetMax];
  int count = 0, edges = 0;
  for (int k = 0; k < d; ++k) ref[k] = sign * args.ref[b * args.ref_batch_stride + k];
  for (int i = 0; i < n; ++i) {
    if (args.mask && !args.mask[b * args.n + i]) continue;
    const int role = point_role(points + i * d, ref, sign, d);
    if (role == kNotTakingPart) continue;
    double* row = role == kMember ? members + count * d : edge + edges * d;
    for (int k = 0; k < d; ++k) row[k] = sign * points[i * d + k];
    if (role == kMember)
      member_rows[count++] = i;
    else
      edge_rows[edges] = i, edge_axes[edges++] = role;
  }
  if constexpr (kMaxObjectives > 3) {
    if (d == 4)
      return one_set_at_once<4>(args, b, members, member_rows, count, edge, edge_rows, edge_axes, edges, ref, sign);
    if (d == 5)
      return one_set_at_once<5>(args, b, members, member_rows, count, edge, edge_rows, edge_axes, edges, ref, sign);
    if (d == 6)
      return one_set_at_once<6>(args, b, members, member_rows, count, edge, edge_rows, edge_axes, edges, ref, sign);
  }
  if (args.hv && !args.contributions && !args.grad_points && !args.grad_ref) {  // the sweeps skip dominated rows
    args.hv[b] = volume(members, count, d, ref);
    return;
  }
  if (d == 3) {
    count = drop_twice_beaten(members, member_rows, count);
    return one_set_at_once<3>(args, b, members, member_rows, count, edge, edge_rows, edge_axes, edges, ref, sign);
  }
  // d = 2 from here: the definitions over the rows no other row beats.
  double kept[kSmallSetMax * 2];
  int kept_count = 0, beater[kSmallSetMax], beaters[kSmallSetMax], by_first[kSmallSetMax];
  sort_by(by_first, count, members, d, 0);  // only a row earlier in the first objective can beat a row
  for (int a = 0; a < count; ++a) {
    const int i = by_first[a];
    beaters[i] = 0;
    beater[i] = -1;
    for (int c = 0; c < a && beaters[i] < 2; ++c)
      if (all_less(members + by_first[c] * d, members + i * d, d)) beater[i] = by_first[c], beaters[i] += 1;
  }
  for (int i = 0; i < count; ++i) {
    if (beaters[i] > 0) continue;
    for (int k = 0; k < d; ++k) kept[kept_count * d + k] = members[i * d + k];
    ++kept_count;
  }
  if (args.hv) args.hv[b] = volume(kept, kept_count, d, ref);
  if (args.contributions) {
    double* out = args.contributions + b * args.n;
    for (int i = 0; i < n; ++i) out[i] = 0.0;
    double limit[kSmallSetMax * 2];
    for (int i = 0; i < count; ++i) {
      const double* p = members + i * d;
      bool covered = false;
      int size = 0;
      for (int j = 0; j < count && !covered; ++j) {  // a row beaten by another than i cannot shape i's region
        if (j == i || beaters[j] > 1 || (beaters[j] == 1 && beater[j] != i)) continue;
        covered = all_at_most(members + j * d, p, d);
        for (int k = 0; k < d; ++k) limit[size * d + k] = members[j * d + k] > p[k] ? members[j * d + k] : p[k];
        ++size;
      }
      double box = 1.0;
      for (int k = 0; k < d; ++k) box *= ref[k] - p[k];
      out[member_rows[i]] = covered ? 0.0 : box - volume(limit, size, d, ref);
    }
  }
  if (args.grad_points) {
    double* out = args.grad_points + b * args.n * args.d;
    for (int i = 0; i < n * d; ++i) out[i] = 0.0;
    for (int i = 0; i < count; ++i)
      if (beaters[i] == 0)
        for (int k = 0; k < d; ++k)
          out[member_rows[i] * d + k] = -sign * face<2>(kept, kept_count, members + i * d, k, ref);
    for (int e = 0; e < edges; ++e)
      out[edge_rows[e] * d + edge_axes[e]] = -sign * face<2>(kept, kept_count, edge + e * d, edge_axes[e], ref);
  }
  if (args.grad_ref) reference_faces<2>(kept, kept_count, edge, edge_axes, edges, ref, sign, args.grad_ref + b * 2);
}

}  // namespace moafast::hv_small
