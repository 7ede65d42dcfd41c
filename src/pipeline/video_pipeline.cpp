#include "pipeline/video_pipeline.hpp"

#include <spdlog/spdlog.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "pipeline/bounded_queue.hpp"
#include "pipeline/stage_clock.hpp"
#include "upframe/dedup/luma.hpp"
#include "upframe/error.hpp"
#include "upframe/nn/memory_policy.hpp"
#include "upframe/tile_copy.hpp"

namespace upframe::pipeline {

namespace {

std::atomic<int> g_stop_signal{0};

// One decoded frame and what the detect stage decided about it.
struct FrameEntry {
  int64_t index = 0;
  int64_t pts = 0;
  int64_t duration = 0;  // in the input time base, as the decoder stamped it
  bool duplicate = false;
  int64_t source_index = -1;   // for a duplicate
  bool kept = false;           // written by an earlier run (resume): not upscaled, not written
  bool segment_start = false;  // the first frame of an output segment
  // Tile reuse: the tiles to compute (the rest come from the previous unique frame's result);
  // null: the whole frame is computed.
  std::shared_ptr<const TileMask> tiles;
  int tiles_total = 0;  // tiles of a unique frame (tile reuse on), computed or reused
};

// Upscaled unique frames that later duplicates may still name: the last one in consecutive
// scope, the last `window` in global scope (the detector never looks further back).
class UpscaledCache {
 public:
  explicit UpscaledCache(size_t capacity) : capacity_(capacity ? capacity : 1) {}
  void put(int64_t index, Frame frame) {
    entries_.emplace_back(index, std::move(frame));
    while (entries_.size() > capacity_) entries_.pop_front();
  }
  // An empty frame when `index` is not cached: its source was kept from an earlier run (a
  // frames folder copies the file; a segmented video never names another segment's frame).
  Frame find(int64_t index) const {
    for (auto it = entries_.rbegin(); it != entries_.rend(); ++it)
      if (it->first == index) return it->second;
    return Frame();
  }

 private:
  size_t capacity_;
  std::deque<std::pair<int64_t, Frame>> entries_;
};

// A counting semaphore that can be aborted.
class Slots {
 public:
  explicit Slots(size_t count) : free_(count) {}
  bool acquire() {
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [&] { return aborted_ || free_ > 0; });
    if (aborted_) return false;
    --free_;
    return true;
  }
  void release() {
    std::lock_guard lock(mutex_);
    ++free_;
    cv_.notify_one();
  }
  void abort() {
    std::lock_guard lock(mutex_);
    aborted_ = true;
    cv_.notify_all();
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  size_t free_;
  bool aborted_ = false;
};

class Runner {
 public:
  Runner(VideoDecoder& decoder, Upscaler& upscaler, FrameSink& sink,
         const VideoPipelineConfig& config)
      : decoder_(decoder),
        upscaler_(upscaler),
        sink_(sink),
        config_(config),
        detector_(config.detector),
        cache_(config.detector.scope == dedup::Scope::kGlobal ? config.detector.window : 1) {
    if (config.skip_duplicates && config.reuse_tiles) {
      const int radius = upscaler.receptive_radius();
      if (radius < 0) {
        spdlog::info(
            "tile reuse is off: {} has no receptive radius (not a network, or its output "
            "depends on the whole frame); whole frames are upscaled",
            upscaler.name());
      } else {
        dedup::TileReuseOptions options;
        options.tile = config.reuse_tile;
        options.halo = radius;
        options.thresholds = config.detector.thresholds;
        options.max_run_tiles =
            upscaler.tile() > 0 ? std::max(1, upscaler.tile() / options.tile) : 8;
        tiles_ = std::make_unique<dedup::TileChangeTracker>(options);
      }
    }
  }

  void run(JobStats& stats) {
    start_ = Clock::now();
    if (config_.streamed)
      run_streamed();
    else
      run_sequential();
    if (workers_run_ > 0) stats.workers = workers_run_;  // fewer where GPU memory ran out
    stats.extraction_time = decode_timer_.seconds();
    stats.detection_time = detect_timer_.seconds();
    stats.upscale_time = upscale_timer_.wall_seconds();
    stats.upscale_busy_time = upscale_timer_.summed_seconds();
    stats.save_time = save_timer_.seconds();
    stats.total_frames = frames_written_;
    stats.resumed_frames = frames_kept_;
    stats.unique_frames = unique_written_;
    stats.duplicate_frames = frames_written_ - unique_written_;
    stats.hash_candidates = detector_.hash_candidates();
    stats.rejected_by_confirmation = detector_.rejected_by_confirmation();
    stats.tile_reuse = tiles_ != nullptr;
    stats.tiles_reused = tiles_reused_;
    stats.tiles_computed = tiles_computed_;
    stats.tile_compare_time = tile_compare_timer_.seconds();
    stats.tile_copy_time = tile_copy_timer_.seconds();
    stats.damaged_frames = decoder_.damaged_frames();
    report_progress(true);
  }

