#include "upframe/dedup/hash.hpp"

#include "dedup/hash_math.hpp"
#include "dedup/kernels.hpp"

namespace upframe::dedup {

AverageHash average_hash(const LumaView& luma, int hash_size) {
  return detail::hash_and_copy(luma, hash_size, nullptr);
}

int hamming_distance(const AverageHash& a, const AverageHash& b) {
  int distance = 0;
  for (size_t i = 0; i < a.words.size(); ++i)
    distance += math::popcount64((a.words[i] ^ b.words[i]) & ~(a.unstable[i] | b.unstable[i]));
  return distance;
}

}  // namespace upframe::dedup
