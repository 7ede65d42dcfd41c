#include "upframe/pipeline/stats.hpp"

namespace upframe {

double JobStats::duplicate_percentage() const {
  return total_frames > 0 ? 100.0 * double(duplicate_frames) / double(total_frames) : 0.0;
}

double JobStats::fps() const { return total_time > 0 ? double(total_frames) / total_time : 0.0; }

nlohmann::json JobStats::to_json() const {
  nlohmann::json j = {
      {"extraction_time", extraction_time},
      {"detection_time", detection_time},
      {"upscale_time", upscale_time},
      {"upscale_busy_time", upscale_busy_time},
      {"save_time", save_time},
      {"total_time", total_time},
      {"total_frames", total_frames},
      {"unique_frames", unique_frames},
      {"duplicate_frames", duplicate_frames},
      {"resumed_frames", resumed_frames},
      {"duplicate_percentage", duplicate_percentage()},
      {"fps", fps()},
      {"hash_candidates", hash_candidates},
      {"rejected_by_confirmation", rejected_by_confirmation},
      {"damaged_frames", damaged_frames},
      {"tile_reuse", tile_reuse},
      {"tiles_reused", tiles_reused},
      {"tiles_computed", tiles_computed},
      {"tile_compare_time", tile_compare_time},
      {"tile_copy_time", tile_copy_time},
      {"mode", mode},
      {"mode_reason", mode_reason},
      {"decode_backend", decode_backend},
      {"upscale_backend", upscale_backend},
      {"workers", workers},
      {"tile", tile},
      {"precision", precision},
      {"model", model},
      {"scale", scale},
      {"input", input},
      {"output", output},
      {"notes", notes},
  };
  if (!encoder.empty()) j["encoder"] = encoder;
  if (already_complete) j["already_complete"] = true;
  return j;
}

nlohmann::json Progress::to_json() const {
  nlohmann::json j = {
      {"frames_done", frames_done},
      {"frames_total", frames_total >= 0 ? nlohmann::json(frames_total) : nlohmann::json()},
      {"unique", unique},
      {"duplicates", duplicates},
      {"damaged_frames", damaged},
      {"tiles_reused", tiles_reused},
      {"tiles_computed", tiles_computed},
      {"fps", fps},
      {"eta_s", eta_s >= 0 ? nlohmann::json(eta_s) : nlohmann::json()},
      {"stage_busy",
       {{"decode", stage_busy[0]},
        {"detect", stage_busy[1]},
        {"upscale", stage_busy[2]},
        {"save", stage_busy[3]}}},
  };
  if (final) j["final"] = true;
  return j;
}

}  // namespace upframe
