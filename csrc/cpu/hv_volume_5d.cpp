// d = 5: a sweep of the fifth objective. Each row adds its exclusive 4-D volume against the rows below it; only
// those no other below dominates in the first four objectives (the 4-D front) can shape it, and a row the new
// one dominates never can again, so the front only loses rows for good. The running 4-D volume times the gaps in
// the fifth objective is the hypervolume.
//
// A row p's exclusive 4-D volume is its box minus the 4-D volume of the front clipped to it, {max(p, q)}: the
// clipped rows at or below p's fourth objective sit at p's level and go through one 3-D sweep (clipping keeps
// the third-objective order, so the front kept in that order needs no sort), the rows above follow one by one
// in fourth-objective order, each adding its exclusive 3-D volume, until one covers p.
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

constexpr int kWidth = 4;  // the first four objectives of each front row

bool weakly_dominates_4d(const double* a, const double* b) {
  return (a[0] <= b[0]) & (a[1] <= b[1]) & (a[2] <= b[2]) & (a[3] <= b[3]);
}

// The 4-D front as rows of four objectives, in ascending third and in ascending fourth objective.
class Front4d {
 public:
  explicit Front4d(size_t capacity) : by_z_(capacity * kWidth), by_w_(capacity * kWidth) {}

  size_t size() const { return size_; }
  const double* by_z(size_t i) const { return by_z_.data() + i * kWidth; }
  const double* by_w(size_t i) const { return by_w_.data() + i * kWidth; }

  // Drops the rows p weakly dominates and inserts p.
  void add(const double* p) {
    add_in_order(by_z_, p, 2);
    size_ = add_in_order(by_w_, p, 3);
  }

  // The first row in fourth-objective order above `level`.
  size_t first_above(double level) const {
    size_t low = 0, high = size_;
    while (low < high) {
      const size_t middle = (low + high) / 2;
      if (by_w_[middle * kWidth + 3] <= level)
        low = middle + 1;
      else
        high = middle;
    }
    return low;
  }

 private:
  // Puts p after the rows whose `key` objective is at most p's, dropping the rows p dominates (only rows from
  // p's key up can be): the rows after p's place each move into the slot after them in one pass (p carried into
  // the first). Returns the new size.
  size_t add_in_order(std::vector<double>& rows, const double* p, int key) const {
    size_t first = 0;
    while (first < size_ && rows[first * kWidth + key] < p[key]) ++first;
    size_t write = first, j = first;
    for (; j < size_ && rows[j * kWidth + key] == p[key]; ++j) {  // ties in the key stay before p
      const double* q = rows.data() + j * kWidth;
      if (weakly_dominates_4d(p, q)) continue;
      if (write != j) std::copy(q, q + kWidth, rows.data() + write * kWidth);
      ++write;
    }
    double carry[kWidth] = {p[0], p[1], p[2], p[3]};
    for (; j < size_; ++j) {
      double* q = rows.data() + j * kWidth;
      if (weakly_dominates_4d(p, q)) continue;  // one branch, rarely taken
      double next[kWidth];
      std::copy(q, q + kWidth, next);
      std::copy(carry, carry + kWidth, rows.data() + write * kWidth);
      std::copy(next, next + kWidth, carry);
      ++write;
    }
    std::copy(carry, carry + kWidth, rows.data() + write * kWidth);
    return write + 1;
  }

  std::vector<double> by_z_, by_w_;
  size_t size_ = 0;
};

double box_volume_4d(const double* p, const double* ref) {
  return (ref[0] - p[0]) * (ref[1] - p[1]) * (ref[2] - p[2]) * (ref[3] - p[3]);
}

// Scratch reused across rows (and calls): the 3-D front of the clipped rows and a staircase.
struct Scratch {
  FrontColumns by_x, by_z;
  ArrayStaircase staircase;
  std::vector<size_t> below;

  void reset(size_t capacity) {
    by_x.reset(capacity);
    by_z.reset(capacity);
    staircase.reserve(capacity);
  }
};

