// Sorting (key, row) pairs by a double key for the sweeps: an LSD radix sort on the key's order-preserving bit
// pattern for large inputs (a few linear passes instead of n log n mispredicted compares), std::sort below.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

namespace moafast::cpu {

using KeyedRow = std::pair<double, size_t>;

// Unsigned integers that order like the doubles (-0.0 just before +0.0; no NaN reaches the sweeps).
inline uint64_t ordered_bits(double value) {
  uint64_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  return bits >> 63 ? ~bits : bits | (uint64_t{1} << 63);
}

// Ascending by key; equal keys keep no particular order.
inline void sort_by_key(std::vector<KeyedRow>& items) {
  constexpr size_t kRadixFrom = 2048;
  constexpr int kDigitBits = 11, kBuckets = 1 << kDigitBits;
  const size_t n = items.size();
  if (n < kRadixFrom) {
    std::sort(items.begin(), items.end(), [](const KeyedRow& a, const KeyedRow& b) { return a.first < b.first; });
    return;
  }
  std::vector<uint64_t> keys(n), next_keys(n);
  std::vector<KeyedRow> next_items(n);
  for (size_t i = 0; i < n; ++i) keys[i] = ordered_bits(items[i].first);
  std::array<size_t, kBuckets> start;
  for (int shift = 0; shift < 64; shift += kDigitBits) {
    start.fill(0);
    for (uint64_t key : keys) ++start[(key >> shift) & (kBuckets - 1)];
    if (std::find(start.begin(), start.end(), n) != start.end()) continue;  // one digit value: nothing moves
    size_t offset = 0;
    for (size_t& bucket : start) offset += std::exchange(bucket, offset);
    for (size_t i = 0; i < n; ++i) {
      const size_t to = start[(keys[i] >> shift) & (kBuckets - 1)]++;
      next_keys[to] = keys[i];
      next_items[to] = items[i];
    }
    keys.swap(next_keys);
    items.swap(next_items);
  }
}

// Row indices of `rows` (anything with size() and row(i)) in ascending `key` column; ties in no particular order.
template <class Rows>
std::vector<size_t> ascending_rows(const Rows& rows, int key) {
  std::vector<KeyedRow> keyed(rows.size());
  for (size_t i = 0; i < keyed.size(); ++i) keyed[i] = {rows.row(i)[key], i};
  sort_by_key(keyed);
  std::vector<size_t> order(keyed.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = keyed[i].second;
  return order;
}

}  // namespace moafast::cpu
