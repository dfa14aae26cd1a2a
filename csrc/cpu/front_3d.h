// The 3-D front of a 4-D (or 5-D) sweep as columns in x order and in z order, and the exclusive 3-D volume a row
// adds to it: the per-row step of the sweeps in hv_volume_4d.cpp and hv_volume_5d.cpp. O(front) per row.
#pragma once

#include <algorithm>
#include <cstddef>
#include <vector>

#include "array_staircase.h"

namespace moafast::cpu::hv {

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
inline double exclusive_3d(const double* q, const FrontColumns& by_x, const FrontColumns& by_z, const double* ref,
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

}  // namespace moafast::cpu::hv
