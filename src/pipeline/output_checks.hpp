#pragma once

#include <filesystem>

#include <memory>

#include <nlohmann/json.hpp>

#include "upframe/pipeline/job.hpp"
#include "upframe/upscale/upscaler.hpp"

namespace upframe::pipeline {

// Throws for a missing, unreadable or folder input.
void check_input(const std::filesystem::path& input);
// Throws when the output would overwrite the input, exists without `overwrite`, or its folder
// is missing or not writable.
void check_output(const OutputPlan& plan, const std::filesystem::path& input, bool overwrite);
// Writes stats JSON under a temporary name, then renames it into place.
void write_stats_file(const std::filesystem::path& path, const nlohmann::json& json);
// The upscaler the settings ask for (model, scale, device, precision, tile).
std::unique_ptr<Upscaler> create_upscaler(const Settings& settings);

}  // namespace upframe::pipeline
