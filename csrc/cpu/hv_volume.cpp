#include <algorithm>
#include <cstddef>
#include <map>
#include <numeric>
#include <vector>

#include "block_arena.h"
#include "hv_algorithms.h"
#include "sort_by_key.h"

namespace moafast::cpu::hv {
namespace {

double box_volume(const double* point, const double* ref, int d) {
  double volume = 1.0;
  for (int k = 0; k < d; ++k) volume *= ref[k] - point[k];
  return volume;
}

// The 2-D dominated region of a staircase (x ascending, y descending) and its area, with insertion that
// returns the area a new point adds.
class Staircase {
 public:
  Staircase(double ref_x, double ref_y)
      : steps_(ArenaAllocator<std::pair<const double, double>>(&arena_)), ref_x_(ref_x), ref_y_(ref_y) {}

  double insert(double x, double y) {
    auto next = steps_.lower_bound(x);
    if (next != steps_.end() && next->first == x && next->second <= y) return 0.0;
    double top = ref_y_;
    if (next != steps_.begin()) {
      auto previous = std::prev(next);
      if (previous->second <= y) return 0.0;
      top = previous->second;
    }
    double added = 0.0, left = x;
    while (next != steps_.end() && next->second >= y) {
      added += (next->first - left) * (top - y);
      left = next->first;
      top = next->second;
      next = steps_.erase(next);
    }
    added += ((next == steps_.end() ? ref_x_ : next->first) - left) * (top - y);
    steps_.emplace_hint(next, x, y);
    area_ += added;
    return added;
  }

  double area() const { return area_; }

 private:
  BlockArena arena_;  // before steps_: the map's nodes live in it
  std::map<double, double, std::less<double>, ArenaAllocator<std::pair<const double, double>>> steps_;
  double ref_x_, ref_y_, area_ = 0.0;
};

std::vector<size_t> order_by(const PointSet& points, int key) {
  std::vector<size_t> order(points.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const double* pa = points.row(a);
    const double* pb = points.row(b);
    if (pa[key] != pb[key]) return pa[key] < pb[key];
    return std::lexicographical_compare(pa, pa + points.d, pb, pb + points.d);
  });
  return order;
}

bool weakly_dominates(const double* a, const double* b, int d) {
  for (int k = 0; k < d; ++k)
    if (a[k] > b[k]) return false;
  return true;
}

// The 3-D volume that `q` adds to a front: its box minus the union of {max(q, f)}, swept over the front in
// the third objective with the clipped (x, y) staircase on arrays; stops once q's (x, y) box is covered.
double exclusive_3d(const double* q, const std::vector<const double*>& front_by_z, const double* ref,
                    std::vector<double>& xs, std::vector<double>& ys) {
  const double box_area = (ref[0] - q[0]) * (ref[1] - q[1]);
  xs.clear();
  ys.clear();
  double covered_area = 0.0, covered_volume = 0.0, height = q[2];
  for (const double* f : front_by_z) {
    if (f[2] > height) {
      covered_volume += covered_area * (f[2] - height);
      height = f[2];
    }
    const double x = std::max(q[0], f[0]), y = std::max(q[1], f[1]);
    const size_t position = std::lower_bound(xs.begin(), xs.end(), x) - xs.begin();
    if (position < xs.size() && xs[position] == x && ys[position] <= y) continue;
    if (position > 0 && ys[position - 1] <= y) continue;
    double top = position > 0 ? ys[position - 1] : ref[1], left = x;
    size_t end = position;
    for (; end < xs.size() && ys[end] >= y; ++end) {
      covered_area += (xs[end] - left) * (top - y);
      left = xs[end];
      top = ys[end];
    }
    covered_area += ((end < xs.size() ? xs[end] : ref[0]) - left) * (top - y);
    xs.erase(xs.begin() + position, xs.begin() + end);
    ys.erase(ys.begin() + position, ys.begin() + end);
    xs.insert(xs.begin() + position, x);
    ys.insert(ys.begin() + position, y);
    if (covered_area >= box_area) break;  // covered from here up
  }
  covered_volume += covered_area * (ref[2] - height);
  return box_area * (ref[2] - q[2]) - covered_volume;
}

// d = 4: sweep the fourth objective, adding each row's exclusive 3-D volume to the running 3-D volume of
// the rows below it; the 3-D front (sorted by the third objective) drops rows a new one dominates. O(n^2).
double volume_4d(const PointSet& points, const double* ref) {
  std::vector<const double*> front;  // nondominated in the first three objectives, by the third
  std::vector<double> xs, ys;
  double volume_3d_so_far = 0.0, total = 0.0, level = 0.0;
  bool started = false;
  for (size_t i : order_by(points, 3)) {
    const double* q = points.row(i);
    if (started) total += volume_3d_so_far * (q[3] - level);
    level = q[3];
    started = true;
    const double added = exclusive_3d(q, front, ref, xs, ys);
    if (added <= 0.0) continue;
    volume_3d_so_far += added;
    front.erase(std::remove_if(front.begin(), front.end(),
                               [&](const double* f) { return weakly_dominates(q, f, 3); }),
                front.end());
    front.insert(std::upper_bound(front.begin(), front.end(), q,
                                  [](const double* a, const double* b) { return a[2] < b[2]; }),
                 q);
  }
  return started ? total + volume_3d_so_far * (ref[3] - level) : 0.0;
}

}  // namespace

