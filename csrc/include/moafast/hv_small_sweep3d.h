// Every output of a small 3-D set from one sweep in the third objective (minimisation form), O(n^2) and nearly
// branch-free. Between consecutive distinct z the active rows (z_j <= z) are fixed. Order them lexicographically
// (x, then y, then position): the 2-D region they dominate is the union of horizontal strips, row i owning
//   strip_i = max(0, first_i - y_i) * (r_x - x_i),   first_i = the lowest y among active rows before i,
// so a slab's area is the sum of the strips, and removing row i changes only i's strip and those of the rows
// whose `first` is i (they fall back to their second lowest): that is i's exclusive area. The faces along x and
// y are read off the lowest y strictly left of i and the lowest x strictly under i; the face along z is the
// area i adds to the rows strictly below it. Shared by the CPU driver and the CUDA kernel (hv_small_sets.h).
#pragma once

#include <cfloat>

#include "moafast/common.h"

namespace moafast::hv_small {

constexpr int kSmallSetMax = 16;

MOAFAST_HD double positive_part(double value) { return value > 0.0 ? value : 0.0; }

struct Sweep3d {
  int count = 0;
  int width = 0;  // count rounded up to a multiple of 4: the per-row loops run over padding rows too, which
                  // sit at the reference (never lower than a member) so that the loops vectorise
  double x[kSmallSetMax], y[kSmallSetMax], z[kSmallSetMax];  // the members by ascending z
  int member[kSmallSetMax];                                   // their index among the members
  // Among the active rows before i in (x, y, position) order: the lowest and second lowest y, and the row with
  // the lowest (kSmallSetMax: none).
  double first[kSmallSetMax], second[kSmallSetMax];
  int holder[kSmallSetMax];
  double left_y[kSmallSetMax];   // the lowest y among active rows with x_j < x_i
  double under_x[kSmallSetMax];  // the lowest x among active rows with y_j < y_i

  MOAFAST_HD static bool before(double xa, double ya, int a, double xb, double yb, int b) {
    return (xa < xb) | ((xa == xb) & ((ya < yb) | ((ya == yb) & (a < b))));
  }

  // Area that (px, py), placed at `position` in the tie order, adds to the region of rows [0, active).
  MOAFAST_HD double gain(double px, double py, int position, int active, const double* ref) const {
    double lowest = ref[1], lost = 0.0;
    for (int i = 0; i < active; ++i) {
      const bool earlier = before(x[i], y[i], i, px, py, position);
      lowest = earlier && y[i] < lowest ? y[i] : lowest;
      const double capped = first[i] < py ? first[i] : py;
      const double shrink = (positive_part(first[i] - y[i]) - positive_part(capped - y[i])) * (ref[0] - x[i]);
      lost += earlier ? 0.0 : shrink;
    }
    return positive_part(lowest - py) * (ref[0] - px) - lost;
  }

  // Each update stores a minimum, or a select between fresh values, whatever the condition: the compiler turns
  // `a[i] = c ? v : a[i]` into a masked store, and the next vector load of that row waits for it to retire.
  MOAFAST_HD void activate(int q) {
    const double xq = x[q], yq = y[q];
    for (int i = 0; i < width; ++i) {
      const double offered = before(xq, yq, q, x[i], y[i], i) ? yq : DBL_MAX, old_first = first[i];
      const bool lowest = offered < old_first;
      const double below_second = offered < second[i] ? offered : second[i];
      second[i] = lowest ? old_first : below_second;
      first[i] = lowest ? offered : old_first;
      holder[i] += lowest * (q - holder[i]);
      const double left = xq < x[i] ? yq : DBL_MAX, under = yq < y[i] ? xq : DBL_MAX;
      left_y[i] = left < left_y[i] ? left : left_y[i];
      under_x[i] = under < under_x[i] ? under : under_x[i];
    }
  }

