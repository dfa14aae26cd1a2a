#include <algorithm>
#include <cstddef>
#include <iterator>
#include <map>
#include <vector>

#include "block_arena.h"
#include "hv_algorithms.h"
#include "sort_by_key.h"

namespace moafast::cpu::hv {
namespace {

double box_volume_skipping(const double* point, const double* ref, int d, int skipped) {
  double volume = 1.0;
  for (int k = 0; k < d; ++k)
    if (k != skipped) volume *= ref[k] - point[k];
  return volume;
}

// HV of a limit set in `d` dimensions; the sweeps (d <= 3) skip dominated rows themselves.
double limit_volume(const PointSet& limit, const double* ref) {
  return limit.d <= 3 ? volume(limit, ref) : volume(nondominated(limit), ref);
}

void project(const double* point, int d, int skipped, double* out) {
  for (int k = 0, m = 0; k < d; ++k)
    if (k != skipped) out[m++] = point[k];
}

// d = 2 in O(n log n). In (x, y) order the front is the rows that lower the running minimum of y. A
// front point f owns the rectangle [x_f, x_next) x [y_f, y_prev) up to its front neighbours; the other
// rows that reach into it are exactly those with x in [x_f, x_next) (every one has y >= y_f), and the
// staircase they form inside the rectangle is what f does not add alone. Every other row adds nothing.
void contributions_2d(const PointSet& points, const double* ref, double* out) {
  const size_t n = points.size();
  // Ties in x may come in any order: of two rows with one x, the higher is either no front row or a front row
  // whose rectangle has width zero, and inside the lower one's rectangle it is a shadow either way.
  const std::vector<size_t> order = ascending_rows(points, 0);
  std::vector<size_t> front;  // positions in `order`
  double lowest = ref[1];
  for (size_t s = 0; s < n; ++s) {
    out[order[s]] = 0.0;
    if (points.row(order[s])[1] < lowest) {
      front.push_back(s);
      lowest = points.row(order[s])[1];
    }
  }
  for (size_t t = 0; t < front.size(); ++t) {
    const double* f = points.row(order[front[t]]);
    const size_t end = t + 1 < front.size() ? front[t + 1] : n;
    const double right = t + 1 < front.size() ? points.row(order[front[t + 1]])[0] : ref[0];
    const double top = t > 0 ? points.row(order[front[t - 1]])[1] : ref[1];
    double covered = 0.0, level = top;
    for (size_t s = front[t] + 1; s < end; ++s) {
      const double* q = points.row(order[s]);
      if (q[1] < level) {
        covered += (right - q[0]) * (level - q[1]);
        level = q[1];
      }
    }
    out[order[front[t]]] = (right - f[0]) * (top - f[1]) - covered;
  }
}

// d = 3, sweeping the third objective upwards over the 2-D staircase T of the rows seen so far. A row on T
// owns the rectangle up to its T neighbours, minus its shadows: rows that it alone dominates in (x, y), a
// staircase inside the rectangle. Its exclusive area there, integrated over the third objective while it
// stays on T, is its contribution; a row never on T (or dominated in (x, y) by two rows of T) adds nothing.
// A new row that no row of T dominates enters T: the rows it dominates leave T and become its shadows, and
// its neighbours' rectangles shrink (dropping the shadows now beyond them). Near O(n log n) on fronts.
class Contributions3d {
 public:
  Contributions3d(const PointSet& points, const double* ref)
      : points_(points), ref_(ref), front_(ArenaAllocator<Steps::value_type>(&arena_)), total_(points.size(), 0.0) {}

  void run(double* out) {
    std::vector<KeyedRow> by_z(points_.size());  // ties in z: any order (the areas between them are zero)
    for (size_t i = 0; i < by_z.size(); ++i) by_z[i] = {points_.row(i)[2], i};
    sort_by_key(by_z);
    for (const auto& [height, q] : by_z) add(q, height);
    for (auto& step : front_) settle(step.second, ref_[2]);
    for (size_t i = 0; i < points_.size(); ++i) out[i] = total_[i];
  }

 private:
  using Shadows = std::vector<std::pair<double, double>>;  // (x, y), x increasing, y decreasing; usually few
  // A row on T with what its contribution needs, kept in the node so that the sweep touches no per-row arrays.
  struct Step {
    size_t row;
    double y, area, since;  // area: its exclusive area since the height `since`
    Shadows shadows;
  };
  // x -> step, y strictly decreasing along x
  using Steps = std::map<double, Step, std::less<double>, ArenaAllocator<std::pair<const double, Step>>>;

  static Shadows::iterator first_at_or_after(Shadows& shadows, double sx) {
    return std::lower_bound(shadows.begin(), shadows.end(), sx,
                            [](const std::pair<double, double>& s, double x) { return s.first < x; });
  }

  void settle(Step& step, double height) {
    total_[step.row] += step.area * (height - step.since);
    step.since = height;
  }

  // The rectangle of a row on T minus the union of its shadows.
  double exclusive_area(Steps::const_iterator at) const {
    const auto next = std::next(at);
    const double right = next == front_.end() ? ref_[0] : next->first;
    const double top = at == front_.begin() ? ref_[1] : std::prev(at)->second.y;
    double covered = 0.0, level = top;
    for (const auto& shadow : at->second.shadows) {  // x ascending, y descending
      covered += (right - shadow.first) * (level - shadow.second);
      level = shadow.second;
    }
    return (right - at->first) * (top - at->second.y) - covered;
  }

