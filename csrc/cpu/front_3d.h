// The 3-D front of a 4-D (or 5-D) sweep as columns in x order and in z order, the exclusive 3-D volume a row
// adds to it, and the row's insertion: the per-row step of the sweeps in hv_volume_4d.cpp and hv_volume_5d.cpp.
// O(front) per row.
#pragma once

#include <algorithm>
#include <cstddef>
#include <vector>

#include "array_staircase.h"

namespace moafast::cpu::hv {

// Two doubles in one vector register (a GCC/Clang vector extension). Written on scalars, the per-row selects and
// comparisons below compile to branches, mispredicted about half the time.
typedef double Double2 __attribute__((vector_size(16)));

inline Double2 load2(const double* values) {
  Double2 pair;
  __builtin_memcpy(&pair, values, sizeof pair);
  return pair;
}

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

  // The rows just before q's place `at` that share q's `key` column stay there unless q dominates them,
  // compacted; returns the slot where q goes.
  size_t keep_ties(const double* q, int key, size_t at) {
    const std::vector<double>& keys = key == 0 ? x : z;
    size_t first = at;
    while (first > 0 && keys[first - 1] == q[key]) --first;
    size_t write = first;
    for (size_t j = first; j < at; ++j) {
      if (dominated_by(q, j)) continue;
      x[write] = x[j];
      y[write] = y[j];
      z[write] = z[j];
      ++write;
    }
    return write;
  }

  // Where q goes in the `key` order: after the rows whose key is at most its own.
  size_t place_of(const double* q, int key) const {
    const std::vector<double>& keys = key == 0 ? x : z;
    return std::upper_bound(keys.begin(), keys.begin() + size, q[key]) - keys.begin();
  }

 private:
  bool dominated_by(const double* q, size_t j) const { return (q[0] <= x[j]) & (q[1] <= y[j]) & (q[2] <= z[j]); }
};

// Puts q into a front order at slot `write` (from FrontColumns::keep_ties) while a pass reads the rows after
// its place in order: each row q does not weakly dominate moves into the slot after it (q's into the first).
class CarriedInsert {
 public:
  CarriedInsert(FrontColumns& rows, const double* q, size_t write)
      : rows_(rows), q_(q), write_(write), x_(q[0]), y_(q[1]), z_(q[2]) {}

  void pass(double x, double y, double z) {
    if ((q_[0] <= x) & (q_[1] <= y) & (q_[2] <= z)) return;  // one branch, rarely taken
    rows_.x[write_] = x_;
    rows_.y[write_] = y_;
    rows_.z[write_] = z_;
    x_ = x, y_ = y, z_ = z;
    ++write_;
  }

  void finish() {
    rows_.x[write_] = x_;
    rows_.y[write_] = y_;
    rows_.z[write_] = z_;
    rows_.size = write_ + 1;
  }

 private:
  FrontColumns& rows_;
  const double* q_;
  size_t write_;
  double x_, y_, z_;
};

// Drops the rows q weakly dominates and puts q into the `key` order at its place `at`, in one pass over the rows
// after it.
inline void insert_row(FrontColumns& rows, const double* q, int key, size_t at) {
  CarriedInsert into(rows, q, rows.keep_ties(q, key, at));
  for (size_t j = at; j < rows.size; ++j) into.pass(rows.x[j], rows.y[j], rows.z[j]);
  into.finish();
}

// The lowest y among the first `count` rows with z <= level (`none` if there is none): a masked minimum over
// independent lanes (a running minimum would chain every row to the one before).
inline double lowest_y_at_or_below(const FrontColumns& rows, size_t count, double level, double none) {
  const double* ys = rows.y.data();
  const double* zs = rows.z.data();
  const Double2 nones = {none, none}, levels = {level, level};
  Double2 lowest_a = nones, lowest_b = nones;
  size_t j = 0;
  for (; j + 4 <= count; j += 4) {
    const Double2 kept_a = load2(zs + j) <= levels ? load2(ys + j) : nones;
    const Double2 kept_b = load2(zs + j + 2) <= levels ? load2(ys + j + 2) : nones;
    lowest_a = kept_a < lowest_a ? kept_a : lowest_a;
    lowest_b = kept_b < lowest_b ? kept_b : lowest_b;
  }
  double lowest = std::min(std::min(lowest_a[0], lowest_a[1]), std::min(lowest_b[0], lowest_b[1]));
  for (; j < count; ++j)
    if (zs[j] <= level) lowest = std::min(lowest, ys[j]);
  return lowest;
}

// Appends the step (x, y), below `level`, to a staircase built in ascending x (replacing a step at the same x),
// adds the area it covers between y and `level` to covered_area, and lowers `level` to y.
// Forced inline: GCC kept it a call, 2% slower in the 4-D sweep.
[[gnu::always_inline]] inline void append_step(ArrayStaircase& staircase, size_t& steps, double x, double y,
                                               double ref_x, double& level, double& covered_area) {
  covered_area += (ref_x - x) * (level - y);
  if (steps > 0 && staircase.xs[steps - 1] == x) --steps;
  staircase.xs[steps] = x;
  staircase.ys[steps] = y;
  ++steps;
  level = y;
}

