// A job from settings to stats: checks, upscaler, mode selection (docs/INTERFACE.md, "Mode selection"), then the
// video pipeline or the single-image path.
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <fstream>
#include <thread>

#include "pipeline/job_internal.hpp"
#include "pipeline/output_checks.hpp"
#include "pipeline/resume.hpp"
#include "pipeline/stage_clock.hpp"
#include "pipeline/video_pipeline.hpp"
#include "upframe/cuda_device.hpp"
#include "upframe/error.hpp"
#include "upframe/media/decoder.hpp"
#include "upframe/media/frame_sink.hpp"
#include "upframe/media/image_io.hpp"
#include "upframe/pipeline/job.hpp"
#include "upframe/pipeline/preflight.hpp"
#include "upframe/upscale/factory.hpp"

namespace upframe {

namespace fs = std::filesystem;

namespace {

// Memory the OS says is available now, from /proc/meminfo (0 if unknown).
size_t available_memory_bytes() {
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  size_t kib = 0;
  std::string unit;
  while (meminfo >> key >> kib >> unit)
    if (key == "MemAvailable:") return kib * 1024;
  return 0;
}

struct ModeChoice {
  bool streamed = false;
  int workers = 1;
  std::string reason;
};

// The memory manager: how many workers fit in half the available memory.
int workers_that_fit(const Upscaler& upscaler, int width, int height) {
  size_t per_worker = std::max<size_t>(1, upscaler.worker_memory_bytes(width, height));
  size_t available = available_memory_bytes();
  if (available == 0) return 1;  // unknown: one worker is the least any job needs
  return int(std::min<size_t>(available / 2 / per_worker, 4096));
}

ModeChoice choose_mode(const Settings& s, const VideoInfo& info, const Upscaler& upscaler) {
  ModeChoice choice;
  int fit = workers_that_fit(upscaler, info.width, info.height);
  int wanted = s.workers > 0 ? s.workers : upscaler.preferred_workers();
  int workers = std::clamp(wanted, 1, std::max(1, std::min(fit, upscaler.max_workers())));
  if (workers < wanted)
    spdlog::warn("{} workers asked, {} fit in memory: using {}", wanted, fit, workers);
  std::string frames = info.frame_count >= 0 ? std::to_string(info.frame_count) + " frames"
                                             : "frame count unknown before decoding";
  if (!s.enable_gpu_pipeline) {
    choice.reason = "enable_gpu_pipeline is off";
  } else if (info.frame_count >= 0 && info.frame_count < s.pipeline_min_frames) {
    choice.reason = frames + " < pipeline_min_frames " + std::to_string(s.pipeline_min_frames);
  } else if (!s.parallel) {
    choice.reason = "parallel processing is off (--no-parallel)";
  } else if (fit < 1) {
    choice.reason = "the memory manager could not fit one worker in available memory";
  } else {
    choice.streamed = true;
    choice.workers = workers;
    choice.reason =
        frames +
        (info.frame_count >= 0 ? " >= pipeline_min_frames " + std::to_string(s.pipeline_min_frames)
                               : "") +
        ", parallel on, " + std::to_string(workers) + " worker(s) (" + std::to_string(fit) +
        " fit in memory)";
  }
  return choice;
}

dedup::DetectorOptions detector_options(const Settings& s) {
  dedup::DetectorOptions o;
  o.hash_size = s.hash_size;
  o.hash_threshold = s.hash_threshold;
  o.scope = s.dedup == "global" ? dedup::Scope::kGlobal : dedup::Scope::kConsecutive;
  o.window = s.dedup_window;
  if (s.dedup_max_mean_diff >= 0) o.thresholds.max_mean_abs_diff = s.dedup_max_mean_diff;
  if (s.dedup_max_signed_mean_diff >= 0)
    o.thresholds.max_abs_signed_mean_diff = s.dedup_max_signed_mean_diff;
  if (s.dedup_max_block_diff >= 0) o.thresholds.max_block_mean_abs_diff = s.dedup_max_block_diff;
  if (s.dedup_max_motion >= 0) o.thresholds.max_motion = s.dedup_max_motion;
  if (s.dedup_max_local_motion >= 0) o.thresholds.max_local_motion = s.dedup_max_local_motion;
  return o;
}

}  // namespace

dedup::DetectorOptions detector_options(const Settings& s, const VideoInfo& info) {
  dedup::DetectorOptions o = detector_options(s);
  const bool user_thresholds = s.dedup_max_mean_diff >= 0 || s.dedup_max_signed_mean_diff >= 0 ||
                               s.dedup_max_block_diff >= 0 || s.dedup_max_motion >= 0 ||
                               s.dedup_max_local_motion >= 0;
  if (info.lossless_codec && !user_thresholds && s.skip_duplicates) {
    o.thresholds = dedup::exact_thresholds();
    spdlog::info(
        "{}: {} is a lossless codec: only frames equal to the one they repeat are "
        "duplicates",
        info.path, info.codec);
  }
  return o;
}

namespace {

void fill_common_stats(JobStats& stats, const Settings& s, const Upscaler& upscaler,
                       const OutputPlan& plan) {
  stats.input = s.input.string();
  stats.output = plan.path.string();
  stats.model = upscaler.name();
  stats.scale = upscaler.scale();
  stats.upscale_backend = upscaler.backend();
  stats.precision = upscaler.precision();
  stats.tile = upscaler.tile();
}

JobStats run_image_job(const Settings& s, Upscaler& upscaler, const OutputPlan& plan,
                       const ProgressCallback& progress) {
  using pipeline::Clock;
  JobStats stats;
  fill_common_stats(stats, s, upscaler, plan);
  stats.mode = "sequential";
  stats.mode_reason = "single image";
  auto start = Clock::now();
  pipeline::StageTimer read_timer, upscale_timer, save_timer;
  Frame image = read_timer.time([&] { return read_image(s.input); });
  upscaler.prepare(1);
  auto worker = upscaler.create_worker();
  Frame upscaled = upscale_timer.time([&] { return worker->upscale(image); });
  // write_image writes under a temporary name and renames, so the target never holds a
  // partial image.
  save_timer.time([&] { write_image(plan.path, upscaled, plan.format, s.quality); });
  stats.extraction_time = read_timer.seconds();
  stats.upscale_time = stats.upscale_busy_time = upscale_timer.seconds();
  stats.save_time = save_timer.seconds();
  stats.total_time = pipeline::seconds_since(start);
  stats.total_frames = stats.unique_frames = 1;
  // One final record, as a video's last one (--progress-json readers wait for "final").
  if (progress) {
    Progress done;
    done.frames_done = done.frames_total = done.unique = 1;
    done.elapsed_s = stats.total_time;
    done.fps = stats.fps();
    done.eta_s = 0;
    if (stats.total_time > 0) {
      done.stage_busy[0] = stats.extraction_time / stats.total_time;
      done.stage_busy[2] = stats.upscale_time / stats.total_time;
      done.stage_busy[3] = stats.save_time / stats.total_time;
    }
    done.final = true;
    progress(done);
  }
  return stats;
}

}  // namespace

nlohmann::json output_options(const Settings& s, const Upscaler& upscaler, const OutputPlan& plan,
                              const std::string& encoder) {
  nlohmann::json o = {
      {"output_kind", plan.kind == OutputKind::kFramesFolder ? "frames"
                      : plan.kind == OutputKind::kImage      ? "image"
                                                             : "video"},
      {"model", upscaler.name()},
      {"scale", upscaler.scale()},
      {"tile", upscaler.tile()},
      {"precision", upscaler.precision()},
      {"upscale_backend", upscaler.backend()},
  };
  if (plan.kind == OutputKind::kImage) {
    o["format"] = plan.format;
    o["quality"] = s.quality;
    return o;
  }
  const dedup::Thresholds thresholds = detector_options(s).thresholds;
  o.update({
      {"skip_duplicates", s.skip_duplicates},
      {"reuse_tiles", s.skip_duplicates && s.reuse_tiles},
      {"dedup", s.dedup},
      {"hash_size", s.hash_size},
      {"hash_threshold", s.hash_threshold},
      {"dedup_window", s.dedup_window},
      // The thresholds as resolved, so a change of the defaults is seen too.
      {"dedup_max_mean_diff", thresholds.max_mean_abs_diff},
      {"dedup_max_signed_mean_diff", thresholds.max_abs_signed_mean_diff},
      {"dedup_max_block_diff", thresholds.max_block_mean_abs_diff},
      {"dedup_max_motion", thresholds.max_motion},
      {"dedup_max_local_motion", thresholds.max_local_motion},
      {"dedup_local_motion_min_rms", thresholds.local_motion_min_rms},
  });
  if (plan.kind == OutputKind::kFramesFolder) {
    o["format"] = plan.format;
    o["quality"] = s.quality;
  } else {
    o["encoder"] = encoder;
    o["crf"] = s.crf;
    o["segment_frames"] = s.segment_frames;
  }
  return o;
}

namespace {

DecoderOptions video_decoder_options(const Settings& s, const Upscaler& upscaler) {
  DecoderOptions decode_options;
  decode_options.device = s.device;
  // GIF, APNG, WebP and RGB sources become YUV (alpha kept) the detector can read.
  decode_options.luma_frames = true;
  decode_options.strict = s.strict;
  // NVDEC frames stay on the device when the upscaler runs there (the detector then hashes
  // them on the device too).
  decode_options.keep_on_device = cuda_built() && upscaler.backend() == "cuda";
  return decode_options;
}

// Mode selection (logged, and written to the stats) and the pipeline's configuration.
pipeline::VideoPipelineConfig video_pipeline_config(const Settings& s, const VideoInfo& info,
                                                    int64_t frames_total, const Upscaler& upscaler,
                                                    const ProgressCallback& progress,
                                                    JobStats& stats) {
  VideoInfo counted = info;
  counted.frame_count = frames_total;
  ModeChoice mode = choose_mode(s, counted, upscaler);
  stats.mode = mode.streamed ? "pipeline" : "sequential";
  stats.mode_reason = mode.reason;
  stats.workers = mode.workers;
  spdlog::info("mode: {} ({})", stats.mode, stats.mode_reason);
  pipeline::VideoPipelineConfig config;
  config.streamed = mode.streamed;
  config.workers = mode.workers;
  config.preload_frames = s.preload_frames;
  config.skip_duplicates = s.skip_duplicates;
  // The perceptual hash needs at least hash_size pixels a side: a smaller input is upscaled
  // frame by frame, every frame unique.
  if (s.skip_duplicates && (info.width < s.hash_size || info.height < s.hash_size)) {
    config.skip_duplicates = false;
    spdlog::info("{}: {}x{} is smaller than the {}x{} duplicate hash: every frame is upscaled",
                 info.path, info.width, info.height, s.hash_size, s.hash_size);
  }
  config.detector = detector_options(s, info);
  config.reuse_tiles = s.reuse_tiles;
  config.frames_total = frames_total;
  config.progress = progress;
  return config;
}

// `record` is called with the finished output under its temporary name, just before it takes
// the output's name (video outputs; the caller records the other kinds afterwards).
JobStats run_video_job(const Settings& s, Upscaler& upscaler, const OutputPlan& plan,
                       const ProgressCallback& progress, const StopFlag* stop,
                       const std::function<void(const fs::path&)>& record) {
  using pipeline::Clock;
  auto start = Clock::now();
  JobStats stats;
  fill_common_stats(stats, s, upscaler, plan);
  VideoDecoder decoder(s.input, video_decoder_options(s, upscaler));
  const VideoInfo& info = decoder.info();
  stats.decode_backend = decoder.backend();
  if (plan.kind == OutputKind::kVideo) {
    // An encoder the container cannot hold is refused before anything is written or logged.
    const std::string encoder = resolve_encoder(s.encoder, info.bit_depth, plan.path);
    if (!container_accepts_encoder(plan.path, encoder))
      throw UsageError(plan.path.string(), container_refusal(plan.path, encoder));
    if (const std::string note = alpha_note(info.pixel_format, encoder); !note.empty())
      spdlog::info("{}: {}", plan.path.string(), note);
  }
  // Refuse early rather than fail at 90% on a full disk (docs/INTERFACE.md).
  if (!s.no_space_check && plan.kind != OutputKind::kNull) {
    std::error_code size_error;
    uint64_t input_bytes = fs::file_size(s.input, size_error);
    check_disk_space(plan.path,
                     estimate_output_bytes(info, size_error ? 0 : input_bytes, upscaler.scale(),
                                           plan.kind, plan.format, s.encoder));
  }

  pipeline::VideoPipelineConfig config =
      video_pipeline_config(s, info, info.frame_count, upscaler, progress, stats);

  const int out_w = info.width * upscaler.scale(), out_h = info.height * upscaler.scale();
  // Everything but the null output is built in OUTPUT.upframe-partial/ (docs/INTERFACE.md), so an
  // interrupted job can be resumed.
  std::unique_ptr<pipeline::PartialRun> partial;
  std::function<bool(int64_t)> already_written;
  std::unique_ptr<FrameSink> sink;
  if (plan.kind == OutputKind::kNull) {
    sink = make_null_sink();
  } else if (plan.kind == OutputKind::kAnimation) {
    // One pass, no partial folder: a GIF's palette spans the clip and a WebP animation is
    // assembled at the end, so segments could not be joined without re-encoding.
    if (s.resume)
      spdlog::info(
          "--resume: an animated {} is written in one pass and cannot be resumed; "
          "starting from the first frame",
          plan.format);
    AnimationOptions ao;
    ao.format = plan.format;
    ao.quality = s.quality;
    ao.overwrite = s.overwrite;
    sink = make_animation_sink(plan.path, info, ao);
  } else if (plan.kind == OutputKind::kFramesFolder) {
    partial = std::make_unique<pipeline::PartialRun>(plan.path, pipeline::input_identity(s.input),
                                                     output_options(s, upscaler, plan, ""),
                                                     s.resume, s.overwrite);
    FramesFolderOptions fo;
    fo.format = plan.format;
    fo.quality = s.quality;
    fo.overwrite = s.overwrite;
    fo.work_folder = partial->folder();
    fo.work_private_files = {pipeline::PartialRun::kManifestName, pipeline::PartialRun::kLockName};
    const int64_t written = count_written_frames(partial->folder(), plan.format);
    if (written > 0) {
      spdlog::info("{} frame(s) already written by the interrupted run", written);
      already_written = [written](int64_t index) { return index < written; };
    }
    sink = make_frames_folder_sink(plan.path, info, fo);
  } else {
    VideoSinkOptions vo;
    vo.encoder = s.encoder;
    vo.crf = s.crf;
    vo.overwrite = s.overwrite;
    vo.before_rename = record;
    stats.encoder = resolve_encoder(s.encoder, info.bit_depth, plan.path);
    partial = std::make_unique<pipeline::PartialRun>(
        plan.path, pipeline::input_identity(s.input),
        output_options(s, upscaler, plan, stats.encoder), s.resume, s.overwrite);
    auto cuts = std::make_shared<pipeline::SegmentCuts>(partial->segments(), s.segment_frames,
                                                        s.segment_max_seconds);
    if (!partial->segments().empty())
      already_written = [cuts](int64_t index) { return cuts->kept(index); };
    config.starts_segment = [cuts](int64_t index) { return cuts->starts_segment(index); };
    sink = make_segmented_video_sink(*partial, plan.path, info, out_w, out_h, vo, s.segment_frames);
  }

  config.already_written = already_written;
  config.stop = stop;
  try {
    pipeline::run_video_pipeline(decoder, upscaler, *sink, config, stats);
    // NVDEC may have declined the stream's format once decoding began.
    stats.decode_backend = decoder.backend();
    // Flushing the encoder (its look-ahead and B-frames) and the rename are save work too.
    auto finish_start = Clock::now();
    sink->finish();
    stats.save_time += pipeline::seconds_since(finish_start);
  } catch (const Interrupted&) {
    // Kept for --resume: finished segments (or whole frames) and the manifest.
    sink->suspend();
    if (partial) {
      const int64_t kept = plan.kind == OutputKind::kVideo
                               ? partial->frames_kept()
                               : count_written_frames(partial->folder(), plan.format);
      if (kept > 0)
        spdlog::info(
            "interrupted: {} frame(s) kept in the partial run at {}; run again with --resume "
            "to continue",
            kept, partial->folder().string());
      else
        spdlog::info(
            "interrupted before any frame was kept; the partial run at {} holds the job's "
            "settings only",
            partial->folder().string());
    }
    throw;
  } catch (const pipeline::DamagedSegment&) {
    // The damaged segment is dropped; the others stay for --resume, which makes it again.
    sink->suspend();
    throw;
  } catch (...) {
    // Another error: the partial run goes too (nothing is left behind a failed job).
    sink->abort();
    if (partial) partial->remove();
    throw;
  }
  stats.notes = sink->notes();
  for (const std::string& note : stats.notes) spdlog::info("{}", note);
  stats.total_time = pipeline::seconds_since(start);
  return stats;
}

}  // namespace

namespace pipeline {

JobStats run_video_range(const Settings& s, Upscaler& upscaler, const OutputPlan& plan,
                         const VideoRange& range, const fs::path& segment_file,
                         const ProgressCallback& progress) {
  auto start = Clock::now();
  JobStats stats;
  fill_common_stats(stats, s, upscaler, plan);
  DecoderOptions decode_options = video_decoder_options(s, upscaler);
  decode_options.start_pts = range.start_pts;
  decode_options.end_pts = range.end_pts;
  VideoDecoder decoder(s.input, decode_options);
  const VideoInfo& info = decoder.info();
  stats.decode_backend = decoder.backend();
  stats.encoder = resolve_encoder(s.encoder, info.bit_depth, plan.path);
  VideoPipelineConfig config =
      video_pipeline_config(s, info, range.frames, upscaler, progress, stats);
  VideoSinkOptions vo;
  vo.encoder = s.encoder;
  vo.crf = s.crf;
  std::unique_ptr<FrameSink> sink =
      make_video_segment_sink(segment_file, plan.path, info, info.width * upscaler.scale(),
                              info.height * upscaler.scale(), vo);
  try {
    run_video_pipeline(decoder, upscaler, *sink, config, stats);
    auto finish_start = Clock::now();
    sink->finish();
    stats.save_time += seconds_since(finish_start);
  } catch (...) {
    // A segment is whole or absent, interrupted or not.
    sink->abort();
    throw;
  }
  stats.total_time = seconds_since(start);
  return stats;
}

}  // namespace pipeline

JobStats run_job(const Settings& settings, const ProgressCallback& progress, const StopFlag* stop) {
  validate_settings(settings);
  pipeline::check_input(settings.input);
  std::unique_ptr<Upscaler> upscaler = pipeline::create_upscaler(settings);
  OutputPlan plan = plan_output(settings, upscaler->scale());
  if (!settings.stats.empty()) {
    fs::path folder = settings.stats.parent_path();
    if (folder.empty()) folder = ".";
    if (!fs::is_directory(folder) || access(folder.c_str(), W_OK) != 0)
      throw Error(settings.stats.string(), "stats folder is missing or not writable");
  }
  // What a finished job records on its output, so that --resume knows it finished.
  nlohmann::json input_id, options;
  if (plan.kind != OutputKind::kNull) {
    input_id = pipeline::input_identity(settings.input);
    options = output_options(settings, *upscaler, plan, settings.encoder);
  }
  // (An empty folder is no finished frames folder, and check_output lets a job write there.)
  std::error_code ec;
  const bool output_there = fs::exists(plan.path, ec) &&
                            !(fs::is_directory(plan.path, ec) && fs::is_empty(plan.path, ec));
  const bool partial_there = fs::exists(pipeline::partial_folder(plan.path), ec);
  const std::string mismatch =
      settings.resume && plan.kind != OutputKind::kNull && output_there
          ? pipeline::finished_output_mismatch(plan.path, input_id, options)
          : std::string("not checked");
  if (mismatch.empty() ||
      (settings.resume && plan.kind != OutputKind::kNull && output_there && !partial_there)) {
    if (mismatch.empty()) {
      // A kill while finishing may have left the partial run beside the finished output.
      pipeline::remove_finished_leftovers(plan.path);
      spdlog::info(
          "{}: already complete (a finished job with this input and these options): "
          "nothing to do",
          plan.path.string());
      JobStats stats;
      fill_common_stats(stats, settings, *upscaler, plan);
      stats.already_complete = true;
      stats.mode = "none";
      stats.mode_reason = "already complete";
      if (!settings.stats.empty()) pipeline::write_stats_file(settings.stats, stats.to_json());
      return stats;
    }
    if (!settings.overwrite)
      throw UsageError(plan.path.string(), "output exists and is not this job's finished result (" +
                                               mismatch + "): use -y to overwrite");
  }
  pipeline::check_output(plan, settings.input, settings.overwrite);
  // A video output carries its record from the instant it has its name (a kill just after the
  // rename leaves a finished job that --resume recognises); the others get it after.
  bool recorded = false;
  auto record = [&](const fs::path& finished) {
    pipeline::record_finished_output(finished, input_id, options);
    recorded = true;
  };
  JobStats stats = plan.kind == OutputKind::kImage
                       ? run_image_job(settings, *upscaler, plan, progress)
                       : run_video_job(settings, *upscaler, plan, progress, stop, record);
  if (plan.kind != OutputKind::kNull && !recorded)
    pipeline::record_finished_output(plan.path, input_id, options);
  if (!settings.stats.empty()) pipeline::write_stats_file(settings.stats, stats.to_json());
  return stats;
}

namespace pipeline {

void write_stats_file(const fs::path& path, const nlohmann::json& json) {
  fs::path tmp = path;
  tmp += ".upframe-tmp";
  {
    std::ofstream out(tmp);
    out << json.dump(2) << "\n";
    if (!out) throw Error(path.string(), "cannot write the stats file");
  }
  fs::rename(tmp, path);
}

std::unique_ptr<Upscaler> create_upscaler(const Settings& s) {
  return make_upscaler(upscaler_options(s));
}

}  // namespace pipeline
}  // namespace upframe