 private:
  // --- stage bodies, shared by both modes ---

  // Throws Interrupted once SIGINT/SIGTERM or this job's own stop request asked to stop
  // (checked before each decode, upscale and save, so a stop takes at most one frame's work).
  void check_stop() const { throw_if_stopped(config_.stop); }

  std::optional<Frame> decode_one(int64_t index) {
    check_stop();
    (void)index;
    return decode_timer_.time([&] { return decoder_.next(); });
  }

  FrameEntry detect_one(int64_t index, const Frame& frame) {
    FrameEntry entry;
    entry.index = index;
    entry.pts = frame.pts();
    entry.duration = frame.av()->pkt_duration;
    entry.kept = config_.already_written && config_.already_written(index);
    entry.segment_start = config_.starts_segment && config_.starts_segment(index);
    if (!config_.skip_duplicates) return entry;
    if (entry.segment_start && index > 0) detect_timer_.time([&] { detector_.reset(); });
    dedup::Decision d = detect_timer_.time([&] {
      try {
        // By reference: an 8-bit frame is kept for later confirmations without a copy.
        return detector_.classify(index, frame);
      } catch (const Error& e) {
        throw Error(e.file(), e.problem(), e.code(), "detect", index);
      }
    });
    entry.duplicate = d.duplicate;
    entry.source_index = d.source_index;
    if (tiles_ && !entry.duplicate) detect_timer_.time([&] { compare_tiles(entry, frame); });
    return entry;
  }

  // Tile reuse's decision for a unique frame, in decode order (so it is one process's whatever
  // the worker count): its tiles compared with the sources of the upscaled pixels the save
  // stage will hold for them. The workers need nothing of the previous frame's result: the save
  // stage copies the reused tiles, in order.
  void compare_tiles(FrameEntry& entry, const Frame& frame) {
    tile_compare_timer_.time([&] {
      // A segment starts afresh (the same frames as a run of that segment alone); a frame an
      // earlier run wrote leaves no upscaled pixels to reuse.
      if (entry.segment_start || entry.kept) tiles_->reset();
      if (entry.kept) return;
      const Frame host = frame.on_device() ? frame.to_host() : Frame();
      TileMask mask = tiles_->next(dedup::luma_of(host ? host : frame));
      entry.tiles_total = mask.tile_count();
      if (!mask.all_changed()) entry.tiles = std::make_shared<const TileMask>(std::move(mask));
    });
  }

  // `started`: the result may still be in flight (UpscaleWorker::upscale_started); the save
  // stage waits for it (wait_upscaled).
  Frame upscale_one(UpscaleWorker& worker, int64_t index, const Frame& frame, const TileMask* tiles,
                    bool started = false) {
    check_stop();
    return upscale_timer_.time([&] {
      try {
        if (tiles) return worker.upscale_tiles(frame, *tiles);
        return started ? worker.upscale_started(frame) : worker.upscale(frame);
      } catch (const Error& e) {
        throw Error(e.file(), e.problem(), e.code(), "upscale", index);
      }
    });
  }

  static void wait_upscaled(const Frame& upscaled, int64_t index) {
    try {
      upscaled.wait_ready();
    } catch (const Error& e) {
      throw Error(e.file(), e.problem(), e.code(), "upscale", index);
    }
  }

  void save_one(const FrameEntry& entry, const Frame& upscaled) {
    check_stop();
    save_timer_.time([&] {
      if (entry.segment_start) sink_.start_segment(entry.index);
      sink_.set_duration(entry.index, entry.duration);
      if (entry.kept) {
        sink_.keep_written(entry.index, entry.pts);
        ++frames_kept_;
        if (!entry.duplicate) ++unique_written_;
      } else if (entry.duplicate) {
        sink_.write_duplicate(entry.index, entry.source_index, cache_.find(entry.source_index),
                              entry.pts);
      } else {
        Frame frame = upscaled;
        if (entry.tiles_total > 0) frame = with_reused_tiles(entry, upscaled);
        sink_.write_unique(entry.index, frame, entry.pts);
        cache_.put(entry.index, frame);
        ++unique_written_;
      }
    });
    ++frames_written_;
    report_progress(false);
  }

