// A 2-D staircase (the region a set of points dominates in two objectives, minimisation) in sorted arrays: x
// ascending, y descending. Inserting costs a short scan and a shift, cheaper than a tree while the staircase is
// small (clipped fronts in the 4-D sweep, small sets in the 3-D sweep).
#pragma once

#include <algorithm>
#include <cstddef>
#include <vector>

namespace moafast::cpu {

struct ArrayStaircase {
  std::vector<double> xs, ys;
  size_t size = 0;

  // Empty, with room for `capacity` steps.
  void reserve(size_t capacity) {
    if (xs.size() < capacity) {
      xs.resize(capacity);
      ys.resize(capacity);
    }
    size = 0;
  }

  // First step with xs >= x: a linear scan while the staircase is short.
  size_t first_at_or_after(double x) const {
    if (size <= 32) {
      size_t position = 0;
      while (position < size && xs[position] < x) ++position;
      return position;
    }
    return std::lower_bound(xs.begin(), xs.begin() + size, x) - xs.begin();
  }

  // Adds the step (x, y) and returns the area it adds under the reference (ref_x, ref_y): 0 when a step
  // weakly dominates it. Needs room for one more step.
  double insert(double x, double y, double ref_x, double ref_y) {
    const size_t position = first_at_or_after(x);
    if (position < size && xs[position] == x && ys[position] <= y) return 0.0;
    if (position > 0 && ys[position - 1] <= y) return 0.0;
    double added = 0.0, top = position > 0 ? ys[position - 1] : ref_y, left = x;
    size_t end = position;
    for (; end < size && ys[end] >= y; ++end) {
      added += (xs[end] - left) * (top - y);
      left = xs[end];
      top = ys[end];
    }
    added += ((end < size ? xs[end] : ref_x) - left) * (top - y);
    if (end == position) {  // nothing covered: make room
      for (size_t k = size; k > position; --k) {
        xs[k] = xs[k - 1];
        ys[k] = ys[k - 1];
      }
      ++size;
    } else if (end > position + 1) {  // (x, y) replaces the steps it covers
      const size_t gap = end - position - 1;
      for (size_t k = end; k < size; ++k) {
        xs[k - gap] = xs[k];
        ys[k - gap] = ys[k];
      }
      size -= gap;
    }
    xs[position] = x;
    ys[position] = y;
    return added;
  }
};

}  // namespace moafast::cpu
