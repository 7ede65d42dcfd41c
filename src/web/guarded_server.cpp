#include "web/guarded_server.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>

namespace upframe::web {

namespace {

using Clock = std::chrono::steady_clock;

// Waits up to `timeout` for `events` on `sock`; false on timeout or error.
bool wait_socket(socket_t sock, short events, std::chrono::milliseconds timeout) {
  pollfd p{sock, events, 0};
  int n;
  do {
    n = poll(&p, 1, int(std::max<int64_t>(0, timeout.count())));
  } while (n < 0 && errno == EINTR);
  return n > 0;
}

std::chrono::milliseconds from_sec_usec(time_t sec, time_t usec) {
  return std::chrono::milliseconds(sec * 1000 + usec / 1000);
}

std::string address_text(const sockaddr_storage& address, int& port) {
  char text[INET6_ADDRSTRLEN] = "";
  port = 0;
  if (address.ss_family == AF_INET) {
    const auto& a = reinterpret_cast<const sockaddr_in&>(address);
    inet_ntop(AF_INET, &a.sin_addr, text, sizeof text);
    port = ntohs(a.sin_port);
  } else if (address.ss_family == AF_INET6) {
    const auto& a = reinterpret_cast<const sockaddr_in6&>(address);
    inet_ntop(AF_INET6, &a.sin6_addr, text, sizeof text);
    port = ntohs(a.sin6_port);
  }
  return text;
}

// The address (and port) `get` (getpeername or getsockname) gives for `sock`; empty if none.
std::string socket_address(socket_t sock, int (*get)(int, sockaddr*, socklen_t*), int& port) {
  sockaddr_storage address{};
  socklen_t length = sizeof address;
  port = 0;
  if (get(sock, reinterpret_cast<sockaddr*>(&address), &length) != 0) return {};
  return address_text(address, port);
}

// A connection's byte stream for httplib's request parser: buffered reads, each waiting at
// most the read timeout, and while the request head is coming, never past its deadline.
class GuardedStream : public httplib::Stream {
 public:
  GuardedStream(GuardedServer& server, socket_t sock, std::chrono::milliseconds read_timeout,
                std::chrono::milliseconds write_timeout, std::chrono::milliseconds head_time)
      : server_(server),
        sock_(sock),
        read_timeout_(read_timeout),
        write_timeout_(write_timeout),
        head_time_(head_time) {}

  // A new request on the connection: its head gets the full time from its first byte.
  void begin_request() {
    in_head_ = true;
    head_started_ = false;
    head_end_matched_ = 0;
    wrote_ = false;
  }

  bool is_readable() const override {
    return buffered() > 0 || wait_socket(sock_, POLLIN, read_wait());
  }

  bool is_writable() const override {
    if (!wait_socket(sock_, POLLOUT, write_timeout_)) return false;
    // A closed peer shows as readable with nothing to read.
    pollfd p{sock_, POLLIN, 0};
    if (poll(&p, 1, 0) > 0) {
      char byte;
      if (recv(sock_, &byte, 1, MSG_PEEK | MSG_DONTWAIT) == 0) return false;
    }
    return true;
  }

  ssize_t read(char* ptr, size_t size) override {
    if (buffered() == 0) {
      if (in_head_ && head_started_ && Clock::now() >= head_deadline_) {
        spdlog::debug("closing a connection: its request head took over {} ms", head_time_.count());
        return -1;
      }
      if (!wait_socket(sock_, POLLIN, read_wait())) return -1;
      ssize_t n;
      do {
        n = recv(sock_, buffer_.data(), buffer_.size(), 0);
      } while (n < 0 && errno == EINTR);
      if (n <= 0) return n;
      if (!head_started_) {
        head_started_ = true;
        head_deadline_ = Clock::now() + head_time_;
      }
      begin_ = 0;
      end_ = size_t(n);
    }
    const size_t n = std::min(size, buffered());
    std::copy_n(buffer_.data() + begin_, n, ptr);
    begin_ += n;
    if (in_head_) note_head_bytes(ptr, n);
    return ssize_t(n);
  }

