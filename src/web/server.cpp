// The HTTP side of `upframe serve`: cpp-httplib (Debian's libcpp-httplib-dev) for the server,
// routes for the page and its JSON API (docs/WEB.md), the checks every request goes through
// (Host, token, roots), and Server-Sent Events for live progress.
#include "upframe/web/server.hpp"

#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <spdlog/spdlog.h>
#include <sys/random.h>

#include <charconv>
#include <csignal>
#include <fstream>
#include <set>
#include <thread>

#include "upframe/error.hpp"
#include "upframe/media/decoder.hpp"
#include "upframe/pipeline/batch.hpp"
#include "upframe/pipeline/job.hpp"
#include "upframe/upscale/factory.hpp"
#include "upframe/web/job_queue.hpp"
#include "upframe/web/preview.hpp"
#include "upframe/web/roots.hpp"
#include "web/guarded_server.hpp"
#include "web/job_store.hpp"
#include "web/model_catalog.hpp"
#include "web/page.hpp"
#include "web/request_text.hpp"

namespace upframe::web {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// Settings a request may not set: the server owns the console, where files are written
// outside the output (a stats file anywhere, a config file read from anywhere) and which
// folders models are read from (its --models-dir).
bool settable_by_request(const std::string& key) {
  return key != "stats" && key != "quiet" && key != "progress_json" && key != "input" &&
         key != "output" && key != "model" && key != "models_dir";
}

std::string random_token() {
  unsigned char bytes[16];
  if (getrandom(bytes, sizeof bytes, 0) != ssize_t(sizeof bytes))
    throw Error({}, "cannot read random bytes for the page's token");
  static const char* hex = "0123456789abcdef";
  std::string token;
  for (unsigned char b : bytes) {
    token += hex[b >> 4];
    token += hex[b & 15];
  }
  return token;
}

bool same_token(const std::string& given, const std::string& expected) {
  // Constant time in the token's content, so its bytes cannot be guessed one at a time.
  if (given.size() != expected.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < given.size(); ++i) diff |= given[i] ^ expected[i];
  return diff == 0;
}

void send_json(httplib::Response& res, int status, const json& body) {
  res.status = status;
  // Text from the file system need not be UTF-8: shown with U+FFFD rather than failing.
  res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
}

void send_error(httplib::Response& res, int status, const std::string& problem) {
  // A message of ours quotes short prefixes of what the request sent; this bounds the rest
  // (a path from the file system).
  send_json(res, status, {{"error", shown(problem, 400)}});
}

// Whether a Host header names this loopback server: a loopback literal or `localhost`, with
// the server's port (or none when that is 80). A DNS name is never loopback, whatever it
// starts with: another site's name rebound to 127.0.0.1 sends that name.
bool is_loopback_host_header(const std::string& header, int port) {
  std::string host, port_text;
  bool has_port = false;
  if (header.starts_with("[")) {
    const size_t close = header.find(']');
    if (close == std::string::npos) return false;
    host = header.substr(1, close - 1);
    if (host.find(':') == std::string::npos) return false;  // brackets hold IPv6 only
    const std::string rest = header.substr(close + 1);
    if (!rest.empty()) {
      if (rest[0] != ':') return false;
      has_port = true;
      port_text = rest.substr(1);
    }
  } else {
    const size_t colon = header.find(':');
    host = header.substr(0, colon);
    if (colon != std::string::npos) {
      has_port = true;
      port_text = header.substr(colon + 1);
    }
  }
  if (has_port) {
    int given = -1;
    const auto [end, ec] =
        std::from_chars(port_text.data(), port_text.data() + port_text.size(), given);
    if (ec != std::errc() || end != port_text.data() + port_text.size() || port_text.empty() ||
        given != port)
      return false;
  } else if (port != 80) {
    return false;
  }
  return is_loopback_host(host);
}

// A job id from the path (digits, matched by the route): too many digits is no job either.
int64_t job_id(const httplib::Request& req) {
  const std::string text = req.matches[1];
  int64_t id = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), id);
  if (ec != std::errc() || end != text.data() + text.size())
    throw RequestError(404, "no job " + shown(text, 20));
  return id;
}

