// Sets of at most kSmallSetMax points in 2 or 3 objectives (HaM's many small fronts): the same definitions
// as the general path, on stack arrays with insertion sorts and an array staircase, and with the points
// that another point beats in every objective left out wherever they cannot matter.
#include <cstddef>

#include "hv_algorithms.h"

namespace moafast::cpu::hv {
namespace {

constexpr int kMax = kSmallSetMax;

void sort_by(int* order, int n, const double* rows, int stride, int key) {
  for (int a = 0; a < n; ++a) order[a] = a;
  for (int a = 1; a < n; ++a) {
    const int moving = order[a];
    int b = a;
    for (; b > 0 && rows[order[b - 1] * stride + key] > rows[moving * stride + key]; --b) order[b] = order[b - 1];
    order[b] = moving;
  }
}

double volume_1d(const double* rows, int n, int stride, const double* ref) {
  double best = ref[0];
  for (int i = 0; i < n; ++i) best = rows[i * stride] < best ? rows[i * stride] : best;
  return n ? ref[0] - best : 0.0;
}

double volume_2d_small(const double* rows, int n, int stride, const double* ref) {
  int order[kMax];
  sort_by(order, n, rows, stride, 0);
  double area = 0.0, level = ref[1];
  for (int a = 0; a < n; ++a) {
    const double* p = rows + order[a] * stride;
    if (p[1] < level) {
      area += (ref[0] - p[0]) * (level - p[1]);
      level = p[1];
    }
  }
  return area;
}

double volume_3d_small(const double* rows, int n, int stride, const double* ref) {
  int order[kMax];
  sort_by(order, n, rows, stride, 2);
  double xs[kMax], ys[kMax];
  int steps = 0;
  double area = 0.0, volume = 0.0;
  for (int a = 0; a < n; ++a) {
    const double* p = rows + order[a] * stride;
    if (a > 0) volume += area * (p[2] - rows[order[a - 1] * stride + 2]);
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
    const int removed = end - position;  // replace [position, end) by the new step
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
  return n ? volume + area * (ref[2] - rows[order[n - 1] * stride + 2]) : 0.0;
}

double volume_small(const double* rows, int n, int d, const double* ref) {
  if (d == 1) return volume_1d(rows, n, 1, ref);
  return d == 2 ? volume_2d_small(rows, n, 2, ref) : volume_3d_small(rows, n, 3, ref);
}

bool all_less(const double* a, const double* b, int d) {
  for (int k = 0; k < d; ++k)
    if (!(a[k] < b[k])) return false;
  return true;
}

bool all_at_most(const double* a, const double* b, int d) {
  for (int k = 0; k < d; ++k)
    if (a[k] > b[k]) return false;
  return true;
}

// The face of `query` normal to objective k against `rows` (see hv_algorithms.h).
double face_small(const double* rows, int n, int d, const double* query, int k, const double* ref) {
  double limit[kMax * 2], projected_ref[2], box = 1.0;
  for (int l = 0, m = 0; l < d; ++l)
    if (l != k) projected_ref[m++] = ref[l], box *= ref[l] - query[l];
  int count = 0;
  for (int j = 0; j < n; ++j) {
    const double* q = rows + j * d;
    if (!(q[k] < query[k])) continue;
    bool covered = true;
    for (int l = 0, m = 0; l < d; ++l) {
      if (l == k) continue;
      const double value = q[l] > query[l] ? q[l] : query[l];
      covered = covered && value == query[l];
      limit[count * (d - 1) + m++] = value;
    }
    if (covered) return 0.0;
    ++count;
  }
  return box - volume_small(limit, count, d - 1, projected_ref);
}

}  // namespace

void small_set(const PointSet& members, const PointSet& boundary, const int* boundary_axes, const double* ref,
               double* hv, double* contributions, double* faces, double* boundary_faces, double* projected) {
  const int n = static_cast<int>(members.size()), d = members.d;
  if (hv && !contributions && !faces && !boundary_faces && !projected) {  // the sweeps skip dominated rows
    *hv = volume_small(members.values.data(), n, d, ref);
    return;
  }
  // Rows that another row beats in every objective add no volume, have no face, and never shape a face; for
  // the contribution of row i they matter only when i is the one row that beats them.
  double kept[kMax * 3];
  int kept_count = 0;
  int beater[kMax], beaters[kMax];
  bool beaten[kMax];
  int by_first[kMax];  // only a row earlier in the first objective can beat a row
  sort_by(by_first, n, members.values.data(), d, 0);
  for (int a = 0; a < n; ++a) {
    const int i = by_first[a];
    beaters[i] = 0;
    beater[i] = -1;
    for (int b = 0; b < a && beaters[i] < 2; ++b)
      if (all_less(members.row(by_first[b]), members.row(i), d)) beater[i] = by_first[b], beaters[i] += 1;
  }
  for (int i = 0; i < n; ++i) {
    beaten[i] = beaters[i] > 0;
    if (!beaten[i])
      for (int k = 0; k < d; ++k) kept[kept_count * d + k] = members.row(i)[k];
    kept_count += !beaten[i];
  }
  if (hv) *hv = volume_small(kept, kept_count, d, ref);
  if (contributions) {
    double limit[kMax * 3];
    for (int i = 0; i < n; ++i) {
      const double* p = members.row(i);
      bool covered = false;
      int count = 0;
      for (int j = 0; j < n && !covered; ++j) {
        if (j == i || beaters[j] > 1 || (beaters[j] == 1 && beater[j] != i)) continue;
        covered = all_at_most(members.row(j), p, d);
        for (int k = 0; k < d; ++k) limit[count * d + k] = members.row(j)[k] > p[k] ? members.row(j)[k] : p[k];
        ++count;
      }
      double box = 1.0;
      for (int k = 0; k < d; ++k) box *= ref[k] - p[k];
      contributions[i] = covered ? 0.0 : box - volume_small(limit, count, d, ref);
    }
  }
  if (faces)
    for (int i = 0; i < n; ++i)
      for (int k = 0; k < d; ++k)
        faces[i * d + k] = beaten[i] ? 0.0 : face_small(kept, kept_count, d, members.row(i), k, ref);
  if (boundary_faces)
    for (size_t b = 0; b < boundary.size(); ++b)
      boundary_faces[b] = face_small(kept, kept_count, d, boundary.row(b), boundary_axes[b], ref);
  if (projected) {
    for (int k = 0; k < d; ++k) {
      double rows[kMax * 2], projected_ref[2];
      int count = 0;
      auto add = [&](const double* p) {
        for (int l = 0, m = 0; l < d; ++l)
          if (l != k) rows[count * (d - 1) + m++] = p[l];
        ++count;
      };
      for (int i = 0; i < kept_count; ++i) add(kept + i * d);
      for (size_t b = 0; b < boundary.size(); ++b)
        if (boundary_axes[b] == k) add(boundary.row(b));
      for (int l = 0, m = 0; l < d; ++l)
        if (l != k) projected_ref[m++] = ref[l];
      projected[k] = volume_small(rows, count, d - 1, projected_ref);
    }
  }
}

}  // namespace moafast::cpu::hv