  // Tile reuse, in frame order: the reused tiles copied from the previous unique frame's result
  // (which holds, for each tile, the pixels computed from its reference), and the counts.
  Frame with_reused_tiles(const FrameEntry& entry, const Frame& upscaled) {
    if (!entry.tiles) {
      tiles_computed_ += entry.tiles_total;
      previous_upscaled_ = upscaled;
      return upscaled;
    }
    const int computed = entry.tiles->changed_count();
    tiles_computed_ += computed;
    tiles_reused_ += entry.tiles_total - computed;
    tile_copy_timer_.time([&] {
      if (!previous_upscaled_)
        throw Error({}, "tile reuse has no previous upscaled frame to take tiles from",
                    ExitCode::kProcessingFailed, "save", entry.index);
      Frame frame = upscaled;
      copy_reused_tiles(previous_upscaled_, frame, *entry.tiles, upscaler_.scale());
    });
    previous_upscaled_ = upscaled;
    return upscaled;
  }

  void report_progress(bool final) {
    if (!config_.progress) return;
    double elapsed = seconds_since(start_);
    if (!final && elapsed - last_progress_ < config_.progress_interval_s) return;
    last_progress_ = elapsed;
    Progress p;
    p.frames_done = frames_written_;
    p.frames_total = config_.frames_total;
    p.unique = unique_written_;
    p.duplicates = frames_written_ - unique_written_;
    p.damaged = decoder_.damaged_frames();
    p.tiles_reused = tiles_reused_;
    p.tiles_computed = tiles_computed_;
    p.elapsed_s = elapsed;
    p.fps = elapsed > 0 ? double(frames_written_) / elapsed : 0;
    if (p.frames_total >= 0 && p.fps > 0)
      p.eta_s = double(std::max<int64_t>(0, p.frames_total - p.frames_done)) / p.fps;
    if (elapsed > 0) {
      p.stage_busy[0] = decode_timer_.seconds() / elapsed;
      p.stage_busy[1] = detect_timer_.seconds() / elapsed;
      p.stage_busy[2] = upscale_timer_.wall_seconds() / elapsed;
      p.stage_busy[3] = save_timer_.seconds() / elapsed;
    }
    p.final = final;
    config_.progress(p);
  }

  // --- sequential mode: one worker, no pre-loading ---

  void run_sequential() {
    upscaler_.prepare(1);
    std::unique_ptr<UpscaleWorker> worker = upscaler_.create_worker();
    for (int64_t index = 0;; ++index) {
      std::optional<Frame> frame = decode_one(index);
      if (!frame) break;
      FrameEntry entry = detect_one(index, *frame);
      Frame upscaled;
      if (!entry.duplicate && !entry.kept)
        upscaled = upscale_one(*worker, index, *frame, entry.tiles.get());
      frame.reset();
      save_one(entry, upscaled);
    }
  }

  // --- streamed mode ---

  struct Decoded {
    int64_t index;
    Frame frame;
    std::shared_ptr<const TileMask> tiles;  // tile reuse: the tiles to compute
  };

  void fail(std::exception_ptr error) {
    {
      std::lock_guard lock(error_mutex_);
      if (!first_error_) first_error_ = error;
    }
    failed_ = true;
    slots_.abort();
    decoded_.abort();
    unique_.abort();
    entries_.abort();
    std::lock_guard lock(results_mutex_);  // no waiter can miss the wake-up
    results_ready_.notify_all();
  }

  template <typename F>
  std::thread stage_thread(F body) {
    return std::thread([this, body] {
      try {
        body();
      } catch (...) {
        fail(std::current_exception());
      }
    });
  }