json parse_body(const httplib::Request& req) {
  json body;
  try {
    body = json::parse(req.body);
  } catch (const json::parse_error& e) {
    // nlohmann's text without its id prefix and without the bytes it last read (which may be
    // anything the client sent).
    std::string what = e.what();
    if (const size_t at = what.find("] "); at != std::string::npos) what.erase(0, at + 2);
    if (const size_t at = what.find("; last read"); at != std::string::npos) what.erase(at);
    throw RequestError(400, "bad JSON: " + shown(what, 160));
  }
  if (!body.is_object()) throw RequestError(400, "bad JSON: expected an object");
  return body;
}

// A JSON value in the text form set_setting reads ("true", "4", "auto").
std::string setting_text(const std::string& key, const json& value, size_t max_length = 256) {
  if (value.is_boolean()) return value.get<bool>() ? "true" : "false";
  if (value.is_string()) {
    // No setting's value is this long; the CLI's message would quote all of it.
    if (value.get_ref<const std::string&>().size() > max_length)
      throw RequestError(400, "bad value for '" + key + "': too long (" +
                                  std::to_string(value.get_ref<const std::string&>().size()) +
                                  " characters)");
    return value.get<std::string>();
  }
  if (value.is_number()) return value.dump();
  throw RequestError(400, "bad value for '" + key + "': expected a string, number or boolean");
}

std::vector<std::string> model_names(const fs::path& models_dir) {
  std::vector<std::string> names;
  for (const std::string& entry : available_models(models_dir))
    names.push_back(entry.substr(0, entry.find(" (")));
  names.push_back("lanczos");
  names.push_back("bicubic");
  return names;
}

class WebServer {
 public:
  WebServer(const ServeOptions& options)
      : options_(options),
        roots_(options.roots),
        token_(options.token.empty() ? random_token() : options.token),
        page_(page_html(token_)),
        models_(options.models_dir) {}

  int run(const std::function<void(const std::string&)>& on_ready);

 private:
  void add_routes();
  // Starts the queue with the jobs kept from earlier runs (in memory only, saying why, when
  // their file cannot be used).
  void start_queue();
  bool allowed(const httplib::Request& req, httplib::Response& res) const;
  // Runs a handler, turning its exceptions into JSON errors with the right status.
  httplib::Server::Handler guarded(
      std::function<void(const httplib::Request&, httplib::Response&)> f);

  // The settings a job or preview request asks for; `own_keys` are the request's own
  // (a preview's frame), not settings.
  Settings settings_from(const json& body, json& accepted,
                         const std::set<std::string>& own_keys = {}) const;
  void create_job(const httplib::Request& req, httplib::Response& res);
  void list_folder(const httplib::Request& req, httplib::Response& res) const;
  void media_info(const httplib::Request& req, httplib::Response& res) const;
  void upload(const httplib::Request& req, httplib::Response& res) const;
  void upload_model(const httplib::Request& req, httplib::Response& res,
                    const httplib::ContentReader& read_body);
  void preview(const httplib::Request& req, httplib::Response& res);
  void job_events(const httplib::Request& req, httplib::Response& res);

  ServeOptions options_;
  Roots roots_;
  std::string token_;
  std::string page_;
  GuardedServer server_;
  int port_ = 0;  // once bound
  JobQueue queue_;
  PreviewCache previews_;
  std::atomic<bool> stopping_{false};
  std::atomic<int> open_streams_{0};
  ModelCatalog models_;
};

