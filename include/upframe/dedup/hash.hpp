// Perceptual average hash of the luma plane (docs/INTERFACE.md, "Pipeline and fallbacks").
#pragma once

#include <array>
#include <cstdint>

#include "upframe/dedup/luma.hpp"

namespace upframe::dedup {

// Up to 32x32 = 1024 bits. Bit k (cell row k / size, column k % size) is set when the cell's
// average luma is above the mean of the cell averages. A cell within kUnstableMargin levels
// of that mean can flip under coding noise alone (an I-frame re-coding a P-frame): such bits
// are marked unstable and ignored by hamming_distance, so re-encoded duplicates still match
// at hash_threshold 0. The confirmation decides anyway.
struct AverageHash {
  int size = 0;  // 8, 16 or 32
  std::array<uint64_t, 16> words{};
  std::array<uint64_t, 16> unstable{};
  bool operator==(const AverageHash&) const = default;
};
inline constexpr uint32_t kUnstableMargin = 2;  // 8-bit levels

AverageHash average_hash(const LumaView& luma, int hash_size);
// Differing bits among those stable in both hashes.
int hamming_distance(const AverageHash& a, const AverageHash& b);

}  // namespace upframe::dedup