  void run_streamed() {
    upscaler_.prepare(std::max(1, config_.workers));
    // Out of GPU memory while creating them: fewer workers (one line logged), docs/INTERFACE.md, "Pipeline and fallbacks".
    std::vector<std::unique_ptr<UpscaleWorker>> upscale_workers =
        nn::make_workers_fitting(config_.workers, [this] { return upscaler_.create_worker(); });
    const int workers = int(upscale_workers.size());
    workers_run_ = workers;

    std::vector<std::thread> threads;
    threads.push_back(stage_thread([this] {
      for (int64_t index = 0; !failed_; ++index) {
        std::optional<Frame> frame = decode_one(index);
        if (!frame) break;
        if (!decoded_.push({index, std::move(*frame), nullptr})) break;
      }
      decoded_.close();
    }));
    threads.push_back(stage_thread([this] {
      while (std::optional<Decoded> d = decoded_.pop()) {
        FrameEntry entry = detect_one(d->index, d->frame);
        if (!entries_.push(entry)) break;
        if (entry.duplicate || entry.kept) continue;
        d->tiles = entry.tiles;
        if (!slots_.acquire() || !unique_.push(std::move(*d))) break;
      }
      entries_.close();
      unique_.close();
    }));
    for (int i = 0; i < workers; ++i) {
      threads.push_back(stage_thread([this, worker = upscale_workers[i].get()] {
        while (std::optional<Decoded> d = unique_.pop()) {
          Frame upscaled = upscale_one(*worker, d->index, d->frame, d->tiles.get(), true);
          d->frame = Frame();
          std::lock_guard lock(results_mutex_);
          results_.emplace(d->index, std::move(upscaled));
          results_ready_.notify_all();
        }
      }));
    }

    try {
      // The save stage runs here, strictly in frame order.
      while (std::optional<FrameEntry> entry = entries_.pop()) {
        Frame upscaled;
        const bool upscaled_here = !entry->duplicate && !entry->kept;
        if (upscaled_here) {
          std::unique_lock lock(results_mutex_);
          results_ready_.wait(lock, [&] { return failed_ || results_.count(entry->index); });
          if (failed_) break;
          auto it = results_.find(entry->index);
          upscaled = std::move(it->second);
          results_.erase(it);
        }
        if (upscaled_here) wait_upscaled(upscaled, entry->index);  // not counted as saving
        save_one(*entry, upscaled);
        if (upscaled_here) slots_.release();
      }
    } catch (...) {
      fail(std::current_exception());
    }
    for (std::thread& t : threads) t.join();
    if (first_error_) std::rethrow_exception(first_error_);
  }

  VideoDecoder& decoder_;
  Upscaler& upscaler_;
  FrameSink& sink_;
  const VideoPipelineConfig& config_;
  dedup::DuplicateDetector detector_;
  UpscaledCache cache_;

  StageTimer decode_timer_, detect_timer_, save_timer_;
  // Tile reuse: the decision (detect stage), the previous unique frame's result (save stage).
  std::unique_ptr<dedup::TileChangeTracker> tiles_;
  StageTimer tile_compare_timer_, tile_copy_timer_;
  Frame previous_upscaled_;
  int64_t tiles_reused_ = 0, tiles_computed_ = 0;
  SharedStageTimer upscale_timer_;
  Clock::time_point start_;
  double last_progress_ = -1e9;
  int64_t frames_written_ = 0;
  int64_t unique_written_ = 0;
  int64_t frames_kept_ = 0;

  // Streamed mode: decode -> detect (small queue); detect -> workers (the pre-load window of
  // unique frames); detect -> save (every frame's decision, in order; a few bytes each).
  BoundedQueue<Decoded> decoded_{2};
  BoundedQueue<Decoded> unique_{size_t(std::max(1, config_.preload_frames))};
  BoundedQueue<FrameEntry> entries_{1 << 16};
  // Unique frames between detect and save (queued, being upscaled, or upscaled and waiting
  // for an earlier frame): at most the pre-load window plus one per worker, so a slow frame
  // cannot let the others pile up results.
  int workers_run_ = 0;  // upscale workers the streamed mode really created
  Slots slots_{size_t(std::max(1, config_.preload_frames) + std::max(1, config_.workers))};
  std::mutex results_mutex_;
  std::condition_variable results_ready_;
  std::map<int64_t, Frame> results_;
  std::atomic<bool> failed_{false};
  std::mutex error_mutex_;
  std::exception_ptr first_error_;
};

}  // namespace

void throw_if_stopped(const StopFlag* stop) {
  int sig = g_stop_signal.load();
  if (!sig && stop) sig = stop->load();
  if (sig)
    throw Interrupted(sig == 15 ? ExitCode::kInterruptedSigterm : ExitCode::kInterruptedSigint);
}

void run_video_pipeline(VideoDecoder& decoder, Upscaler& upscaler, FrameSink& sink,
                        const VideoPipelineConfig& config, JobStats& stats) {
  Runner runner(decoder, upscaler, sink, config);
  runner.run(stats);
}

}  // namespace upframe::pipeline

namespace upframe {

void request_stop(int signal) { pipeline::g_stop_signal.store(signal); }
void clear_stop_request() { pipeline::g_stop_signal.store(0); }
int stop_requested() { return pipeline::g_stop_signal.load(); }

}  // namespace upframe
