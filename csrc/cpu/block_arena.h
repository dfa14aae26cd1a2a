// Node storage for the node-based containers of the sweeps (std::map staircases): blocks carved from large
// chunks and recycled through a free list, so inserting and erasing a node costs no malloc or free.
#pragma once

#include <algorithm>
#include <cstddef>
#include <memory>
#include <vector>

namespace moafast::cpu {

class BlockArena {
 public:
  void* take(size_t bytes) {
    bytes = rounded(bytes);
    if (bytes == recycled_size_ && free_ != nullptr) {
      void* block = free_;
      free_ = *static_cast<void**>(block);
      return block;
    }
    if (chunks_.empty() || used_ + bytes > chunk_bytes_) {
      if (!chunks_.empty()) chunk_bytes_ = std::min(2 * chunk_bytes_, kLargestChunkBytes);
      chunk_bytes_ = std::max(chunk_bytes_, bytes);
      chunks_.emplace_back(new std::max_align_t[chunk_bytes_ / kAlign]);  // left uninitialised
      used_ = 0;
    }
    void* block = reinterpret_cast<char*>(chunks_.back().get()) + used_;
    used_ += bytes;
    return block;
  }

  // Blocks of the first size given back are recycled (a container's nodes all have one size); others wait for
  // the arena's end.
  void give_back(void* block, size_t bytes) {
    bytes = rounded(bytes);
    if (recycled_size_ == 0) recycled_size_ = bytes;
    if (bytes != recycled_size_) return;
    *static_cast<void**>(block) = free_;
    free_ = block;
  }

 private:
  static constexpr size_t kAlign = alignof(std::max_align_t);
  static constexpr size_t kLargestChunkBytes = size_t{1} << 16;
  static size_t rounded(size_t bytes) { return (std::max(bytes, sizeof(void*)) + kAlign - 1) / kAlign * kAlign; }

  std::vector<std::unique_ptr<std::max_align_t[]>> chunks_;
  size_t chunk_bytes_ = size_t{1} << 11, used_ = 0, recycled_size_ = 0;  // chunks grow from 2 KiB
  void* free_ = nullptr;
};

// A std allocator drawing from one BlockArena (which must outlive the container).
template <class T>
struct ArenaAllocator {
  using value_type = T;
  BlockArena* arena;

  explicit ArenaAllocator(BlockArena* owner) noexcept : arena(owner) {}
  template <class U>
  ArenaAllocator(const ArenaAllocator<U>& other) noexcept : arena(other.arena) {}

  T* allocate(size_t count) { return static_cast<T*>(arena->take(count * sizeof(T))); }
  void deallocate(T* block, size_t count) noexcept { arena->give_back(block, count * sizeof(T)); }

  template <class U>
  bool operator==(const ArenaAllocator<U>& other) const noexcept { return arena == other.arena; }
  template <class U>
  bool operator!=(const ArenaAllocator<U>& other) const noexcept { return arena != other.arena; }
};

}  // namespace moafast::cpu
