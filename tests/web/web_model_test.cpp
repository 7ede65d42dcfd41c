// The models of `upframe serve` (docs/WEB.md, "Models"), through a real server process: the
// list of every model file with what model-info says (a broken file listed with its error),
// and model uploads: checked by the model readers before they are kept, nothing left on disk
// when refused, then usable by a job.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>

#include "support/test_support.hpp"
#include "web/web_test_util.hpp"

namespace upframe::test {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

const fs::path kPytorch = source_dir() / "tests/models/pytorch";
const fs::path kWeights = source_dir() / "tests/models/weights";

// root/ (served) holding a 32x18 image; the server's user models folder is base/data/...
fs::path make_root(const std::string& name) {
  const fs::path base = scratch_dir(name);
  fs::create_directories(base / "root");
  fs::copy_file(kPytorch / "input_32x18.png", base / "root" / "in.png");
  return base / "root";
}

// The files in `dir` (hidden ones included), sorted; none when it does not exist.
std::vector<std::string> files_in(const fs::path& dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) names.push_back(e.path().filename());
  std::sort(names.begin(), names.end());
  return names;
}

httplib::Result upload(const ServeProcess& serve, const std::string& name,
                       const std::string& content, const std::string& query = "",
                       httplib::Headers headers = {}) {
  headers.emplace("X-Upframe-Token", serve.token());
  httplib::MultipartFormDataItems items = {{"file", content, name, "application/octet-stream"}};
  return serve.client().Post("/api/models" + query, headers, items);
}

const json* entry_for(const json& list, const std::string& file) {
  for (const json& m : list["models"])
    if (m["file"] == file) return &m;
  return nullptr;
}

TEST(WebModels, ListHasShippedAndUserModelsAndABrokenFileWithItsError) {
  const fs::path root = make_root("web-model-list");
  const fs::path user = root.parent_path() / "data" / "upframe" / "models";
  fs::create_directories(user);
  fs::copy_file(kPytorch / "compact-x4.safetensors", user / "mine-x4.safetensors");
  fs::copy_file(kPytorch / "esrgan-x4.onnx", user / "graph.onnx");
  std::ofstream(user / "broken.pth") << "not a model";
  ServeProcess serve(root);
  ASSERT_EQ(serve.user_models_dir(), user);
  const json list = serve.get_json("/api/models");
  EXPECT_EQ(list["folder"], user.string());
  EXPECT_EQ(list["max_upload_bytes"], 512 << 20);

  const json* shipped = entry_for(list, "realesr-animevideov3-x2.param");
  ASSERT_TRUE(shipped) << list.dump();
  EXPECT_EQ((*shipped)["name"], "realesr-animevideov3");
  EXPECT_EQ((*shipped)["format"], "ncnn");
  EXPECT_EQ((*shipped)["scale"], 2);
  EXPECT_EQ((*shipped)["purpose"], "anime / video");
  EXPECT_EQ((*shipped)["user"], false);

  const json* mine = entry_for(list, "mine-x4.safetensors");
  ASSERT_TRUE(mine) << list.dump();
  EXPECT_EQ((*mine)["name"], "mine");
  EXPECT_EQ((*mine)["suffix_scale"], 4);
  EXPECT_EQ((*mine)["family"], "Compact");
  EXPECT_EQ((*mine)["format"], "safetensors");
  EXPECT_EQ((*mine)["scale"], 4);
  EXPECT_EQ((*mine)["user"], true);
  EXPECT_FALSE(mine->contains("error"));

  const json* graph = entry_for(list, "graph.onnx");
  ASSERT_TRUE(graph) << list.dump();
  EXPECT_EQ((*graph)["family"], "ONNX graph");
  EXPECT_EQ((*graph)["scale"], 4);

  const json* broken = entry_for(list, "broken.pth");
  ASSERT_TRUE(broken) << list.dump();
  EXPECT_EQ((*broken)["error"].get<std::string>().rfind((user / "broken.pth").string() + ": ", 0),
            0u)
      << (*broken)["error"];
  EXPECT_FALSE(broken->contains("family"));

  // The user's model runs: a job by its NAME and scale.
  auto res = serve.post_json("/api/jobs", {{"input", "in.png"}, {"model", "mine"}, {"scale", 4}});
  ASSERT_EQ(status_of(res), 201) << res->body;
  const json job = serve.wait_job(json::parse(res->body)["id"], job_ended, 120s);
  EXPECT_EQ(job["state"], "done") << job.dump();
  const json info = serve.get_json("/api/info?path=in_x4.png");
  EXPECT_EQ(info["width"], 128);
  EXPECT_EQ(info["height"], 72);
}

