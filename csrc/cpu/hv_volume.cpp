#include <algorithm>
#include <cstddef>
#include <map>
#include <numeric>
#include <vector>

#include "hv_algorithms.h"

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
  Staircase(double ref_x, double ref_y) : ref_x_(ref_x), ref_y_(ref_y) {}

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
  std::map<double, double> steps_;
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

}  // namespace

double volume_2d(const PointSet& points, const double* ref) {
  double area = 0.0, level = ref[1];
  for (size_t i : order_by(points, 0)) {
    const double* p = points.row(i);
    if (p[1] < level) {
      area += (ref[0] - p[0]) * (level - p[1]);
      level = p[1];
    }
  }
  return area;
}

double volume_3d(const PointSet& points, const double* ref) {
  Staircase staircase(ref[0], ref[1]);
  double volume = 0.0, z = 0.0;
  bool started = false;
  for (size_t i : order_by(points, 2)) {
    const double* p = points.row(i);
    if (started) volume += staircase.area() * (p[2] - z);
    staircase.insert(p[0], p[1]);
    z = p[2];
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
    // The sweeps of d - 1 <= 3 ignore dominated rows by themselves; WFG levels shrink the set first.
    const double limit_volume = d - 1 <= 3 ? volume(limit, ref) : volume(nondominated(std::move(limit)), ref);
    limit = PointSet{{}, d - 1};
    const double exclusive = box_volume(p, ref, d - 1) - limit_volume;
    total += (ref[d - 1] - p[d - 1]) * exclusive;
  }
  return total;
}

}  // namespace moafast::cpu::hv