double volume_2d(const PointSet& points, const double* ref) {
  std::vector<KeyedRow> by_x(points.size());  // ties in x: any order gives the same steps
  for (size_t i = 0; i < by_x.size(); ++i) by_x[i] = {points.row(i)[0], i};
  sort_by_key(by_x);
  double area = 0.0, level = ref[1];
  for (const auto& [x, i] : by_x) {
    const double y = points.row(i)[1];
    if (y < level) {
      area += (ref[0] - x) * (level - y);
      level = y;
    }
  }
  return area;
}

double volume_3d(const PointSet& points, const double* ref) {
  Staircase staircase(ref[0], ref[1]);
  double volume = 0.0, z = 0.0;
  bool started = false;
  std::vector<KeyedRow> by_z(points.size());  // ties in z add no volume between them
  for (size_t i = 0; i < by_z.size(); ++i) by_z[i] = {points.row(i)[2], i};
  sort_by_key(by_z);
  for (const auto& [height, i] : by_z) {
    const double* p = points.row(i);
    if (started) volume += staircase.area() * (height - z);
    staircase.insert(p[0], p[1]);
    z = height;
    started = true;
  }
  return started ? volume + staircase.area() * (ref[2] - z) : 0.0;
}

// Nondominated rows of `candidates` (duplicates kept once), sorted by the first objective.
PointSet nondominated(PointSet candidates) {
  const int d = candidates.d;
  PointSet kept{{}, d};
  for (size_t i : order_by(candidates, 0)) {
    const double* p = candidates.row(i);
    bool dominated = false;
    for (size_t j = 0; j < kept.size() && !dominated; ++j) dominated = weakly_dominates(kept.row(j), p, d);
    if (!dominated) kept.values.insert(kept.values.end(), p, p + d);
  }
  return kept;
}

double volume(const PointSet& points, const double* ref) {
  const size_t n = points.size();
  const int d = points.d;
  if (n == 0) return 0.0;
  if (n == 1) return box_volume(points.row(0), ref, d);
  if (d == 1) {
    double best = ref[0];
    for (size_t i = 0; i < n; ++i) best = std::min(best, points.row(i)[0]);
    return ref[0] - best;
  }
  if (d == 2) return volume_2d(points, ref);
  if (d == 3) return volume_3d(points, ref);
  if (d == 4) return volume_4d(points, ref);
  // WFG: worst last objective first; every later point q has q_d <= p_d, so the limit set
  // {max(p, q)} lies in the slab at p_d and its volume is (r_d - p_d) times a (d-1)-volume.
  std::vector<size_t> order = order_by(points, d - 1);
  std::reverse(order.begin(), order.end());
  double total = 0.0;
  PointSet limit{{}, d - 1};
  for (size_t a = 0; a < n; ++a) {
    const double* p = points.row(order[a]);
    limit.values.clear();
    bool covered = false;
    for (size_t b = a + 1; b < n && !covered; ++b) {
      const double* q = points.row(order[b]);
      covered = weakly_dominates(q, p, d - 1);
      for (int k = 0; k < d - 1; ++k) limit.values.push_back(std::max(p[k], q[k]));
    }
    if (covered) continue;  // a later point covers p's whole slab
    // The sweeps of d - 1 <= 4 ignore dominated rows by themselves; WFG levels shrink the set first.
    const double limit_volume = d - 1 <= 4 ? volume(limit, ref) : volume(nondominated(std::move(limit)), ref);
    limit = PointSet{{}, d - 1};
    const double exclusive = box_volume(p, ref, d - 1) - limit_volume;
    total += (ref[d - 1] - p[d - 1]) * exclusive;
  }
  return total;
}

}  // namespace moafast::cpu::hv
