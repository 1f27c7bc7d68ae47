// ControlServer: the VMM's control socket (`--control PATH`). A unix stream socket,
// mode 0600, speaking newline-delimited JSON: each request is one object with "cmd";
// a handler may stream event lines ({"event": ...}) before its final reply
// ({"ok": true, ...} or {"ok": false, "error": "..."}). docs/control-socket.md has the
// commands. Each connection has its own thread (at most kMaxControlClients), but commands
// run one at a time: one that arrives while another runs (a migration, say) is refused at
// once with a "busy" error naming the running command, instead of queueing behind it.
#pragma once

#include <atomic>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <thread>

#include "ferry/kernel-interfaces/unique_fd.h"
#include "ferry/vmm/vmm_error.h"

namespace ferry::vmm {

/// Lets a handler send event lines to the client while it works.
class ControlResponder {
 public:
  explicit ControlResponder(int fd) : fd_(fd) {}
  /// Sends one JSON line; false if the client went away (the handler may carry on).
  bool send(const nlohmann::json& line);

 private:
  int fd_;
};

using ControlHandler =
    std::function<nlohmann::json(const nlohmann::json& request, ControlResponder& responder)>;

/// Largest request line accepted; longer lines are refused without being buffered.
inline constexpr size_t kMaxControlRequestBytes = size_t{64} * 1024;
/// Connections served at once; more are answered with an error and closed.
inline constexpr unsigned kMaxControlClients = 8;

/// Parses one request line: a JSON object with a string "cmd", or the error text the
/// server replies with. Pure (the server's first step on every line; fuzzed).
Result<nlohmann::json, std::string> parse_control_request(std::string_view line);

/// One reply or event line as sent: compact JSON plus '\n'. Strings that are not valid
/// UTF-8 (a peer's error text, say) get U+FFFD instead of making the encoder throw.
std::string encode_control_line(const nlohmann::json& line);

class ControlServer {
 public:
  /// Creates the socket at `path` with mode 0600. Refuses a path that is a symlink, a
  /// non-socket file, a live socket, or lies in a world-writable directory without the
  /// sticky bit; a stale socket left by a dead VMM is replaced.
  static VmmResult<std::unique_ptr<ControlServer>> create(const std::string& path);
  ~ControlServer();

  /// Registers the handler for requests whose "cmd" equals `name` (before start()).
  void on(const std::string& name, ControlHandler handler);
  void start();
  void stop();
  const std::string& path() const { return path_; }

 private:
  ControlServer(std::string path, kernel::UniqueFd listener)
      : path_(std::move(path)), listener_(std::move(listener)) {}
  struct Client {
    std::thread thread;
    std::atomic<bool> done{false};
  };
  void serve();
  void reap_clients(bool all);
  void serve_client(int fd);
  nlohmann::json dispatch(const std::string& line, ControlResponder& responder);
  nlohmann::json run_exclusive(const std::string& name, const ControlHandler& handler,
                               const nlohmann::json& request, ControlResponder& responder);

  std::string path_;
  kernel::UniqueFd listener_;
  std::map<std::string, ControlHandler> handlers_;
  std::atomic<bool> stopping_{false};
  std::list<Client> clients_;  // touched by the serve thread only
  std::mutex run_mu_;          // held while a handler runs: one command at a time
  std::mutex running_mu_;
  std::string running_;  // the command holding run_mu_ (for the busy message)
  std::thread thread_;
};

/// Client side: sends `request` to the socket at `path` and calls `on_line` for every
/// line received until the final reply (a line with "ok"), which it returns.
VmmResult<nlohmann::json> control_request(const std::string& path, const nlohmann::json& request,
                                          const std::function<void(const nlohmann::json&)>& on_line,
                                          int timeout_ms = 10'000);

}  // namespace ferry::vmm
