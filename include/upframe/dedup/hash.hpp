// Perceptual average hash of the luma plane (SPEC section 2, phase 2).
#pragma once

#include <array>
#include <cstdint>

#include "upframe/dedup/luma.hpp"

namespace upframe::dedup {

// Up to 32x32 = 1024 bits.
struct AverageHash {
  int size = 0;  // 8, 16 or 32
  std::array<uint64_t, 16> words{};
  bool operator==(const AverageHash&) const = default;
};

AverageHash average_hash(const LumaView& luma, int hash_size);
int hamming_distance(const AverageHash& a, const AverageHash& b);

}  // namespace upframe::dedup