  // rows: [count, 3] members (each y < ref). Loads them in ascending z (ties by index) and resets the state.
  MOAFAST_HD void load(const double* rows, int members, const double* ref) {
    count = members;
    width = (members + 3) & ~3;
    for (int i = 0; i < count; ++i) z[i] = rows[i * 3 + 2];
    for (int i = count; i < width; ++i) z[i] = ref[2];
    int rank[kSmallSetMax];
    for (int i = 0; i < count; ++i) {
      int below = 0;
      for (int j = 0; j < width; ++j) below += (z[j] < z[i]) | ((z[j] == z[i]) & (j < i));
      rank[i] = below;
    }
    for (int i = 0; i < count; ++i) {
      x[rank[i]] = rows[i * 3], y[rank[i]] = rows[i * 3 + 1];
      member[rank[i]] = i;
    }
    for (int i = 0; i < count; ++i) z[rank[i]] = rows[i * 3 + 2];
    for (int i = count; i < width; ++i) x[i] = ref[0], y[i] = ref[1], member[i] = kSmallSetMax;
    for (int i = 0; i < width; ++i) {
      first[i] = second[i] = left_y[i] = ref[1];
      under_x[i] = ref[0];
      holder[i] = kSmallSetMax;
    }
  }

  // Runs the sweep after load(); fills the requested outputs in the members' order: contributions[count] and
  // faces[count, 3] (positive measures: the gradient is minus these). Returns the volume.
  MOAFAST_HD double run(const double* ref, double* contributions, double* faces) {
    // A row's contribution is its strips (`kept`, summed on vector lanes) less the losses of the rows it holds
    // (`taken`, scattered one row at a time; taken[kSmallSetMax] takes those of rows with no holder). Two arrays:
    // a vector load of what scalar stores have just written waits for them to reach the cache.
    double along_x[kSmallSetMax], along_y[kSmallSetMax], along_z[kSmallSetMax], exclusive[kSmallSetMax],
        kept[kSmallSetMax], taken[kSmallSetMax + 1];
    for (int i = 0; i < width; ++i) along_x[i] = along_y[i] = along_z[i] = kept[i] = taken[i] = 0.0;
    taken[kSmallSetMax] = 0.0;
    double volume = 0.0, area_below = 0.0;
    for (int start = 0; start < count;) {
      int end = start + 1;
      while (end < count && z[end] == z[start]) ++end;
      // The face along z is measured against the rows strictly below: those sharing this z do not cover it.
      // A row alone at its z adds exactly that face to the slab's area.
      if (faces && end - start > 1)
        for (int q = start; q < end; ++q) along_z[q] = gain(x[q], y[q], q, start, ref);
      for (int q = start; q < end; ++q) activate(q);
      const double height = (end < count ? z[end] : ref[2]) - z[start];
      const int active_width = (end + 3) & ~3;  // rows from `end` on are inactive: the loops below stop near it
      double partial[4] = {0.0, 0.0, 0.0, 0.0};  // four running sums: the loop vectorises
      for (int i = 0; i < active_width; i += 4)
        for (int l = 0; l < 4; ++l) {  // rows from `end` on are inactive: their strips are not counted
          exclusive[i + l] = i + l < end ? positive_part(first[i + l] - y[i + l]) * (ref[0] - x[i + l]) : 0.0;
          partial[l] += exclusive[i + l];
        }
      const double area = (partial[0] + partial[1]) + (partial[2] + partial[3]);
      volume += height * area;
      if (faces && end - start == 1) along_z[start] = area - area_below;
      area_below = area;
      if (contributions) {
        // Each row's strip, and what its holder loses: row j's strip grows to its second lowest without it.
        double lost[kSmallSetMax];
        for (int j = 0; j < active_width; ++j) {
          kept[j] += height * exclusive[j];
          lost[j] = height * (positive_part(second[j] - y[j]) - positive_part(first[j] - y[j])) * (ref[0] - x[j]);
        }
        for (int j = 0; j < end; ++j) taken[holder[j]] += lost[j];
      }
      if (faces)
        for (int i = 0; i < active_width; ++i) {
          const double active = i < end ? height : 0.0;
          along_x[i] += active * positive_part(left_y[i] - y[i]);
          along_y[i] += active * positive_part(under_x[i] - x[i]);
        }
      start = end;
    }
    for (int i = 0; i < count; ++i) {
      if (contributions) contributions[member[i]] = kept[i] - taken[i];
      if (faces) {
        double* face = faces + member[i] * 3;
        face[0] = along_x[i], face[1] = along_y[i], face[2] = along_z[i];
      }
    }
    return volume;
  }
};

}  // namespace moafast::hv_small
