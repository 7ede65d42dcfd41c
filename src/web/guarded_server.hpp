// cpp-httplib's server with bounds on clients that hold connections without finishing a
// request (slowloris: a header line now and then keeps a thread forever, since httplib's read
// timeout applies to each read, not to the request): the request head must arrive within a
// time limit, and one client (one address) has a bounded number of connections waiting for or
// receiving a request; a new one past the bound closes that client's oldest waiting one.
#pragma once

#include <httplib.h>

#include <chrono>
#include <cstddef>
#include <map>
#include <mutex>
#include <string>

namespace upframe::web {

struct ConnectionLimits {
  // From a request's first byte to the end of its head (request line and header lines).
  std::chrono::milliseconds head_time{std::chrono::seconds(10)};
  // Connections of one address waiting for a request, or receiving one (head or body).
  size_t receiving_per_client = 16;
  // Worker threads (each connection holds one while open: event streams included).
  size_t threads = 64;
};

class GuardedServer : public httplib::Server {
 public:
  explicit GuardedServer(const ConnectionLimits& limits = {});

  // Bookkeeping of the open connections (public for the stream that reports its phase).
  struct Connection {
    std::string client;  // the peer's address
    bool receiving = true;
    std::chrono::steady_clock::time_point since;
  };
  void set_receiving(socket_t sock, bool receiving);
  // httplib listens with a backlog of 5: a burst of connections (a browser's, or many
  // clients') then waits for SYN retries, a second or more each. Call after binding.
  void widen_backlog();

 private:
  // httplib calls this on a worker thread for each accepted connection (a private virtual of
  // httplib::Server, overridden here): it serves requests on the connection through a stream
  // that enforces ConnectionLimits::head_time, as httplib's own loop does otherwise.
  bool process_and_close_socket(socket_t sock) override;
  // Registers the connection, closing the client's oldest waiting one past the bound.
  void admit(socket_t sock, const std::string& client);
  void forget(socket_t sock);
  bool wait_for_request(socket_t sock) const;

  ConnectionLimits limits_;
  std::mutex mutex_;
  std::map<socket_t, Connection> connections_;
};

}  // namespace upframe::web
