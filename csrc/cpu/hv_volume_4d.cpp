// d = 4: a sweep of the fourth objective. Each row adds its exclusive 3-D volume against the rows below it (those
// nondominated in the first three objectives: the 3-D front); the running 3-D volume times the gaps in the fourth
// objective is the hypervolume. O(n^2): per row one pass over the front.
#include <algorithm>
#include <cstddef>
#include <vector>

#include "array_staircase.h"
#include "front_3d.h"
#include "hv_algorithms.h"
#include "sort_by_key.h"
#include "thread_scratch.h"

namespace moafast::cpu::hv {
namespace {

struct Sweep4dScratch {
  FrontColumns by_x, by_z;
  ArrayStaircase staircase;
  std::vector<size_t> front;
  std::vector<KeyedRow> front_by_x;
};

}  // namespace

double volume_4d_in_order(const PointSet& rows, const double* ref, const double* cover) {
  const size_t n = rows.size();
  // Reused across calls: 4-D contributions run this sweep once per point on its limit set.
  auto& [by_x, by_z, staircase, front, front_by_x] = thread_scratch<Sweep4dScratch>();
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
    volume_3d_so_far += add_exclusive_3d(q, by_x, by_z, ref, staircase);
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