  static void add_shadow(Shadows& shadows, double sx, double sy) {
    const auto next = first_at_or_after(shadows, sx);
    if (next != shadows.end() && next->first == sx && next->second <= sy) return;
    if (next != shadows.begin() && std::prev(next)->second <= sy) return;
    auto end = next;
    while (end != shadows.end() && end->second >= sy) ++end;
    shadows.insert(shadows.erase(next, end), {sx, sy});
  }

  void refresh(Steps::iterator at, double height) {
    settle(at->second, height);
    at->second.area = exclusive_area(at);
  }

  void add(size_t q, double height) {
    const double qx = points_.row(q)[0], qy = points_.row(q)[1];
    auto after = front_.upper_bound(qx);  // rows of T with x <= qx come before
    if (after != front_.begin() && std::prev(after)->second.y <= qy) {  // dominated in (x, y) by T
      auto owner = std::prev(after);
      if (owner != front_.begin() && std::prev(owner)->second.y <= qy) return;  // by two rows: no effect
      settle(owner->second, height);
      add_shadow(owner->second.shadows, qx, qy);
      owner->second.area = exclusive_area(owner);
      return;
    }
    auto first = front_.lower_bound(qx);
    Shadows taken;
    while (first != front_.end() && first->second.y >= qy) {  // rows q dominates in (x, y) leave T
      settle(first->second, height);
      taken.emplace_back(first->first, first->second.y);
      first = front_.erase(first);
    }
    if (first != front_.end()) {  // the next row's rectangle now stops at q's y: drop its shadows above
      auto& shadows = first->second.shadows;
      auto keep = shadows.begin();
      while (keep != shadows.end() && keep->second >= qy) ++keep;
      shadows.erase(shadows.begin(), keep);
    }
    if (first != front_.begin()) {  // the previous row's rectangle now stops at q's x
      auto& shadows = std::prev(first)->second.shadows;
      shadows.erase(first_at_or_after(shadows, qx), shadows.end());
    }
    const auto at = front_.emplace_hint(first, qx, Step{q, qy, 0.0, height, std::move(taken)});
    at->second.area = exclusive_area(at);
    if (std::next(at) != front_.end()) refresh(std::next(at), height);
    if (at != front_.begin()) refresh(std::prev(at), height);
  }

  const PointSet& points_;
  const double* ref_;
  BlockArena arena_;  // before front_: the map's nodes live in it
  Steps front_;
  std::vector<double> total_;
};

}  // namespace

void contributions(const PointSet& points, const double* ref, double* out) {
  const size_t n = points.size();
  const int d = points.d;
  if (d == 2) {
    contributions_2d(points, ref, out);
    return;
  }
  if (d == 3) {
    Contributions3d(points, ref).run(out);
    return;
  }
  // The limit sets come in ascending fourth objective for d = 4 (rows below p clip to p's level, the others keep
  // their order): the 4-D sweep then needs no sort and stops where the rows cover p.
  std::vector<size_t> order(n);
  for (size_t j = 0; j < n; ++j) order[j] = j;
  if (d == 4) order = ascending_rows(points, 3);
  PointSet limit{{}, d};
  for (size_t i = 0; i < n; ++i) {
    const double* p = points.row(i);
    limit.values.clear();
    bool covered = false;
    for (size_t j : order) {
      if (covered) break;
      if (j == i) continue;
      const double* q = points.row(j);
      covered = true;
      for (int k = 0; k < d; ++k) {
        const double m = std::max(p[k], q[k]);
        covered = covered && m == p[k];
        limit.values.push_back(m);
      }
    }
    if (covered) {
      out[i] = 0.0;
      continue;
    }
    out[i] = box_volume_skipping(p, ref, d, -1) -
             (d == 4 ? volume_4d_in_order(limit, ref, p) : volume(nondominated(limit), ref));
  }
}

double face(const PointSet& points, const double* query, int k, const double* ref) {
  const int d = points.d;
  if (d == 1) {  // HV = r - min y: decreasing y helps exactly when no point is strictly better
    for (size_t j = 0; j < points.size(); ++j)
      if (points.row(j)[0] < query[0]) return 0.0;
    return 1.0;
  }
  std::vector<double> projected_ref(d - 1), pi(d - 1), qi(d - 1);
  project(ref, d, k, projected_ref.data());
  project(query, d, k, pi.data());
  PointSet limit{{}, d - 1};
  for (size_t j = 0; j < points.size(); ++j) {
    const double* q = points.row(j);
    if (!(q[k] < query[k])) continue;
    project(q, d, k, qi.data());
    bool covered = true;
    for (int m = 0; m < d - 1; ++m) {
      const double value = std::max(pi[m], qi[m]);
      covered = covered && value == pi[m];
      limit.values.push_back(value);
    }
    if (covered) return 0.0;
  }
  return box_volume_skipping(query, ref, d, k) - limit_volume(limit, projected_ref.data());
}

void faces(const PointSet& points, const double* ref, double* out) {
  const int d = points.d;
  for (size_t i = 0; i < points.size(); ++i)
    for (int k = 0; k < d; ++k) out[i * d + k] = face(points, points.row(i), k, ref);
}

double projected_volume(const PointSet& points, int k, const double* ref) {
  const int d = points.d;
  if (d == 1) return points.size() ? 1.0 : 0.0;  // HV_0 of a non-empty set: the empty product
  std::vector<double> projected_ref(d - 1);
  PointSet projection{std::vector<double>(points.size() * (d - 1)), d - 1};
  for (size_t i = 0; i < points.size(); ++i) project(points.row(i), d, k, projection.values.data() + i * (d - 1));
  project(ref, d, k, projected_ref.data());
  return volume(projection, projected_ref.data());
}

}  // namespace moafast::cpu::hv