bool WebServer::allowed(const httplib::Request& req, httplib::Response& res) const {
  // The log lines of this thread (a preview's) are not the running job's.
  JobQueue::exclude_this_thread_from_job_logs();
  // DNS rebinding: a page of another site whose name resolves to 127.0.0.1 sends its own
  // Host; a loopback server answers only to loopback names with its port.
  const std::string host = req.get_header_value("Host");
  if (is_loopback_host(options_.host) && !is_loopback_host_header(host, port_)) {
    send_error(res, 403,
               "Host '" + shown(host) + "' is not this server's loopback address and port");
    return false;
  }
  const bool changes_state = req.method != "GET" && req.method != "HEAD";
  // A page of another origin may send a form or a fetch here: its browser names that origin.
  // (https: the page served through a TLS proxy that keeps the Host.)
  const std::string origin = req.get_header_value("Origin");
  if (changes_state && req.has_header("Origin") && origin != "http://" + host &&
      origin != "https://" + host) {
    send_error(res, 403,
               "Origin '" + shown(req.get_header_value("Origin")) + "' is not this server's");
    return false;
  }
  // httplib reads a body without Content-Length until the connection closes (a response's
  // rule); a request without one has none (RFC 9112), so ask for it rather than wait.
  if (req.method == "POST" && !req.has_header("Content-Length") &&
      !req.has_header("Transfer-Encoding") && !req.path.ends_with("/cancel")) {
    send_error(res, 411, "a POST needs a Content-Length header");
    return false;
  }
  // With --token every request needs it (the printed URL carries it); without, only the
  // state-changing ones, with the token the page was served with (CSRF: another site's page
  // cannot read it).
  if (changes_state || !options_.token.empty()) {
    std::string given = req.get_header_value("X-Upframe-Token");
    if (given.empty()) given = req.get_param_value("token");
    if (!same_token(given, token_)) {
      send_error(
          res, 403,
          given.empty() ? "missing token (X-Upframe-Token header or ?token=)" : "wrong token");
      return false;
    }
  }
  return true;
}

httplib::Server::Handler WebServer::guarded(
    std::function<void(const httplib::Request&, httplib::Response&)> f) {
  return [f = std::move(f)](const httplib::Request& req, httplib::Response& res) {
    try {
      f(req, res);
    } catch (const RequestError& e) {
      send_error(res, e.status(), e.what());
    } catch (const UsageError& e) {
      send_error(res, 400, e.what());
    } catch (const Error& e) {
      send_error(res, 422, e.what());
    } catch (const json::exception& e) {
      // A value of the wrong type read somewhere: the library's text says too little.
      spdlog::debug("{} {}: {}", req.method, shown(req.path), e.what());
      send_error(res, 400, "bad JSON: a value has the wrong type");
    } catch (const std::filesystem::filesystem_error& e) {
      send_error(res, 422, shown(e.path1().string()) + ": " + e.code().message());
    } catch (const std::exception& e) {
      // Not one of ours: the whole text goes to the log, the client gets no raw text.
      spdlog::error("{} {}: {}", req.method, shown(req.path), e.what());
      send_error(res, 422, "the request failed (the server's log says why)");
    }
  };
}

Settings WebServer::settings_from(const json& body, json& accepted,
                                  const std::set<std::string>& own_keys) const {
  Settings settings;
  if (!body.contains("input") || !body["input"].is_string())
    throw RequestError(400, "'input' is missing (a path under the allowed folders)");
  settings.input = roots_.resolve(body["input"].get<std::string>());
  std::error_code ec;
  if (!fs::exists(settings.input, ec))
    throw RequestError(404, shown(body["input"].get<std::string>()) + ": no such file or folder");
  accepted["input"] = settings.input.string();
  for (const auto& [key, value] : body.items()) {
    if (key == "input" || key == "output" || own_keys.count(key) || value.is_null()) continue;
    if (key == "model") {
      std::string model = setting_text(key, value, 4096);
      // A PATH.param model is read from disk: under the roots like every other path.
      if (model.find('/') != std::string::npos || model.ends_with(".param"))
        model = roots_.resolve(model).string();
      else if (model.size() > 64 || !is_valid_utf8(model) || has_control_character(model))
        throw RequestError(400, "unknown model '" + shown(model) + "'");
      settings.model = model;
      accepted[key] = model;
      continue;
    }
    if (!find_setting(key)) throw RequestError(400, "unknown key '" + shown(key, 40) + "'");
    if (!settable_by_request(key))
      throw RequestError(400, "'" + key + "' cannot be set from the web UI");
    set_setting(settings, key, setting_text(key, value), "request");
    accepted[key] = value;
  }
  if (body.contains("output") && body["output"].is_string() &&
      !body["output"].get<std::string>().empty()) {
    const std::string given = body["output"].get<std::string>();
    settings.output = roots_.resolve(given);
    // plan_output reads a trailing '/' as "a frames folder": keep it.
    if (given.ends_with("/")) settings.output += "/";
    accepted["output"] = settings.output.string();
  }
  settings.progress_json = false;
  settings.quiet = false;
  settings.models_dir = options_.models_dir;
  validate_settings(settings);
  return settings;
}

