// d = 4: a sweep of the fourth objective. Each row adds its exclusive 3-D volume against the rows below it (those
// nondominated in the first three objectives: the 3-D front); the running 3-D volume times the gaps in the fourth
// objective is the hypervolume. O(n^2): per row one pass over the front.
#include <algorithm>
#include <cstddef>
#include <vector>

#include "array_staircase.h"
#include "hv_algorithms.h"
#include "sort_by_key.h"

namespace moafast::cpu::hv {
namespace {

// The 3-D front as columns in one order (ascending third objective, or ascending first), so that a row's pass
// reads it sequentially. Capacity for every row: updates never allocate.
struct FrontColumns {
  std::vector<double> x, y, z;
  size_t size = 0;

  // Empty, with room for `capacity` rows.
  void reset(size_t capacity) {
    if (x.size() < capacity) {
      x.resize(capacity);
      y.resize(capacity);
      z.resize(capacity);
    }
    size = 0;
  }

  // Drops the rows q weakly dominates, then puts q after the rows whose `key` column is at most q's.
  void update(const double* q, int key) {
    const std::vector<double>& keys = key == 0 ? x : z;
    // Rows with a lower key are not dominated by q; the others seldom are, so rows move only after a removal.
    size_t kept = std::lower_bound(keys.begin(), keys.begin() + size, q[key]) - keys.begin();
    for (; kept + 8 <= size; kept += 8) {  // blocks of rows none of which q dominates stay where they are
      bool any = false;
      for (size_t t = kept; t < kept + 8; ++t) any |= (q[0] <= x[t]) & (q[1] <= y[t]) & (q[2] <= z[t]);
      if (any) break;
    }
    for (size_t j = kept; j < size; ++j) {
      if ((q[0] <= x[j]) & (q[1] <= y[j]) & (q[2] <= z[j])) continue;  // one branch, rarely taken
      if (kept != j) {
        x[kept] = x[j];
        y[kept] = y[j];
        z[kept] = z[j];
      }
      ++kept;
    }
    const size_t at = std::upper_bound(keys.begin(), keys.begin() + kept, q[key]) - keys.begin();
    std::copy_backward(x.begin() + at, x.begin() + kept, x.begin() + kept + 1);
    std::copy_backward(y.begin() + at, y.begin() + kept, y.begin() + kept + 1);
    std::copy_backward(z.begin() + at, z.begin() + kept, z.begin() + kept + 1);
    x[at] = q[0];
    y[at] = q[1];
    z[at] = q[2];
    size = kept + 1;
  }
};

// The 3-D volume that q adds to the front: its box minus the union of {max(q, f)}. The front rows at or below
// q's third objective form the staircase at q's level in one pass in x order; the rows above come in order of
// their third objective, until q's (x, y) box is covered (from there up nothing is exclusive).
double exclusive_3d(const double* q, const FrontColumns& by_x, const FrontColumns& by_z, const double* ref,
                    ArrayStaircase& staircase) {
  const double box_area = (ref[0] - q[0]) * (ref[1] - q[1]);
  size_t size = 0;
  double level = ref[1], covered_area = 0.0;
  for (size_t j = 0; j < by_x.size; ++j) {
    const double x = std::max(q[0], by_x.x[j]), y = std::max(q[1], by_x.y[j]);
    if ((by_x.z[j] > q[2]) | (y >= level)) continue;
    if (x == q[0] && y == q[1]) return 0.0;
    covered_area += (ref[0] - x) * (level - y);
    if (size > 0 && staircase.xs[size - 1] == x) --size;
    staircase.xs[size] = x;
    staircase.ys[size] = y;
    ++size;
    level = y;
    if (level == q[1]) break;  // no later row clips below q_y: the staircase at q's level is complete
  }
  staircase.size = size;
  double covered_volume = 0.0, height = q[2];
  for (size_t j = std::upper_bound(by_z.z.begin(), by_z.z.begin() + by_z.size, q[2]) - by_z.z.begin();
       j < by_z.size && covered_area < box_area; ++j) {
    covered_volume += covered_area * (by_z.z[j] - height);
    height = by_z.z[j];
    covered_area += staircase.insert(std::max(q[0], by_z.x[j]), std::max(q[1], by_z.y[j]), ref[0], ref[1]);
  }
  covered_volume += covered_area * (ref[2] - height);
  return box_area * (ref[2] - q[2]) - covered_volume;
}

}  // namespace

double volume_4d_in_order(const PointSet& rows, const double* ref, const double* cover) {
  const size_t n = rows.size();
  // Reused across calls: the d >= 5 recursion runs this sweep once per point on small limit sets.
  thread_local FrontColumns by_x, by_z;
  thread_local ArrayStaircase staircase;
  thread_local std::vector<size_t> front;
  thread_local std::vector<KeyedRow> front_by_x;
  by_x.reset(n + 1);
  by_z.reset(n + 1);
  staircase.reserve(n + 1);
  double volume_3d_so_far = 0.0, total = 0.0, level = n > 0 ? rows.row(0)[3] : 0.0;
  size_t first = 0;  // the rows at the lowest level (a limit set's rows below cover): one 3-D sweep
  while (first < n && rows.row(first)[3] == level) ++first;
  if (first > 1) {
    const RowSpan base(rows.values.data(), first, rows.d);
    for (size_t t = 0; t < first; ++t) {
      const double* q = base.row(t);
      if (cover != nullptr && q[0] == cover[0] && q[1] == cover[1] && q[2] == cover[2])
        return (ref[0] - cover[0]) * (ref[1] - cover[1]) * (ref[2] - cover[2]) * (ref[3] - level);
    }
    front.clear();
    volume_3d_so_far = volume_3d(base, ref, &front);
    front_by_x.resize(front.size());
    for (size_t f = 0; f < front.size(); ++f) {
      const double* q = base.row(front[f]);
      by_z.x[f] = q[0];
      by_z.y[f] = q[1];
      by_z.z[f] = q[2];
      front_by_x[f] = {q[0], front[f]};
    }
    sort_by_key(front_by_x);  // ties in x: any order (the x-order pass merges equal x)
    for (size_t f = 0; f < front.size(); ++f) {
      const double* q = base.row(front_by_x[f].second);
      by_x.x[f] = q[0];
      by_x.y[f] = q[1];
      by_x.z[f] = q[2];
    }
    by_x.size = by_z.size = front.size();
  } else {
    first = 0;
  }
  for (size_t t = first; t < n; ++t) {
    const double* q = rows.row(t);
    total += volume_3d_so_far * (q[3] - level);
    level = q[3];
    if (cover != nullptr && q[0] == cover[0] && q[1] == cover[1] && q[2] == cover[2]) {
      volume_3d_so_far = (ref[0] - cover[0]) * (ref[1] - cover[1]) * (ref[2] - cover[2]);
      break;
    }
    const double added = exclusive_3d(q, by_x, by_z, ref, staircase);
    if (added <= 0.0) continue;
    volume_3d_so_far += added;
    by_x.update(q, 0);
    by_z.update(q, 2);
  }
  return total + volume_3d_so_far * (ref[3] - level);
}

double volume_4d(const PointSet& points, const double* ref) {
  PointSet sorted{{}, points.d};  // ties in the fourth objective: any order (no volume between them)
  sorted.values.reserve(points.values.size());
  for (size_t i : ascending_rows(points, 3))
    sorted.values.insert(sorted.values.end(), points.row(i), points.row(i) + 4);
  return volume_4d_in_order(sorted, ref, nullptr);
}

}  // namespace moafast::cpu::hv
