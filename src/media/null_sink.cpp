#include "upframe/media/frame_sink.hpp"

namespace upframe {

namespace {
class NullSink final : public FrameSink {
 public:
  void write_unique(int64_t, const Frame&, int64_t) override {}
  void write_duplicate(int64_t, int64_t, const Frame&, int64_t) override {}
  void finish() override {}
  void abort() noexcept override {}
  std::vector<std::string> notes() const override { return {"null output: nothing written"}; }
};
}  // namespace

std::unique_ptr<FrameSink> make_null_sink() { return std::make_unique<NullSink>(); }

}  // namespace upframe