void WebServer::create_job(const httplib::Request& req, httplib::Response& res) {
  const json body = parse_body(req);
  json accepted;
  Settings settings = settings_from(body, accepted);
  // The model and scale are checked now (a bad one is this request's error, not a failed job).
  const int scale = upscaler_scale(upscaler_options(settings));
  fs::path output;
  if (fs::is_directory(settings.input)) {
    for (const BatchItem& item : plan_batch(settings, scale))
      if (!roots_.contains(fs::weakly_canonical(item.output)))
        throw RequestError(403, item.output.string() + ": outside the allowed folders");
    output = settings.output.empty()
                 ? fs::path(settings.input.string() + "_x" + std::to_string(scale))
                 : settings.output;
  } else {
    output = plan_output(settings, scale).path;
  }
  output = fs::weakly_canonical(output);
  if (!roots_.contains(output))
    throw RequestError(403, output.string() + ": outside the allowed folders");
  std::error_code ec;
  const bool there =
      fs::exists(output, ec) && !(fs::is_directory(output, ec) && fs::is_empty(output, ec));
  // --resume decides for itself whether an existing output is this job's finished result.
  if (there && !settings.overwrite && !settings.resume)
    throw RequestError(
        409, output.string() + ": output exists (ask to overwrite it, or choose another name)");
  accepted["output_path"] = output.string();
  const int64_t id = queue_.submit(settings, accepted);
  send_json(res, 201, {{"id", id}, {"output", output.string()}});
}

void WebServer::list_folder(const httplib::Request& req, httplib::Response& res) const {
  const std::string given =
      req.has_param("path") ? req.get_param_value("path") : roots_.folders().front().string();
  const fs::path folder = roots_.resolve(given);
  std::error_code ec;
  if (!fs::is_directory(folder, ec)) throw RequestError(404, shown(given) + ": not a folder");
  json entries = json::array();
  for (const auto& entry : fs::directory_iterator(folder, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.starts_with(".")) continue;  // our temporary files among others
    const bool dir = entry.is_directory(ec);
    // A partial run (OUTPUT.upframe-partial/) is upframe's own, not an input.
    if (dir && name.ends_with(".upframe-partial")) continue;
    json e = {{"name", name}, {"path", entry.path().string()}, {"dir", dir}};
    if (!dir) {
      e["size"] = entry.file_size(ec);
      e["media"] = is_image_path(entry.path()) || is_video_path(entry.path());
    }
    entries.push_back(e);
  }
  std::sort(entries.begin(), entries.end(), [](const json& a, const json& b) {
    if (a["dir"] != b["dir"]) return a["dir"].get<bool>();
    return a["name"].get<std::string>() < b["name"].get<std::string>();
  });
  json parent;
  if (folder.has_parent_path() && roots_.contains(folder.parent_path()))
    parent = folder.parent_path().string();
  send_json(res, 200, {{"path", folder.string()}, {"parent", parent}, {"entries", entries}});
}

void WebServer::media_info(const httplib::Request& req, httplib::Response& res) const {
  const fs::path path = roots_.resolve(req.get_param_value("path"));
  std::error_code ec;
  if (!fs::is_regular_file(path, ec))
    throw RequestError(404, shown(req.get_param_value("path")) + ": no such file");
  VideoDecoder decoder(path);
  const VideoInfo& info = decoder.info();
  const double fps = info.avg_frame_rate.den ? av_q2d(info.avg_frame_rate) : 0;
  int64_t frames = info.frame_count;
  if (info.is_image) frames = 1;
  if (frames < 0 && fps > 0) frames = int64_t(info.duration_seconds * fps + 0.5);
  send_json(res, 200,
            {{"path", path.string()},
             {"width", info.width},
             {"height", info.height},
             {"codec", info.codec},
             {"frames", frames},
             {"fps", fps},
             {"duration", info.duration_seconds},
             {"is_image", info.is_image}});
}

