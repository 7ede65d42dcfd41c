// `upframe serve`: a local web UI over HTTP (cpp-httplib) with the page embedded in the
// binary, its JSON API (docs/WEB.md) and live progress as Server-Sent Events.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace upframe::web {

struct ServeOptions {
  std::string host = "127.0.0.1";
  int port = 8080;                           // 0: any free port (the URL says which)
  std::vector<std::filesystem::path> roots;  // empty: the working folder
  // Required to bind an address other than loopback; then every request must carry it. Empty:
  // a random one for the page's state-changing requests (CSRF).
  std::string token;
  uint64_t max_upload_bytes = 1ull << 30;
  // The largest model file upload (POST /api/models).
  uint64_t max_model_upload_bytes = 512ull << 20;
  // --models-dir: searched first for a job's model NAME, and where uploaded models go. Empty:
  // the user's models folder ($XDG_DATA_HOME/upframe/models) takes the uploads.
  std::filesystem::path models_dir;
};

// Whether `host` is a loopback address or name (127.0.0.0/8, ::1, localhost).
bool is_loopback_host(const std::string& host);

// Serves until request_stop() is called (SIGINT/SIGTERM): then the running job is stopped
// (its partial run kept for --resume), queued jobs are cancelled and the server closes.
// `on_ready` gets the page's URL (with the token when one is required) once listening.
// Returns the signal the stop was requested with. Throws upframe::UsageError for bad options
// (a non-loopback host without a token, a root that is not a folder, a port in use).
int serve(const ServeOptions& options, const std::function<void(const std::string&)>& on_ready);

}  // namespace upframe::web