// Appends (x, y, z) to columns kept in ascending x (a short shift: the base's front is small).
void insert_by_x(FrontColumns& columns, double x, double y, double z) {
  size_t at = columns.size;
  for (; at > 0 && columns.x[at - 1] > x; --at) {
    columns.x[at] = columns.x[at - 1];
    columns.y[at] = columns.y[at - 1];
    columns.z[at] = columns.z[at - 1];
  }
  columns.x[at] = x;
  columns.y[at] = y;
  columns.z[at] = z;
  ++columns.size;
}

// The exclusive 4-D volume of p against the front (0 when a front row weakly dominates p: then *covered).
double exclusive_4d(const double* p, const Front4d& front, const double* ref, Scratch& scratch, bool* covered) {
  *covered = false;
  scratch.reset(front.size() + 1);
  FrontColumns& by_z = scratch.by_z;
  // The rows at or below p's level, clipped, in one 3-D sweep in ascending third objective.
  double area = 0.0, volume_3d = 0.0, height = p[2];
  std::vector<size_t>& below = scratch.below;  // which rows sit at or below p's level: listed without branches
  below.resize(front.size());
  size_t count = 0;
  for (size_t j = 0; j < front.size(); ++j) {
    below[count] = j;
    count += front.by_z(j)[3] <= p[3];
  }
  for (size_t b = 0; b < count; ++b) {
    const double* q = front.by_z(below[b]);
    if ((q[0] <= p[0]) & (q[1] <= p[1]) & (q[2] <= p[2])) {
      *covered = true;
      return 0.0;
    }
    const double x = std::max(p[0], q[0]), y = std::max(p[1], q[1]), z = std::max(p[2], q[2]);
    volume_3d += area * (z - height);
    height = z;
    const double added = scratch.staircase.insert(x, y, ref[0], ref[1]);
    if (added <= 0.0) continue;
    area += added;
    by_z.x[by_z.size] = x;
    by_z.y[by_z.size] = y;
    by_z.z[by_z.size] = z;
    ++by_z.size;
    insert_by_x(scratch.by_x, x, y, z);  // ties in x: any order (the x-order pass merges equal x)
  }
  volume_3d += area * (ref[2] - height);
  FrontColumns& by_x = scratch.by_x;
  // The rows above p's level, clipped, in ascending fourth objective, until one covers p in the first three.
  const double box_3d = (ref[0] - p[0]) * (ref[1] - p[1]) * (ref[2] - p[2]);
  double total = 0.0, level = p[3];
  for (size_t j = front.first_above(p[3]); j < front.size(); ++j) {
    const double* q = front.by_w(j);
    total += volume_3d * (q[3] - level);
    level = q[3];
    if ((q[0] <= p[0]) & (q[1] <= p[1]) & (q[2] <= p[2])) {
      volume_3d = box_3d;
      break;
    }
    const double clipped[3] = {std::max(p[0], q[0]), std::max(p[1], q[1]), std::max(p[2], q[2])};
    volume_3d += add_exclusive_3d(clipped, by_x, by_z, ref, scratch.staircase);
  }
  total += volume_3d * (ref[3] - level);
  return box_volume_4d(p, ref) - total;
}

}  // namespace

double volume_5d(const PointSet& points, const double* ref) {
  const size_t n = points.size();
  const std::vector<size_t> order = ascending_rows(points, 4);  // ties in the fifth objective: any order
  Front4d front(n);
  Scratch& scratch = thread_scratch<Scratch>();
  double volume_4d = 0.0, total = 0.0;
  for (size_t a = 0; a < n; ++a) {
    const double* p = points.row(order[a]);
    bool covered = false;
    const double exclusive = exclusive_4d(p, front, ref, scratch, &covered);
    if (!covered) {
      volume_4d += exclusive;
      front.add(p);
    }
    const double next = a + 1 < n ? points.row(order[a + 1])[4] : ref[4];
    total += volume_4d * (next - p[4]);
  }
  return total;
}

}  // namespace moafast::cpu::hv
