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

// d = 2: sort + sweep, O(n log n).
double volume_2d(const PointSet& points, const double* ref);
// d = 3: sweep in the third objective over a 2-D staircase in a balanced tree, O(n log n).
double volume_3d(const PointSet& points, const double* ref);
// Any d >= 1: the 2-D and 3-D sweeps, else WFG (exclusive volumes against limit sets, slicing the last
// objective so the recursion drops one dimension per level).
double volume(const PointSet& points, const double* ref);

// Rows of `candidates` not weakly dominated by an earlier kept row (duplicates kept once).
PointSet nondominated(PointSet candidates);

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
