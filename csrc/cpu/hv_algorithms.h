// Exact hypervolume algorithms on one set of points (minimisation; every point strictly dominates ref).
// A PointSet is row-major, n rows of d coordinates.
#pragma once

#include <cstddef>
#include <vector>

namespace moafast::cpu::hv {

struct PointSet {
  std::vector<double> values;  // n * d
  int d = 0;
  size_t size() const { return d ? values.size() / d : 0; }
  const double* row(size_t i) const { return values.data() + i * d; }
};

// Rows of `stride` coordinates that a sweep reads in place (a prefix of a PointSet, say).
struct RowSpan {
  const double* values;
  size_t count;
  int stride;
  RowSpan(const PointSet& points) : values(points.values.data()), count(points.size()), stride(points.d) {}
  RowSpan(const double* rows, size_t rows_count, int row_stride)
      : values(rows), count(rows_count), stride(row_stride) {}
  size_t size() const { return count; }
  const double* row(size_t i) const { return values + i * stride; }
};

// d = 2: sort + sweep, O(n log n).
double volume_2d(const PointSet& points, const double* ref);
// d = 3: sweep in the third objective over a 2-D staircase in a balanced tree, O(n log n). Reads the first three
// objectives of rows of any width. `front`, if given, receives the rows that add volume (every row no other
// dominates), in ascending third objective.
double volume_3d(RowSpan points, const double* ref, std::vector<size_t>* front = nullptr);
// d = 4: sweep in the fourth objective over exclusive 3-D volumes against the 3-D front, O(n^2).
double volume_4d(const PointSet& points, const double* ref);
// The 4-D sweep over rows that come in ascending fourth objective (no sort): the rows at the lowest level in one
// 3-D sweep. With `cover`, the rows form a limit set of that point (every row at least cover) and the sweep stops
// at the first row equal to cover in the first three objectives (from its level up the 3-D volume is cover's box).
double volume_4d_in_order(const PointSet& rows, const double* ref, const double* cover);
// d = 5: sweep in the fifth objective over exclusive 4-D volumes against the 4-D front, each a 4-D sweep of
// the front clipped to the row.
double volume_5d(const PointSet& points, const double* ref);
// Any d >= 1: the 2-D to 5-D sweeps, else WFG (exclusive volumes against limit sets, slicing the last
// objective so the recursion drops one dimension per level).
double volume(const PointSet& points, const double* ref);

// Rows of `candidates` not weakly dominated by an earlier kept row (duplicates kept once).
PointSet nondominated(const PointSet& candidates);

// Exclusive contributions HV(S) - HV(S \ {i}): an O(n log n) sweep for d = 2, limit sets for d >= 3.
void contributions(const PointSet& points, const double* ref, double* out);

// The face of a query point normal to objective k against the set: prod_{l != k}(r_l - q_l) -
// HV_{d-1}({max(pi_k q, pi_k y_j) : y_jk < q_k}).
double face(const PointSet& points, const double* query, int k, const double* ref);

// face(i, k) = prod_{l != k}(r_l - y_il) - HV_{d-1}({max(pi_k y_i, pi_k y_j) : y_jk < y_ik}); out is n x d.
void faces(const PointSet& points, const double* ref, double* out);

// HV_{d-1} of the projection dropping objective k.
double projected_volume(const PointSet& points, int k, const double* ref);

}  // namespace moafast::cpu::hv
