// Per-thread scratch buffers reused across calls, reached through one call that returns a plain reference. In a
// shared library a thread_local's address comes from __tls_get_addr, and GCC re-derives it at each use inside a
// hot loop rather than keep it in a register (20% of a 4-D sweep over 100 rows); a reference returned by a
// function that is not inlined cannot be re-derived. The type is the key: give each caller a struct of its own, so
// that no two sweeps (one calling the other) share a buffer.
#pragma once

namespace moafast::cpu {

template <class Scratch>
[[gnu::noinline]] Scratch& thread_scratch() {
  thread_local Scratch scratch;
  return scratch;
}

}  // namespace moafast::cpu
