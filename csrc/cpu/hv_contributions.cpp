#include <algorithm>
#include <cstddef>
#include <vector>

#include "hv_algorithms.h"

namespace moafast::cpu::hv {
namespace {

double box_volume_skipping(const double* point, const double* ref, int d, int skipped) {
  double volume = 1.0;
  for (int k = 0; k < d; ++k)
    if (k != skipped) volume *= ref[k] - point[k];
  return volume;
}

// HV of a limit set in `d` dimensions; the sweeps (d <= 3) skip dominated rows themselves.
double limit_volume(PointSet&& limit, const double* ref) {
  return limit.d <= 3 ? volume(limit, ref) : volume(nondominated(std::move(limit)), ref);
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
  std::vector<size_t> order(n);
  for (size_t i = 0; i < n; ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const double* pa = points.row(a);
    const double* pb = points.row(b);
    return pa[0] != pb[0] ? pa[0] < pb[0] : pa[1] < pb[1];
  });
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

}  // namespace

void contributions(const PointSet& points, const double* ref, double* out) {
  const size_t n = points.size();
  const int d = points.d;
  if (d == 2) {
    contributions_2d(points, ref, out);
    return;
  }
  for (size_t i = 0; i < n; ++i) {
    const double* p = points.row(i);
    PointSet limit{{}, d};
    limit.values.reserve((n - 1) * d);
    bool covered = false;
    for (size_t j = 0; j < n && !covered; ++j) {
      if (j == i) continue;
      const double* q = points.row(j);
      covered = true;
      for (int k = 0; k < d; ++k) {
        const double m = std::max(p[k], q[k]);
        covered = covered && m == p[k];
        limit.values.push_back(m);
      }
    }
    out[i] = covered ? 0.0 : box_volume_skipping(p, ref, d, -1) - limit_volume(std::move(limit), ref);
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
  return box_volume_skipping(query, ref, d, k) - limit_volume(std::move(limit), projected_ref.data());
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
