// The op catalogue (tests/nn/op_cases.hpp) on CUDA against the CPU executor: fp32 within 1e-4,
// fp16 within each case's tolerance for fp16 storage. Skips without a device.
#include "nn/nn_test_util.hpp"
#include "nn/op_cases.hpp"
#include "upframe/cuda_device.hpp"
#include "upframe/nn/model.hpp"

namespace upframe::test {
namespace {

TEST(NnCudaOpCases, CudaMatchesCpu) {
  auto dev = upframe::cuda_device_info();
  if (!dev.available) GTEST_SKIP() << dev.reason;
  for (const op_cases::OpCase& c : op_cases::all_cases()) {
    SCOPED_TRACE(c.name);
    auto model = write_model("nn-cuda-case-" + c.name, c.layers, c.bin);
    const nn::Tensor cpu = nn::make_cpu_executor(model, nn::Precision::kFp32)->run(c.input);
    const nn::Tensor fp32 = nn::make_cuda_executor(model, nn::Precision::kFp32)->run(c.input);
    EXPECT_LE(max_abs_difference(fp32, cpu), 1e-4f) << "fp32";
    const nn::Tensor fp16 = nn::make_cuda_executor(model, nn::Precision::kFp16)->run(c.input);
    EXPECT_LE(max_abs_difference(fp16, cpu), c.fp16_tolerance) << "fp16";
  }
}

}  // namespace
}  // namespace upframe::test