void WebServer::upload(const httplib::Request& req, httplib::Response& res) const {
  const fs::path folder = roots_.resolve(req.get_param_value("dir"));
  std::error_code ec;
  if (!fs::is_directory(folder, ec)) throw RequestError(404, folder.string() + ": not a folder");
  if (!req.has_file("file")) throw RequestError(400, "no 'file' field in the upload form");
  // The server reads bodies up to the larger of the two upload limits (a multipart body is
  // parsed into req.files, not kept in req.body).
  const httplib::MultipartFormData file = req.get_file_value("file");
  if (file.content.size() > options_.max_upload_bytes)
    throw RequestError(413,
                       "POST /api/upload: the body is larger than the limit (--max-upload-mb " +
                           std::to_string(options_.max_upload_bytes >> 20) + ")");
  // NAME_MAX, less the hidden temporary's additions (".NAME.upframe-upload").
  check_upload_file_name(file.filename, 255 - 16);
  const std::string& name = file.filename;
  const fs::path target = folder / name;
  if (!is_image_path(target) && !is_video_path(target))
    throw RequestError(415, shown(name) + ": not an image or video file name");
  if (fs::exists(target, ec)) throw RequestError(409, shown(name) + ": already exists");
  // Written under a hidden name, checked by opening it as media, then renamed.
  const fs::path temporary = folder / ("." + name + ".upframe-upload");
  {
    std::ofstream out(temporary, std::ios::binary);
    out.write(file.content.data(), std::streamsize(file.content.size()));
    if (!out) {
      fs::remove(temporary, ec);
      throw RequestError(500, target.string() + ": cannot write the upload");
    }
  }
  try {
    VideoDecoder probe(temporary);
  } catch (const std::exception& e) {
    fs::remove(temporary, ec);
    throw RequestError(415, shown(name) + ": not a readable image or video");
  }
  fs::rename(temporary, target, ec);
  if (ec) {
    fs::remove(temporary, ec);
    throw RequestError(500, target.string() + ": " + ec.message());
  }
  spdlog::info("upload: {} ({} bytes)", target.string(), file.content.size());
  send_json(res, 201, {{"path", target.string()}, {"size", file.content.size()}});
}

void WebServer::upload_model(const httplib::Request& req, httplib::Response& res,
                             const httplib::ContentReader& read_body) {
  // The body is read to its end whatever is wrong with it (then the error is answered): a
  // server that closes with unread bytes resets the connection, and the client sees no answer.
  const uint64_t limit = options_.max_model_upload_bytes;
  std::exception_ptr failure;
  std::unique_ptr<ModelUpload> upload;
  bool file_field = false, seen_file = false;
  auto fail = [&] {
    if (!failure) failure = std::current_exception();
    upload.reset();  // removes the temporary
  };
  const bool overwrite = req.get_param_value("overwrite") == "1";
  if (req.has_header("Content-Length")) {
    const std::string length = req.get_header_value("Content-Length");
    uint64_t bytes = 0;
    const auto [end, ec] = std::from_chars(length.data(), length.data() + length.size(), bytes);
    if (ec == std::errc() && bytes > limit + (64 << 10)) {  // room for the form's own lines
      try {
        throw RequestError(413, "POST /api/models: the model file is larger than the limit (" +
                                    std::to_string(limit >> 20) + " MiB, --max-model-upload-mb)");
      } catch (...) {
        fail();
      }
    }
  }
  bool read = true;
  auto drain = [&] {
    // httplib parses a multipart body with the form reader whatever the handler wants.
    auto discard = [](const char*, size_t) { return true; };
    return req.is_multipart_form_data()
               ? read_body([](const httplib::MultipartFormData&) { return true; }, discard)
               : read_body(discard);
  };
  if (failure) {
    read = drain();
  } else if (req.is_multipart_form_data()) {
    read = read_body(
        [&](const httplib::MultipartFormData& part) {
          file_field = part.name == "file" && !seen_file;
          if (!file_field || failure) return true;
          seen_file = true;
          try {
            upload = std::make_unique<ModelUpload>(models_, part.filename, overwrite, limit);
          } catch (...) {
            fail();
          }
          return true;
        },
        [&](const char* data, size_t size) {
          if (!file_field || failure) return true;
          try {
            upload->write(data, size);
          } catch (...) {
            fail();
          }
          return true;
        });
  } else {
    read = drain();
    if (!failure) {
      try {
        throw RequestError(400, "expected a multipart form with a 'file' field");
      } catch (...) {
        fail();
      }
    }
  }
  if (failure) std::rethrow_exception(failure);
  if (!read) {
    // httplib's reader says why in the status it set (413 past its own limit, 400 a bad form).
    upload.reset();
    if (res.status == 413)
      throw RequestError(413, "POST /api/models: the body is larger than the server's limit");
    throw RequestError(400, "the upload form could not be read");
  }
  if (!upload) throw RequestError(400, "no 'file' field in the upload form");
  const uint64_t size = upload->size();
  json entry = upload->keep();
  entry["size"] = size;
  send_json(res, 201, entry);
}

