#include "model_info_command.hpp"

#include <cstdio>
#include <nlohmann/json.hpp>

#include <CLI/CLI.hpp>

#include "report_error.hpp"
#include "setup.hpp"
#include "upframe/error.hpp"
#include "upframe/nn/model_file.hpp"

int run_model_info_command(int argc, char** argv) {
  CLI::App app{"upframe model-info: describe a model file (ncnn .param, .pth, .safetensors)"};
  app.name("upframe model-info");
  upframe::cli::use_help_style(app);
  std::string file;
  bool json = false;
  app.add_option("FILE", file, "the model file")->required();
  app.add_flag("--json", json, "one JSON object on stdout");
  if (int status = upframe::cli::parse_command_line(app, argc, argv); status >= 0) return status;
  upframe::nn::ModelFileInfo info;
  try {
    info = upframe::nn::describe_model_file(file);
  } catch (const upframe::Error& e) {
    return upframe::cli::report_error(e);
  }
  if (json) {
    nlohmann::ordered_json out = {{"file", file},
                                  {"format", info.format},
                                  {"family", info.family},
                                  {"details", info.details},
                                  {"scale", info.scale},
                                  {"input_channels", info.input_channels},
                                  {"output_channels", info.output_channels},
                                  {"weight_precision", info.weight_precision},
                                  {"receptive_radius", info.receptive_radius},
                                  {"whole_image", info.whole_image}};
    out["parameters"] = info.parameters >= 0 ? nlohmann::ordered_json(info.parameters) : nullptr;
    nlohmann::ordered_json ops = nlohmann::ordered_json::object();
    for (const auto& [type, count] : info.ops) ops[type] = count;
    out["ops"] = ops;
    std::printf("%s\n", out.dump().c_str());
    return 0;
  }
  std::printf("file:             %s\n", file.c_str());
  std::printf("format:           %s\n", info.format.c_str());
  std::printf("family:           %s%s%s\n", info.family.c_str(), info.details.empty() ? "" : " (",
              info.details.empty() ? "" : (info.details + ")").c_str());
  std::printf("scale:            x%d\n", info.scale);
  std::printf("channels:         %d in, %d out\n", info.input_channels, info.output_channels);
  if (info.parameters >= 0) std::printf("parameters:       %lld\n", (long long)info.parameters);
  std::printf("weight precision: %s\n", info.weight_precision.c_str());
  std::printf("receptive radius: %d px%s\n", info.receptive_radius,
              info.whole_image ? " and the whole image (tiles change the output)" : "");
  std::string ops;
  for (const auto& [type, count] : info.ops)
    ops += (ops.empty() ? "" : ", ") + type + " x" + std::to_string(count);
  std::printf("ops:              %s\n", ops.c_str());
  return 0;
}
