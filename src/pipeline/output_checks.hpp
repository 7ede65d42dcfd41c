#pragma once

#include <filesystem>

#include "upframe/pipeline/job.hpp"

namespace upframe::pipeline {

// Throws for a missing, unreadable or folder input.
void check_input(const std::filesystem::path& input);
// Throws when the output would overwrite the input, exists without `overwrite`, or its folder
// is missing or not writable.
void check_output(const OutputPlan& plan, const std::filesystem::path& input, bool overwrite);

}  // namespace upframe::pipeline