TEST(WebModels, UploadsAreCheckedByTheModelReadersBeforeTheyAreKept) {
  const fs::path root = make_root("web-model-upload");
  const fs::path marker = "/tmp/upframe-evil-pickle-ran";  // what the evil pickle would create
  fs::remove(marker);
  ServeProcess serve(root, {"--max-model-upload-mb", "1"});
  const fs::path user = serve.user_models_dir();
  const std::string compact = read_file(kPytorch / "compact-x2.pth");

  // Refused, each with its status and one line, and nothing written anywhere.
  struct Refused {
    std::string name, content;
    int status;
    std::string error;  // the whole message, or a prefix of it ending in "*"
  };
  const std::vector<Refused> refused = {
      {"evil_zip.pth", read_file(kWeights / "evil_zip.pth"), 422,
       "evil_zip.pth: refused pickle GLOBAL 'posix.system': only tensors and containers are "
       "loaded from PyTorch files"},
      {"evil_legacy.pth", read_file(kWeights / "evil_legacy.pth"), 422,
       "evil_legacy.pth: refused pickle GLOBAL 'posix.system'*"},
      {"readme.onnx", "# not a model\n", 422, "readme.onnx: not a readable ONNX model"},
      {"junk.pth", std::string(4096, '\x7f'), 422, "junk.pth: *"},
      {"big.pth", std::string(2 << 20, 'x'), 413, "*larger than the limit (1 MiB*"},
      {"../escape.pth", compact, 400, "bad file name '../escape.pth'*"},
      {".hidden.pth", compact, 400, "bad file name*"},
      {"a\\b.pth", compact, 400, "bad file name*"},
      {"notes.txt", compact, 415, "notes.txt: not a model file name*"},
      {"model.param", compact, 415, "model.param: not a model file name*"},
      {"lanczos.pth", compact, 409, "lanczos.pth: 'lanczos' is a built-in resampler's name"},
      {"x.onnx.pth", compact, 400, "x.onnx.pth: a model's name may not end in .onnx"},
      {std::string(65, 'n') + ".pth", compact, 400, "*the model's name is too long (65 bytes*"},
      // A shipped model's NAME: a job would get one or the other by the search order.
      {"realesr-general-x4v3.pth", compact, 409, "realesr-general-x4v3.pth: the model*"},
  };
  for (const Refused& r : refused) {
    auto res = upload(serve, r.name, r.content);
    EXPECT_EQ(status_of(res), r.status) << r.name << ": " << (res ? res->body : "no answer");
    const std::string error = error_of(res);
    if (r.error.ends_with("*") || r.error.starts_with("*")) {
      std::string part = r.error;
      const bool anywhere = part.starts_with("*");
      part.erase(std::remove(part.begin(), part.end(), '*'), part.end());
      EXPECT_EQ(anywhere ? error.find(part) != std::string::npos : error.rfind(part, 0) == 0, true)
          << r.name << ": " << error;
    } else {
      EXPECT_EQ(error, r.error) << r.name;
    }
    EXPECT_EQ(error.find('\n'), std::string::npos) << error;
    EXPECT_EQ(files_in(user), std::vector<std::string>{}) << r.name;
  }
  EXPECT_FALSE(fs::exists(marker)) << "the evil pickle's command ran";
  EXPECT_FALSE(fs::exists(root.parent_path() / "escape.pth"));
  EXPECT_FALSE(fs::exists(root.parent_path() / "data" / "upframe" / "escape.pth"));
  // The page's protections hold for uploads too.
  EXPECT_EQ(status_of(upload(serve, "x.pth", compact, "", {{"Origin", "http://evil.example"}})),
            403);
  httplib::MultipartFormDataItems items = {{"file", compact, "x.pth", ""}};
  EXPECT_EQ(status_of(serve.client().Post("/api/models", items)), 403);  // no token
  EXPECT_EQ(files_in(user), std::vector<std::string>{});

  // A good one is kept under its name, listed, and not replaced unless asked.
  auto res = upload(serve, "compact-x2.pth", compact);
  ASSERT_EQ(status_of(res), 201) << (res ? res->body : "");
  json kept = json::parse(res->body);
  EXPECT_EQ(kept["name"], "compact");
  EXPECT_EQ(kept["family"], "Compact");
  EXPECT_EQ(kept["scale"], 2);
  EXPECT_EQ(kept["format"], "pytorch-zip");
  EXPECT_EQ(kept["size"], compact.size());
  EXPECT_EQ(files_in(user), std::vector<std::string>{"compact-x2.pth"});
  EXPECT_EQ(read_file(user / "compact-x2.pth"), compact);
  const json list = serve.get_json("/api/models");
  const json* listed = entry_for(list, "compact-x2.pth");
  ASSERT_TRUE(listed);
  EXPECT_EQ((*listed)["user"], true);
  const std::string other = read_file(kPytorch / "esrgan-old-x2.pth");
  res = upload(serve, "compact-x2.pth", other);
  EXPECT_EQ(status_of(res), 409);
  EXPECT_EQ(read_file(user / "compact-x2.pth"), compact);
  res = upload(serve, "compact-x2.pth", other, "?overwrite=1");
  ASSERT_EQ(status_of(res), 201) << (res ? res->body : "");
  EXPECT_EQ(json::parse(res->body)["family"], "ESRGAN");
  EXPECT_EQ(read_file(user / "compact-x2.pth"), other);
  // Not another extension beside it either (which one a job got would be the search order's).
  EXPECT_EQ(status_of(upload(serve, "compact-x2.safetensors",
                             read_file(kPytorch / "compact-x4.safetensors"))),
            409);
  EXPECT_EQ(files_in(user), std::vector<std::string>{"compact-x2.pth"});

  // A job with it runs; the models folder is the server's, not the request's.
  res = serve.post_json("/api/jobs", {{"input", "in.png"}, {"model", "compact"}, {"scale", 2}});
  ASSERT_EQ(status_of(res), 201) << res->body;
  const json job = serve.wait_job(json::parse(res->body)["id"], job_ended, 120s);
  EXPECT_EQ(job["state"], "done") << job.dump();
  EXPECT_EQ(serve.get_json("/api/info?path=in_x2.png")["width"], 64);
  res = serve.post_json("/api/jobs",
                        {{"input", "in.png"}, {"model", "compact"}, {"models_dir", "/tmp"}});
  EXPECT_EQ(status_of(res), 400);
  EXPECT_EQ(error_of(res), "'models_dir' cannot be set from the web UI");
}

