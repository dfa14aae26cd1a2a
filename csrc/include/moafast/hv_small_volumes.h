// Volumes of sets of at most kSmallSetMax points on fixed-size local arrays (value only, minimisation form):
// sweeps in 1 to 3 objectives, and above them slabs of the last objective, each the lower-dimensional volume of
// the rows at or below it (O(n^(d-1)) for d >= 4, fine at these sizes). Shared by the CPU driver and the CUDA
// kernel (hv_small_sets.h).
#pragma once

#include "moafast/common.h"
#include "moafast/hv_small_sweep3d.h"

namespace moafast::hv_small {

MOAFAST_HD bool all_less(const double* a, const double* b, int d) {
  bool less = true;
  for (int k = 0; k < d; ++k) less &= a[k] < b[k];
  return less;
}

MOAFAST_HD bool all_at_most(const double* a, const double* b, int d) {
  for (int k = 0; k < d; ++k)
    if (a[k] > b[k]) return false;
  return true;
}

MOAFAST_HD void sort_by(int* order, int n, const double* rows, int stride, int key) {
  for (int a = 0; a < n; ++a) order[a] = a;
  for (int a = 1; a < n; ++a) {
    const int moving = order[a];
    int b = a;
    for (; b > 0 && rows[order[b - 1] * stride + key] > rows[moving * stride + key]; --b) order[b] = order[b - 1];
    order[b] = moving;
  }
}

MOAFAST_HD double volume_1d(const double* rows, int n, const double* ref) {
  double best = ref[0];
  for (int i = 0; i < n; ++i) best = rows[i] < best ? rows[i] : best;
  return n ? ref[0] - best : 0.0;
}

MOAFAST_HD double volume_2d(const double* rows, int n, const double* ref) {
  int order[kSmallSetMax];
  sort_by(order, n, rows, 2, 0);
  double area = 0.0, level = ref[1];
  for (int a = 0; a < n; ++a) {
    const double* p = rows + order[a] * 2;
    if (p[1] < level) {
      area += (ref[0] - p[0]) * (level - p[1]);
      level = p[1];
    }
  }
  return area;
}

// Sweep in the third objective over a 2-D staircase kept in arrays (x ascending, y descending).
MOAFAST_HD double volume_3d(const double* rows, int n, const double* ref) {
  int order[kSmallSetMax];
  sort_by(order, n, rows, 3, 2);
  double xs[kSmallSetMax], ys[kSmallSetMax];
  int steps = 0;
  double area = 0.0, volume = 0.0;
  for (int a = 0; a < n; ++a) {
    const double* p = rows + order[a] * 3;
    if (a > 0) volume += area * (p[2] - rows[order[a - 1] * 3 + 2]);
    int position = 0;
    while (position < steps && xs[position] < p[0]) ++position;
    if (position < steps && xs[position] == p[0] && ys[position] <= p[1]) continue;
    if (position > 0 && ys[position - 1] <= p[1]) continue;
    double top = position > 0 ? ys[position - 1] : ref[1], left = p[0];
    int end = position;
    for (; end < steps && ys[end] >= p[1]; ++end) {
      area += (xs[end] - left) * (top - p[1]);
      left = xs[end];
      top = ys[end];
    }
    area += ((end < steps ? xs[end] : ref[0]) - left) * (top - p[1]);
    const int removed = end - position;  // [position, end) becomes the one new step
    if (removed == 0) {
      for (int s = steps; s > position; --s) xs[s] = xs[s - 1], ys[s] = ys[s - 1];
      ++steps;
    } else if (removed > 1) {
      for (int s = end; s < steps; ++s) xs[s - removed + 1] = xs[s], ys[s - removed + 1] = ys[s];
      steps -= removed - 1;
    }
    xs[position] = p[0];
    ys[position] = p[1];
  }
  return n ? volume + area * (ref[2] - rows[order[n - 1] * 3 + 2]) : 0.0;
}

MOAFAST_HD double volume(const double* rows, int n, int d, const double* ref) {
  if (d == 1) return volume_1d(rows, n, ref);
  return d == 2 ? volume_2d(rows, n, ref) : volume_3d(rows, n, ref);
}

template <int D> MOAFAST_HD double volume_of(const double* rows, int n, const double* ref);

// d >= 4: between consecutive levels of the last objective the rows at or below are fixed; the slab is their
// (d-1)-volume times its height.
template <int D> MOAFAST_HD double volume_in_slabs(const double* rows, int n, const double* ref) {
  constexpr int kLower = D - 1;
  int order[kSmallSetMax];
  sort_by(order, n, rows, D, kLower);
  double prefix[kSmallSetMax * kLower];
  double total = 0.0;
  for (int a = 0; a < n;) {
    const double level = rows[order[a] * D + kLower];
    for (; a < n && rows[order[a] * D + kLower] == level; ++a)
      for (int k = 0; k < kLower; ++k) prefix[a * kLower + k] = rows[order[a] * D + k];
    const double upper = a < n ? rows[order[a] * D + kLower] : ref[kLower];
    total += (upper - level) * volume_of<kLower>(prefix, a, ref);
  }
  return total;
}

template <int D> MOAFAST_HD double volume_of(const double* rows, int n, const double* ref) {
  if constexpr (D == 1) return volume_1d(rows, n, ref);
  else if constexpr (D == 2) return volume_2d(rows, n, ref);
  else if constexpr (D == 3) return volume_3d(rows, n, ref);
  else return volume_in_slabs<D>(rows, n, ref);
}

// The volume that p alone adds to `rows` (D objectives): its box less the volume of the rows clipped to it,
// {max(p, y_j)}; exactly 0 when a row weakly dominates p.
template <int D> MOAFAST_HD double exclusive_volume(const double* rows, int n, const double* p, const double* ref) {
  double clipped[kSmallSetMax * D], box = 1.0;
  for (int k = 0; k < D; ++k) box *= ref[k] - p[k];
  for (int j = 0; j < n; ++j) {
    bool covered = true;
    for (int k = 0; k < D; ++k) {
      const double value = rows[j * D + k] > p[k] ? rows[j * D + k] : p[k];
      covered = covered && value == p[k];
      clipped[j * D + k] = value;
    }
    if (covered) return 0.0;
  }
  return box - volume_of<D>(clipped, n, ref);
}

// Drops objective `axis` from `count` rows of D objectives.
template <int D> MOAFAST_HD void project(const double* rows, int count, int axis, double* out) {
  for (int i = 0; i < count; ++i)
    for (int k = 0, m = 0; k < D; ++k)
      if (k != axis) out[i * (D - 1) + m++] = rows[i * D + k];
}

}  // namespace moafast::hv_small