void WebServer::preview(const httplib::Request& req, httplib::Response& res) {
  const json body = parse_body(req);
  json accepted;
  PreviewRequest request;
  request.settings = settings_from(body, accepted, {"frame", "time", "original"});
  request.input = request.settings.input;
  if (fs::is_directory(request.input))
    throw RequestError(400, "a preview needs a file, not a folder");
  if (body.contains("time") && body["time"].is_number()) request.time = body["time"].get<double>();
  if (body.contains("frame") && body["frame"].is_number_integer())
    request.frame = body["frame"].get<int64_t>();
  if (request.frame < 0) throw RequestError(400, "'frame' must be 0 or more");
  if (body.contains("original") && !body["original"].is_boolean())
    throw RequestError(400, "'original' must be true or false");
  request.original = body.value("original", false);
  spdlog::info("preview: {} frame {}{}", request.input.string(), request.frame,
               request.original ? " (the original)" : "");
  res.set_content(previews_.png(request), "image/png");
}

void WebServer::job_events(const httplib::Request& req, httplib::Response& res) {
  const int64_t id = job_id(req);
  std::optional<json> job = queue_.describe(id);
  if (!job) throw RequestError(404, "no job " + std::to_string(id));
  res.set_header("Cache-Control", "no-cache");
  auto cursor = std::make_shared<JobCursor>();
  auto sent_snapshot = std::make_shared<bool>(false);
  // Counts the open streams until httplib drops the provider, so that a stopping server
  // waits for each to send its job's end.
  ++open_streams_;
  std::shared_ptr<void> open_stream(nullptr, [this](void*) { --open_streams_; });
  res.set_chunked_content_provider(
      "text/event-stream",
      [this, id, cursor, sent_snapshot, open_stream](size_t, httplib::DataSink& sink) {
        auto send = [&sink](const std::string& event, const json& data) {
          const std::string text = "event: " + event + "\ndata: " + data.dump() + "\n\n";
          return sink.write(text.data(), text.size());
        };
        if (!*sent_snapshot) {
          // The whole job first (log so far included), then only what is new.
          std::optional<json> now = queue_.describe(id);
          cursor->log_lines = (*now)["log"].size();
          *sent_snapshot = true;
          if (!send("snapshot", *now)) return false;
        }
        std::optional<JobNews> news =
            queue_.wait_for_news(id, *cursor, std::chrono::milliseconds(500));
        if (!news) return false;
        for (const std::string& line : news->log_lines)
          if (!send("log", {{"line", line}})) return false;
        if (news->progress && !send("progress", *news->progress)) return false;
        if (news->finished) {
          send("end", *news->finished);
          sink.done();
          return true;
        }
        // The server stops only once every job has ended, so each watcher got its end above.
        if (stopping_) {
          sink.done();
          return true;
        }
        // A comment line now and then: a closed connection shows up as a failed write.
        static const std::string ping = ": ping\n\n";
        return sink.write(ping.data(), ping.size());
      });
}