  ssize_t write(const char* ptr, size_t size) override {
    if (!wrote_) {
      wrote_ = true;
      server_.set_receiving(sock_, false);
    }
    if (!wait_socket(sock_, POLLOUT, write_timeout_)) return -1;
    ssize_t n;
    do {
      n = send(sock_, ptr, size, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    return n;
  }

  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    ip = socket_address(sock_, getpeername, port);
  }

  void get_local_ip_and_port(std::string& ip, int& port) const override {
    ip = socket_address(sock_, getsockname, port);
  }

  socket_t socket() const override { return sock_; }

 private:
  size_t buffered() const { return end_ - begin_; }

  std::chrono::milliseconds read_wait() const {
    if (!in_head_ || !head_started_) return read_timeout_;
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(head_deadline_ - Clock::now());
    return std::clamp(left, std::chrono::milliseconds(0), read_timeout_);
  }

  // The head ends at the first empty line ("\r\n\r\n"; httplib's parser wants CRLF).
  void note_head_bytes(const char* bytes, size_t n) {
    static const char kEnd[] = "\r\n\r\n";
    for (size_t i = 0; i < n && in_head_; ++i) {
      if (bytes[i] == kEnd[head_end_matched_])
        ++head_end_matched_;
      else
        head_end_matched_ = bytes[i] == '\r' ? 1 : 0;
      if (head_end_matched_ == 4) in_head_ = false;
    }
  }

  GuardedServer& server_;
  socket_t sock_;
  std::chrono::milliseconds read_timeout_, write_timeout_, head_time_;
  std::array<char, 4096> buffer_{};
  size_t begin_ = 0, end_ = 0;
  bool in_head_ = true, head_started_ = false, wrote_ = false;
  int head_end_matched_ = 0;
  Clock::time_point head_deadline_;
};

}  // namespace

GuardedServer::GuardedServer(const ConnectionLimits& limits) : limits_(limits) {
  const size_t threads = limits_.threads;
  new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
}

void GuardedServer::widen_backlog() {
  // listen() again on a listening socket sets its backlog anew.
  if (svr_sock_ != INVALID_SOCKET && ::listen(svr_sock_, SOMAXCONN) != 0)
    spdlog::debug("cannot widen the listen backlog: {}", std::strerror(errno));
}

void GuardedServer::set_receiving(socket_t sock, bool receiving) {
  std::lock_guard lock(mutex_);
  auto it = connections_.find(sock);
  if (it == connections_.end()) return;
  it->second.receiving = receiving;
  it->second.since = Clock::now();
}

void GuardedServer::admit(socket_t sock, const std::string& client) {
  std::lock_guard lock(mutex_);
  size_t receiving = 0;
  auto oldest = connections_.end();
  for (auto it = connections_.begin(); it != connections_.end(); ++it) {
    if (it->second.client != client || !it->second.receiving) continue;
    ++receiving;
    if (oldest == connections_.end() || it->second.since < oldest->second.since) oldest = it;
  }
  if (receiving >= limits_.receiving_per_client && oldest != connections_.end()) {
    // Its thread sees the end of the stream and closes it; the socket stays open until then.
    spdlog::debug("{}: over {} connections waiting for a request, closing its oldest", client,
                  limits_.receiving_per_client);
    shutdown(oldest->first, SHUT_RDWR);
    oldest->second.receiving = false;
  }
  connections_[sock] = {client, true, Clock::now()};
}

void GuardedServer::forget(socket_t sock) {
  std::lock_guard lock(mutex_);
  connections_.erase(sock);
}

bool GuardedServer::wait_for_request(socket_t sock) const {
  // In short slices, so that a stopping server does not wait out the keep-alive time.
  const auto end = Clock::now() + std::chrono::seconds(keep_alive_timeout_sec_);
  while (svr_sock_ != INVALID_SOCKET) {
    if (wait_socket(sock, POLLIN, std::chrono::milliseconds(100))) return true;
    if (Clock::now() >= end) return false;
  }
  return false;
}

bool GuardedServer::process_and_close_socket(socket_t sock) {
  GuardedStream stream(*this, sock, from_sec_usec(read_timeout_sec_, read_timeout_usec_),
                       from_sec_usec(write_timeout_sec_, write_timeout_usec_), limits_.head_time);
  std::string client;
  int port = 0;
  stream.get_remote_ip_and_port(client, port);
  admit(sock, client);
  bool ok = false;
  for (size_t left = keep_alive_max_count_; left > 0 && wait_for_request(sock); --left) {
    set_receiving(sock, true);
    stream.begin_request();
    bool connection_closed = false;
    ok = process_request(stream, left == 1, connection_closed, nullptr);
    if (!ok || connection_closed) break;
  }
  forget(sock);
  shutdown(sock, SHUT_RDWR);
  close(sock);
  return ok;
}

}  // namespace upframe::web
