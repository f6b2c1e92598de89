#pragma once
// Helpers shared by the harnesses (docs/fuzzing.md). A harness returns 0 for every input
// the code under test handles (a value or a documented error); anything else — a
// sanitizer report, an uncaught exception, a broken property checked with FUZZ_CHECK —
// aborts, and libFuzzer saves the input as a crash.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

/// Aborts with a message when a property of the code under test does not hold.
#define FUZZ_CHECK(cond, what)                                                              \
  do {                                                                                      \
    if (!(cond)) {                                                                          \
      std::fprintf(stderr, "FUZZ_CHECK failed: %s (%s:%d): %s\n", #cond, __FILE__, __LINE__, \
                   std::string(what).c_str());                                              \
      std::abort();                                                                         \
    }                                                                                       \
  } while (0)

namespace fuzz {

/// The input as text.
inline std::string_view text(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

/// The input cut at every `sep` byte into `parts` pieces (the last one takes the rest);
/// missing pieces are "". Lets one input carry several fields (a header and a body,
/// a pattern and a path) while staying readable in the corpus.
inline std::vector<std::string> split(std::string_view in, std::size_t parts, char sep = '\0') {
  std::vector<std::string> out;
  while (out.size() + 1 < parts) {
    const auto p = in.find(sep);
    if (p == std::string_view::npos) break;
    out.emplace_back(in.substr(0, p));
    in.remove_prefix(p + 1);
  }
  out.emplace_back(in);
  out.resize(parts);
  return out;
}

/// Calls `feed` with consecutive pieces of `bytes`, each 1..max_piece bytes long, the lengths
/// drawn from a small LCG seeded with `seed` (so one input always splits the same way): how
/// the network may cut a stream into reads.
template <class Feed>
void feed_in_pieces(std::string_view bytes, unsigned seed, std::size_t max_piece, Feed&& feed) {
  for (std::size_t i = 0; i < bytes.size();) {
    seed = seed * 1103515245u + 12345u;
    const std::size_t n = 1 + (seed >> 16) % max_piece;
    feed(bytes.substr(i, n));
    i += n;
  }
}

}  // namespace fuzz