void WebServer::add_routes() {
  server_.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    return allowed(req, res) ? httplib::Server::HandlerResponse::Unhandled
                             : httplib::Server::HandlerResponse::Handled;
  });
  server_.Get("/", [this](const httplib::Request&, httplib::Response& res) {
    res.set_header("Content-Security-Policy",
                   "default-src 'self'; img-src 'self' blob: data:; style-src 'self' "
                   "'unsafe-inline'; script-src 'self' 'unsafe-inline'");
    res.set_content(page_, "text/html; charset=utf-8");
  });
  server_.Get(
      "/api/roots", guarded([this](const httplib::Request&, httplib::Response& res) {
        json roots = json::array();
        for (const fs::path& root : roots_.folders()) roots.push_back(root.string());
        nlohmann::json labels = nlohmann::json::object();
        const std::vector<std::string> names = model_names(options_.models_dir);
        for (const std::string& name : names)
          if (const std::string purpose = model_purpose(name); !purpose.empty())
            labels[name] = purpose;
        send_json(res, 200, {{"roots", roots}, {"models", names}, {"model_labels", labels}});
      }));
  server_.Get("/api/files", guarded([this](const auto& req, auto& res) { list_folder(req, res); }));
  server_.Get("/api/info", guarded([this](const auto& req, auto& res) { media_info(req, res); }));
  server_.Post("/api/upload", guarded([this](const auto& req, auto& res) { upload(req, res); }));
  server_.Get("/api/models", guarded([this](const httplib::Request&, httplib::Response& res) {
                json list = models_.list();
                list["max_upload_bytes"] = options_.max_model_upload_bytes;
                send_json(res, 200, list);
              }));
  // Streamed to a file as it comes (a model may be hundreds of MiB), not held in memory.
  server_.Post("/api/models", [this](const httplib::Request& req, httplib::Response& res,
                                     const httplib::ContentReader& read_body) {
    guarded([&](const auto& req, auto& res) { upload_model(req, res, read_body); })(req, res);
  });
  // A POST without a body never reaches the reader above.
  server_.Post("/api/models", guarded([](const auto&, auto&) {
                 throw RequestError(400, "no 'file' field in the upload form");
               }));
  server_.Post("/api/jobs", guarded([this](const auto& req, auto& res) { create_job(req, res); }));
  server_.Get("/api/jobs", guarded([this](const httplib::Request&, httplib::Response& res) {
                send_json(res, 200, queue_.list());
              }));
  server_.Get(R"(/api/jobs/(\d+))", guarded([this](const auto& req, auto& res) {
                const int64_t id = job_id(req);
                std::optional<json> job = queue_.describe(id);
                if (!job) throw RequestError(404, "no job " + std::to_string(id));
                send_json(res, 200, *job);
              }));
  server_.Get(R"(/api/jobs/(\d+)/events)",
              guarded([this](const auto& req, auto& res) { job_events(req, res); }));
  // Cancel takes no body: it reads one only when the client says one comes (a POST with no
  // Content-Length has none, and httplib would wait for the connection to close).
  auto cancel = guarded([this](const auto& req, auto& res) {
    const int64_t id = job_id(req);
    if (!queue_.cancel(id)) throw RequestError(404, "no job " + std::to_string(id));
    send_json(res, 200, *queue_.describe(id, false));
  });
  server_.Post(R"(/api/jobs/(\d+)/cancel)",
               [cancel](const httplib::Request& req, httplib::Response& res,
                        const httplib::ContentReader& read_body) {
                 if (req.has_header("Content-Length") || req.has_header("Transfer-Encoding"))
                   read_body([](const char*, size_t) { return true; });
                 cancel(req, res);
               });
  server_.Post("/api/preview", guarded([this](const auto& req, auto& res) { preview(req, res); }));
  // httplib's own answers (no route, a body over the limit) in JSON too: the page reads .error.
  server_.set_error_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty() || !req.path.starts_with("/api/")) return;
    const std::string what = req.method + " " + shown(req.path);
    if (res.status == 404)
      send_error(res, 404, what + ": no such endpoint");
    else if (res.status == 413 && req.path == "/api/models")
      send_error(res, 413,
                 what + ": the model file is larger than the limit (" +
                     std::to_string(options_.max_model_upload_bytes >> 20) +
                     " MiB, --max-model-upload-mb)");
    else if (res.status == 413)
      send_error(res, 413,
                 what + ": the body is larger than the limit (--max-upload-mb " +
                     std::to_string(options_.max_upload_bytes >> 20) + ")");
    else
      send_error(res, res.status, what + ": refused (HTTP " + std::to_string(res.status) + ")");
  });
}