TEST(WebModels, ModelsDirFlagTakesTheUploads) {
  const fs::path root = make_root("web-model-dir");
  const fs::path mine = root.parent_path() / "my-models";
  fs::create_directories(mine);
  ServeProcess serve(root, {"--models-dir", mine.string()});
  EXPECT_EQ(serve.get_json("/api/models")["folder"], mine.string());
  auto res = upload(serve, "tiny.safetensors", read_file(kPytorch / "compact-x4.safetensors"));
  ASSERT_EQ(status_of(res), 201) << (res ? res->body : "");
  EXPECT_EQ(files_in(mine), std::vector<std::string>{"tiny.safetensors"});
  EXPECT_EQ(files_in(serve.user_models_dir()), std::vector<std::string>{});
  // A plain NAME's scale is the model's own (x4 here).
  res = serve.post_json("/api/jobs", {{"input", "in.png"}, {"model", "tiny"}, {"scale", nullptr}});
  ASSERT_EQ(status_of(res), 201) << res->body;
  EXPECT_EQ(serve.wait_job(json::parse(res->body)["id"], job_ended, 120s)["state"], "done");
  EXPECT_EQ(serve.get_json("/api/info?path=in_x4.png")["width"], 128);
}

}  // namespace
}  // namespace upframe::test
