// Still images (png, jpg, webp, bmp, tiff) through libavformat/libavcodec.
#pragma once

#include <filesystem>
#include <string>

#include "upframe/frame.hpp"

namespace upframe {

// Whether `path` holds an animation in an image format: an APNG (acTL chunk) or an animated
// WebP (VP8X animation flag). Reads the file's first bytes only.
bool is_animated_image(const std::filesystem::path& path);

// Decodes the single image at `path` in its native pixel format (alpha kept).
Frame read_image(const std::filesystem::path& path);
// Encodes `frame` to `path`; format from `format` ("png", "jpg", "webp") or, when empty, the
// extension. Converts the pixel format as the codec needs (keeping alpha where it can).
void write_image(const std::filesystem::path& path, const Frame& frame,
                 const std::string& format = {}, int quality = 95);
// The bytes of `frame` coded as an image file of `format` ("png", "jpg", "webp"); `name` is
// what errors name (a web preview has no file).
std::string encode_image(const Frame& frame, const std::string& format, int quality = 95,
                         const std::string& name = {});

}  // namespace upframe