void WebServer::start_queue() {
  auto settings_from_request = [this](const json& request) {
    json body = request;
    body.erase("output_path");  // ours, not the client's
    json accepted;
    return settings_from(body, accepted);
  };
  const fs::path store = default_job_store_path();
  if (store.empty()) {
    spdlog::warn("neither $XDG_STATE_HOME nor $HOME is set: jobs are kept in memory only");
  } else {
    try {
      queue_.start(store, settings_from_request);
      return;
    } catch (const Error& e) {
      spdlog::warn("{}: jobs are kept in memory only", e.what());
    }
  }
  queue_.start({}, settings_from_request);
}

int WebServer::run(const std::function<void(const std::string&)>& on_ready) {
  add_routes();
  server_.set_payload_max_length(
      std::max(options_.max_upload_bytes, options_.max_model_upload_bytes + (64 << 10)));
  // cpp-httplib's default sets SO_REUSEPORT, which lets a second server bind a port already
  // in use (the two then split the connections); SO_REUSEADDR alone still allows a quick
  // restart.
  server_.set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  int port = options_.port;
  if (port == 0) {
    port = server_.bind_to_any_port(options_.host);
    if (port < 0) throw UsageError(options_.host, "cannot listen on any port");
  } else if (!server_.bind_to_port(options_.host, port)) {
    throw UsageError(options_.host + ":" + std::to_string(port),
                     "cannot listen there (in use, or not an address of this machine)");
  }
  port_ = port;
  server_.widen_backlog();
  start_queue();
  std::thread listener([this] { server_.listen_after_bind(); });
  const std::string shown_host =
      options_.host.find(':') != std::string::npos ? "[" + options_.host + "]" : options_.host;
  std::string url = "http://" + shown_host + ":" + std::to_string(port) + "/";
  if (!options_.token.empty()) url += "?token=" + options_.token;
  std::string roots_text;
  for (const fs::path& root : roots_.folders())
    roots_text += (roots_text.empty() ? "" : ", ") + root.string();
  spdlog::info("serving {} (allowed folders: {})", url, roots_text);
  if (on_ready) on_ready(url);
  // Signal handlers only set the stop flag (async-signal-safe); this thread acts on it.
  while (stop_requested() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const int signal = stop_requested();
  spdlog::info(
      "stopping: a running job stops (its partial run kept for --resume), queued ones wait for "
      "the next start");
  queue_.shutdown();
  stopping_ = true;
  queue_.wake_watchers();
  // Every job has ended: each open event stream sends that end and closes (a stream whose
  // client is gone fails its next write). httplib would cut them short once stopped.
  for (int i = 0; i < 50 && open_streams_ > 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  server_.stop();
  listener.join();
  return signal;
}

}  // namespace

bool is_loopback_host(const std::string& host) {
  if (host.find('\0') != std::string::npos) return false;
  std::string lower = host;
  for (char& c : lower) c = char(std::tolower(static_cast<unsigned char>(c)));
  if (lower == "localhost") return true;
  in_addr v4{};
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  if (inet_pton(AF_INET6, host.c_str(), &v6) == 1) return IN6_IS_ADDR_LOOPBACK(&v6);
  return false;
}

int serve(const ServeOptions& options, const std::function<void(const std::string&)>& on_ready) {
  if (!is_loopback_host(options.host) && options.token.empty())
    throw UsageError(options.host,
                     "serving another address than loopback needs --token (every request must "
                     "carry it)");
  for (char c : options.token)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_')
      throw UsageError({}, "--token may hold letters, digits, '-' and '_' only");
  if (!options.token.empty() && options.token.size() < 16)
    throw UsageError({}, "--token must be at least 16 characters");
  WebServer server(options);
  return server.run(on_ready);
}

}  // namespace upframe::web
