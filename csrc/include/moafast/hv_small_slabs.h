// Every output of a small set in 4 to 6 objectives from slabs of the last objective (minimisation form). Between
// consecutive levels of the last objective the rows at or below are fixed, and one (d-1)-dimensional pass over them
// (down to the 3-D sweep of hv_small_sweep3d.h) gives the slab's volume, each row's contribution and its faces in
// the first d-1 objectives; times the slab's height and summed over slabs, these are the d-dimensional ones.
// A row's face along the last objective is its exclusive (d-1)-volume against the rows strictly below it: its
// contribution in the slab it enters when it enters alone, computed apart when others enter with it.
// O(n^(d-1)) per set: for HaM's fronts of a few heads. The CUDA kernel takes D = 3 only, the sweep itself.
#pragma once

#include "moafast/common.h"
#include "moafast/hv_small_sweep3d.h"
#include "moafast/hv_small_volumes.h"

namespace moafast::hv_small {

// rows: [count, D] members (each y < ref). Returns the volume; fills contributions[count] and faces[count, D]
// (positive measures, the members' order) when they are not null.
template <int D>
MOAFAST_HD double sweep_every_output(const double* rows, int count, const double* ref, double* contributions,
                                     double* faces) {
  if (count == 1) {  // a box: its volume, and the products of all sides but one
    double volume = 1.0;
    for (int k = 0; k < D; ++k) volume *= ref[k] - rows[k];
    if (contributions) contributions[0] = volume;
    if (faces)
      for (int k = 0; k < D; ++k) {
        faces[k] = 1.0;
        for (int l = 0; l < D; ++l) faces[k] *= l == k ? 1.0 : ref[l] - rows[l];
      }
    return volume;
  }
  if constexpr (D == 3) {
    Sweep3d sweep;
    sweep.load(rows, count, ref);
    return sweep.run(ref, contributions, faces);
  } else {
    constexpr int kLower = D - 1;
    int order[kSmallSetMax];
    sort_by(order, count, rows, D, kLower);
    // prefix: the rows in entering order, first D-1 objectives; beaten: how many active rows beat each there in
    // every objective. A row beaten twice has no outputs and shapes no other row's in any later slab (one of its
    // beaters other than that row covers it, as in drop_twice_beaten): the slabs leave it out.
    double prefix[kSmallSetMax * kLower], alive[kSmallSetMax * kLower];
    double slab_contributions[kSmallSetMax], slab_faces[kSmallSetMax * kLower];
    int beaten[kSmallSetMax], alive_rows[kSmallSetMax];
    double* wanted_contributions = contributions || faces ? slab_contributions : nullptr;
    for (int i = 0; i < count; ++i) {
      if (contributions) contributions[i] = 0.0;
      if (faces)
        for (int k = 0; k < D; ++k) faces[i * D + k] = 0.0;
    }
    double volume = 0.0;
    for (int start = 0; start < count;) {
      const double level = rows[order[start] * D + kLower];
      int end = start;
      for (; end < count && rows[order[end] * D + kLower] == level; ++end) {
        const double* entering = prefix + end * kLower;
        for (int k = 0; k < kLower; ++k) prefix[end * kLower + k] = rows[order[end] * D + k];
        beaten[end] = 0;
        for (int a = 0; a < end; ++a) {
          beaten[end] += all_less(prefix + a * kLower, entering, kLower);
          beaten[a] += all_less(entering, prefix + a * kLower, kLower);
        }
      }
      int alive_count = 0;
      for (int a = 0; a < end; ++a) {
        if (beaten[a] > 1) continue;
        for (int k = 0; k < kLower; ++k) alive[alive_count * kLower + k] = prefix[a * kLower + k];
        alive_rows[alive_count++] = a;
      }
      const double height = (end < count ? rows[order[end] * D + kLower] : ref[kLower]) - level;
      volume += height * sweep_every_output<kLower>(alive, alive_count, ref, wanted_contributions,
                                                    faces ? slab_faces : nullptr);
      for (int m = 0; m < alive_count; ++m) {
        const int i = order[alive_rows[m]];
        if (contributions) contributions[i] += height * slab_contributions[m];
        if (faces)
          for (int k = 0; k < kLower; ++k) faces[i * D + k] += height * slab_faces[m * kLower + k];
      }
      if (faces && end - start == 1) {  // along the last objective: against the rows strictly below
        const bool entering_alive = alive_rows[alive_count - 1] == start;  // else beaten there: 0
        faces[order[start] * D + kLower] = entering_alive ? slab_contributions[alive_count - 1] : 0.0;
      } else if (faces) {
        for (int a = start; a < end; ++a)
          faces[order[a] * D + kLower] = exclusive_volume<kLower>(prefix, start, prefix + a * kLower, ref);
      }
      start = end;
    }
    return volume;
  }
}

}  // namespace moafast::hv_small
