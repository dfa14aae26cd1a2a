#include <algorithm>
#include <cstddef>
#include <limits>
#include <map>
#include <vector>

#include "array_staircase.h"
#include "block_arena.h"
#include "hv_algorithms.h"
#include "sort_by_key.h"
#include "thread_scratch.h"

namespace moafast::cpu::hv {
namespace {

double box_volume(const double* point, const double* ref, int d) {
  double volume = 1.0;
  for (int k = 0; k < d; ++k) volume *= ref[k] - point[k];
  return volume;
}

// The 2-D dominated region of a staircase (x ascending, y descending) in a balanced tree, with insertion that
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
    return added;
  }

 private:
  BlockArena arena_;  // before steps_: the map's nodes live in it
  std::map<double, double, std::less<double>, ArenaAllocator<std::pair<const double, double>>> steps_;
  double ref_x_, ref_y_;
};

struct Sweep3dScratch {
  std::vector<KeyedRow> by_z;
  ArrayStaircase steps;  // the staircase of sweeps up to kArrayRows rows
};

bool weakly_dominates(const double* a, const double* b, int d) {
  bool all = true;
  for (int k = 0; k < d; ++k) all &= a[k] <= b[k];  // no early exit: the branches would be unpredictable
  return all;
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

double volume_3d(RowSpan points, const double* ref, std::vector<size_t>* front) {
  // Up to this many rows the staircase lives in arrays (no tree nodes): the 4-D sweep's limit sets are small.
  constexpr size_t kArrayRows = 256;
  Sweep3dScratch& scratch = thread_scratch<Sweep3dScratch>();
  std::vector<KeyedRow>& by_z = scratch.by_z;
  ArrayStaircase& steps = scratch.steps;
  by_z.resize(points.size());  // ties in z add no volume between them
  for (size_t i = 0; i < by_z.size(); ++i) by_z[i] = {points.row(i)[2], i};
  sort_by_key(by_z);
  const auto sweep = [&](auto&& insert) {
    double volume = 0.0, area = 0.0, z = by_z.empty() ? 0.0 : by_z[0].first;
    for (const auto& [height, i] : by_z) {
      volume += area * (height - z);
      const double added = insert(points.row(i));
      area += added;
      if (added > 0.0 && front != nullptr) front->push_back(i);
      z = height;
    }
    return volume + area * (ref[2] - z);
  };
  if (points.size() <= kArrayRows) {
    steps.reserve(points.size() + 1);
    return sweep([&](const double* p) { return steps.insert(p[0], p[1], ref[0], ref[1]); });
  }
  Staircase staircase(ref[0], ref[1]);
  return sweep([&](const double* p) { return staircase.insert(p[0], p[1]); });
}

// Nondominated rows of `candidates` (duplicates kept once), sorted by the first objective.
PointSet nondominated(const PointSet& candidates) {
  const int d = candidates.d;
  const size_t n = candidates.size();
  std::vector<KeyedRow> by_first(n);
  for (size_t i = 0; i < n; ++i) by_first[i] = {candidates.row(i)[0], i};
  sort_by_key(by_first);
  for (size_t a = 0; a < n;) {  // equal first objectives in lexicographic order: a dominating row comes first
    size_t b = a + 1;
    while (b < n && by_first[b].first == by_first[a].first) ++b;
    if (b - a > 1)
      std::sort(by_first.begin() + a, by_first.begin() + b, [&](const KeyedRow& x, const KeyedRow& y) {
        const double* px = candidates.row(x.second);
        const double* py = candidates.row(y.second);
        return std::lexicographical_compare(px, px + d, py, py + d);
      });
    a = b;
  }
  // The kept rows as columns in blocks of 8 (+inf past the last: never dominating), checked a block at a time
  // without branches inside it.
  constexpr size_t kBlock = 8;
  const size_t capacity = (n + kBlock - 1) / kBlock * kBlock;
  std::vector<double> columns(capacity * d, std::numeric_limits<double>::infinity());
  PointSet kept{{}, d};
  size_t count = 0;
  for (const auto& [first, i] : by_first) {
    const double* p = candidates.row(i);
    bool dominated = false;
    for (size_t block = 0; block < count && !dominated; block += kBlock) {
      bool all[kBlock];
      for (size_t t = 0; t < kBlock; ++t) all[t] = true;
      for (int k = 0; k < d; ++k) {
        const double* column = columns.data() + k * capacity + block;
        for (size_t t = 0; t < kBlock; ++t) all[t] &= column[t] <= p[k];
      }
      for (size_t t = 0; t < kBlock; ++t) dominated |= all[t];
    }
    if (dominated) continue;
    for (int k = 0; k < d; ++k) columns[k * capacity + count] = p[k];
    ++count;
    kept.values.insert(kept.values.end(), p, p + d);
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
  if (d == 5) return volume_5d(points, ref);
  // WFG: worst last objective first; every later point q has q_d <= p_d, so the limit set
  // {max(p, q)} lies in the slab at p_d and its volume is (r_d - p_d) times a (d-1)-volume.
  std::vector<size_t> order = ascending_rows(points, d - 1);  // ties in the last objective: any order
  std::reverse(order.begin(), order.end());
  double total = 0.0;
  PointSet limit{{}, d - 1};
  for (size_t a = 0; a < n; ++a) {
    const double* p = points.row(order[a]);
    limit.values.clear();
    bool covered = false;
    for (size_t later = a + 1; later < n && !covered; ++later) {
      const double* q = points.row(order[later]);
      covered = weakly_dominates(q, p, d - 1);
      for (int k = 0; k < d - 1; ++k) limit.values.push_back(std::max(p[k], q[k]));
    }
    if (covered) continue;  // a later point covers p's whole slab
    const double exclusive = box_volume(p, ref, d - 1) - volume(nondominated(limit), ref);
    total += (ref[d - 1] - p[d - 1]) * exclusive;
  }
  return total;
}

}  // namespace moafast::cpu::hv
