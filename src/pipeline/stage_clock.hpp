// Busy-time accounting per stage (docs/INTERFACE.md, "Stats"): only the time a stage spends working,
// not waiting on a queue. The upscale stage's wall busy time counts the union of its
// workers' busy intervals (at least one busy); the busy sum counts them all.
#pragma once

#include <atomic>
#include <chrono>
#include <mutex>

namespace upframe::pipeline {

using Clock = std::chrono::steady_clock;

inline double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// One stage worked on by one thread at a time.
class StageTimer {
 public:
  template <typename F>
  decltype(auto) time(F&& work) {
    struct Guard {
      StageTimer& timer;
      Clock::time_point start = Clock::now();
      ~Guard() { timer.add(seconds_since(start)); }
    } guard{*this};
    return work();
  }
  void add(double seconds) { busy_ns_ += static_cast<int64_t>(seconds * 1e9); }
  double seconds() const { return double(busy_ns_.load()) * 1e-9; }

 private:
  std::atomic<int64_t> busy_ns_{0};
};

// A stage worked on by several threads at once.
class SharedStageTimer {
 public:
  template <typename F>
  decltype(auto) time(F&& work) {
    begin();
    struct Guard {
      SharedStageTimer& timer;
      Clock::time_point start = Clock::now();
      ~Guard() { timer.end(seconds_since(start)); }
    } guard{*this};
    return work();
  }
  double wall_seconds() const {
    std::lock_guard lock(mutex_);
    double open = active_ > 0 ? seconds_since(since_) : 0.0;
    return wall_ + open;
  }
  double summed_seconds() const {
    std::lock_guard lock(mutex_);
    return summed_;
  }

 private:
  void begin() {
    std::lock_guard lock(mutex_);
    if (active_++ == 0) since_ = Clock::now();
  }
  void end(double seconds) {
    std::lock_guard lock(mutex_);
    summed_ += seconds;
    if (--active_ == 0) wall_ += seconds_since(since_);
  }
  mutable std::mutex mutex_;
  int active_ = 0;
  Clock::time_point since_;
  double wall_ = 0, summed_ = 0;
};

}  // namespace upframe::pipeline