// The staircase at q's level from the rows left of q (the first `right` rows in x order, x <= q_x): they all
// clip to q_x, so only the lowest y among those at or below q's level counts, as its first step (`steps`,
// `level` and `covered_area` start from there). False when one of them covers q.
inline bool start_from_the_left(const double* q, const FrontColumns& by_x, size_t right, const double* ref,
                                ArrayStaircase& staircase, size_t& steps, double& level, double& covered_area) {
  const double left_y = std::max(q[1], lowest_y_at_or_below(by_x, right, q[2], ref[1]));
  if (left_y == q[1]) return false;  // a row left of q and below it in y and z covers q
  if (left_y < ref[1]) {
    covered_area = (ref[0] - q[0]) * (ref[1] - left_y);
    staircase.xs[0] = q[0];
    staircase.ys[0] = left_y;
    steps = 1;
    level = left_y;
  }
  return true;
}

// The 3-D volume that q adds to a short front (where any row may cover q): its box minus the union of
// {max(q, f)}. The front rows at or below q's third objective form the staircase at q's level in one pass in x
// order; the rows above come in order of their third objective, until q's (x, y) box is covered (from there up
// nothing is exclusive). `above`: q's place in the z order.
inline double exclusive_3d(const double* q, const FrontColumns& by_x, const FrontColumns& by_z, size_t above,
                           const double* ref, ArrayStaircase& staircase) {
  const double box_area = (ref[0] - q[0]) * (ref[1] - q[1]);
  size_t size = 0;
  double level = ref[1], covered_area = 0.0;
  for (size_t j = 0; j < by_x.size; ++j) {
    const double x = std::max(q[0], by_x.x[j]), y = std::max(q[1], by_x.y[j]);
    if ((by_x.z[j] > q[2]) | (y >= level)) continue;
    if (x == q[0] && y == q[1]) return 0.0;
    append_step(staircase, size, x, y, ref[0], level, covered_area);
    if (level == q[1]) break;  // no later row clips below q_y: the staircase at q's level is complete
  }
  staircase.size = size;
  double covered_volume = 0.0, height = q[2];
  for (size_t j = above; j < by_z.size && covered_area < box_area; ++j) {
    covered_volume += covered_area * (by_z.z[j] - height);
    height = by_z.z[j];
    const double x = std::max(q[0], by_z.x[j]), y = std::max(q[1], by_z.y[j]);
    if (x == q[0] && y == q[1]) {  // the row covers q's (x, y) box from here up (the summed area may fall short
      covered_area = box_area;     // of it by rounding, which would keep the loop going)
      break;
    }
    covered_area += staircase.insert(x, y, ref[0], ref[1]);
  }
  covered_volume += covered_area * (ref[2] - height);
  return box_area * (ref[2] - q[2]) - covered_volume;
}

// The 3-D volume q adds to the front, and q put into the front in both orders (the rows it weakly dominates
// dropped) unless a row covers it: then 0, and nothing changes. A short front goes through exclusive_3d and
// insert_row. On a long front the rows left of q in x (x <= q_x) come first: they all clip to q_x, so one masked
// minimum decides whether one covers q, and no other row can. The x-order pass that builds the staircase at q's
// level and the walk up the third objective then also move their order's rows on past q's place as they read
// them.
inline double add_exclusive_3d(const double* q, FrontColumns& by_x, FrontColumns& by_z, const double* ref,
                               ArrayStaircase& staircase) {
  constexpr size_t kLongFrom = 8;  // on a shorter front the plain pass often meets a covering row within a few
  if (by_x.size < kLongFrom) {
    const size_t above = by_z.place_of(q, 2);
    const double added = exclusive_3d(q, by_x, by_z, above, ref, staircase);
    if (added > 0.0) {
      insert_row(by_x, q, 0, by_x.place_of(q, 0));
      insert_row(by_z, q, 2, above);
    }
    return added;
  }
  const double box_area = (ref[0] - q[0]) * (ref[1] - q[1]);
  const size_t right = by_x.place_of(q, 0);
  size_t steps = 0;
  double level = ref[1], covered_area = 0.0;
  if (!start_from_the_left(q, by_x, right, ref, staircase, steps, level, covered_area)) return 0.0;
  CarriedInsert into_x(by_x, q, by_x.keep_ties(q, 0, right));
  for (size_t j = right; j < by_x.size; ++j) {  // every x here exceeds q's: the row's clipped x is its own
    const double x = by_x.x[j], row_y = by_x.y[j], z = by_x.z[j];
    const double y = std::max(q[1], row_y);
    if (level > q[1] && !(z > q[2]) && y < level) append_step(staircase, steps, x, y, ref[0], level, covered_area);
    into_x.pass(x, row_y, z);
  }
  into_x.finish();
  staircase.size = steps;
  const size_t above = by_z.place_of(q, 2);
  double covered_volume = 0.0, height = q[2];
  CarriedInsert into_z(by_z, q, by_z.keep_ties(q, 2, above));
  for (size_t j = above; j < by_z.size; ++j) {
    const double row_x = by_z.x[j], row_y = by_z.y[j], z = by_z.z[j];
    if (covered_area < box_area) {
      covered_volume += covered_area * (z - height);
      height = z;
      const double x = std::max(q[0], row_x), y = std::max(q[1], row_y);
      if (x == q[0] && y == q[1])  // covers q's (x, y) box from here up (see exclusive_3d)
        covered_area = box_area;
      else
        covered_area += staircase.insert(x, y, ref[0], ref[1]);
    }
    into_z.pass(row_x, row_y, z);
  }
  into_z.finish();
  covered_volume += covered_area * (ref[2] - height);
  return box_area * (ref[2] - q[2]) - covered_volume;
}

}  // namespace moafast::cpu::hv
