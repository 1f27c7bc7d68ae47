#include "ferry/vmm/control_server.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <libgen.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

namespace ferry::vmm {

namespace {

VmmError control_error(std::string detail, std::optional<kernel::SysError> cause = std::nullopt) {
  return vmm_error(VmmErrc::ControlSocket, std::move(detail), cause);
}

VmmResult<sockaddr_un> socket_address(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(addr.sun_path)) {
    return fail(
        control_error(fmt::format("control socket path '{}' is empty or longer than {} "
                                  "bytes",
                                  path, sizeof(addr.sun_path) - 1)));
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return addr;
}

// Refuses places where another user could swap or hijack the socket.
VmmResult<void> check_socket_path(const std::string& path) {
  std::string dir_copy = path;
  const std::string dir = ::dirname(dir_copy.data());
  struct stat dir_st {};
  if (::stat(dir.c_str(), &dir_st) != 0) {
    return fail(control_error(fmt::format("control socket directory '{}'", dir),
                              kernel::last_error("stat")));
  }
  if ((dir_st.st_mode & S_IWOTH) && !(dir_st.st_mode & S_ISVTX)) {
    return fail(
        control_error(fmt::format("refusing control socket in world-writable directory "
                                  "'{}'",
                                  dir)));
  }
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    return {};  // does not exist: fine
  }
  if (S_ISLNK(st.st_mode)) {
    return fail(
        control_error(fmt::format("refusing control socket path '{}': it is a symlink", path)));
  }
  if (!S_ISSOCK(st.st_mode)) {
    return fail(control_error(fmt::format("'{}' exists and is not a socket", path)));
  }
  // A socket file: live (another VMM) or stale (a crashed one)?
  auto addr = socket_address(path);
  kernel::UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  // SAFETY: addr is a fully initialised sockaddr_un.
  if (probe &&
      ::connect(probe.get(), reinterpret_cast<const sockaddr*>(&*addr), sizeof(*addr)) == 0) {
    return fail(control_error(fmt::format("control socket '{}' is in use by a running VMM", path)));
  }
  ::unlink(path.c_str());
  return {};
}

bool write_all_fd(int fd, const std::string& data) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::send(fd, data.data() + done, data.size() - done, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      return false;
    }
    done += static_cast<size_t>(n);
  }
  return true;
}

// Reads one '\n'-terminated line of at most `max` bytes. Empty optional on EOF/error/
// overlong line or timeout.
std::optional<std::string> read_line(int fd, std::string& buffer, size_t max, int timeout_ms) {
  while (true) {
    const size_t nl = buffer.find('\n');
    if (nl != std::string::npos) {
      std::string line = buffer.substr(0, nl);
      buffer.erase(0, nl + 1);
      return line;
    }
    if (buffer.size() > max) {
      return std::nullopt;
    }
    pollfd pfd{fd, POLLIN, 0};
    const int ready = ::poll(&pfd, 1, timeout_ms);
    if (ready < 0 && errno == EINTR) {
      continue;
    }
    if (ready <= 0) {
      return std::nullopt;
    }
    char chunk[4096];
    ssize_t n = ::recv(fd, chunk, sizeof(chunk), 0);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      return std::nullopt;
    }
    buffer.append(chunk, static_cast<size_t>(n));
  }
}

}  // namespace

Result<nlohmann::json, std::string> parse_control_request(std::string_view line) {
  auto request = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (request.is_discarded() || !request.is_object()) {
    return fail(std::string("request is not a JSON object"));
  }
  auto cmd = request.find("cmd");
  if (cmd == request.end() || !cmd->is_string()) {
    return fail(std::string("request has no string \"cmd\""));
  }
  return request;
}

std::string encode_control_line(const nlohmann::json& line) {
  // dump() throws on invalid UTF-8 by default, which would end the server thread (and the
  // VMM) over a reply quoting bytes from a migration peer.
  return line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

bool ControlResponder::send(const nlohmann::json& line) {
  return write_all_fd(fd_, encode_control_line(line));
}

VmmResult<std::unique_ptr<ControlServer>> ControlServer::create(const std::string& path) {
  auto addr = socket_address(path);
  if (!addr) {
    return fail(addr.error());
  }
  if (auto ok = check_socket_path(path); !ok) {
    return fail(ok.error());
  }
  kernel::UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) {
    return fail(control_error("create control socket", kernel::last_error("socket")));
  }
  // Created with no permissions for others from the first instant (umask), then 0600.
  const mode_t old_umask = ::umask(0177);
  // SAFETY: addr is a fully initialised sockaddr_un.
  const int rc = ::bind(fd.get(), reinterpret_cast<const sockaddr*>(&*addr), sizeof(*addr));
  ::umask(old_umask);
  if (rc != 0) {
    return fail(
        control_error(fmt::format("bind control socket '{}'", path), kernel::last_error("bind")));
  }
  ::chmod(path.c_str(), 0600);
  if (::listen(fd.get(), 8) != 0) {
    return fail(control_error("listen on control socket", kernel::last_error("listen")));
  }
  return std::unique_ptr<ControlServer>(new ControlServer(path, std::move(fd)));
}

ControlServer::~ControlServer() { stop(); }

void ControlServer::on(const std::string& name, ControlHandler handler) {
  handlers_[name] = std::move(handler);
}

void ControlServer::start() {
  thread_ = std::thread([this] { serve(); });
}

void ControlServer::stop() {
  if (stopping_.exchange(true)) {
    return;
  }
  if (thread_.joinable()) {
    thread_.join();
  }
  ::unlink(path_.c_str());
}

void ControlServer::reap_clients(bool all) {
  for (auto it = clients_.begin(); it != clients_.end();) {
    if (all || it->done.load()) {
      it->thread.join();
      it = clients_.erase(it);
    } else {
      ++it;
    }
  }
}

void ControlServer::serve() {
  while (!stopping_.load()) {
    reap_clients(false);
    pollfd pfd{listener_.get(), POLLIN, 0};
    if (::poll(&pfd, 1, 100) <= 0) {
      continue;
    }
    kernel::UniqueFd client(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!client) {
      continue;
    }
    if (clients_.size() >= kMaxControlClients) {
      ControlResponder(client.get())
          .send({{"ok", false},
                 {"error",
                  fmt::format("too many control connections (limit {})", kMaxControlClients)}});
      continue;
    }
    // Its own thread, so an idle or long-running client never blocks the others (who
    // then get an immediate "busy" reply instead of waiting without a word).
    Client& c = clients_.emplace_back();
    c.thread = std::thread([this, &c, fd = std::move(client)]() mutable {
      serve_client(fd.get());
      fd = kernel::UniqueFd();
      c.done = true;
    });
  }
  reap_clients(true);
}

nlohmann::json ControlServer::run_exclusive(const std::string& name, const ControlHandler& handler,
                                            const nlohmann::json& request,
                                            ControlResponder& responder) {
  std::unique_lock run(run_mu_, std::try_to_lock);
  if (!run.owns_lock()) {
    std::lock_guard lock(running_mu_);
    if (running_ == "migrate" && name == "migrate") {
      return {{"ok", false},
              {"error", "a migration is already running on this VMM; only one at a time"}};
    }
    return {{"ok", false},
            {"error", fmt::format("busy: '{}' is still running; commands run one at a time, "
                                  "retry when it ends",
                                  running_)}};
  }
  {
    std::lock_guard lock(running_mu_);
    running_ = name;
  }
  nlohmann::json reply = handler(request, responder);
  std::lock_guard lock(running_mu_);
  running_.clear();
  return reply;
}

void ControlServer::serve_client(int fd) {
  std::string buffer;
  ControlResponder responder(fd);
  while (!stopping_.load()) {
    auto line = read_line(fd, buffer, kMaxControlRequestBytes, 100);
    if (!line) {
      if (buffer.size() > kMaxControlRequestBytes) {
        responder.send({{"ok", false}, {"error", "request line too long"}});
        return;
      }
      // Timeout with an idle client: keep waiting unless it hung up.
      pollfd pfd{fd, POLLIN, 0};
      if (::poll(&pfd, 1, 0) > 0 && (pfd.revents & (POLLHUP | POLLERR))) {
        return;
      }
      char probe;
      if (::recv(fd, &probe, 1, MSG_PEEK | MSG_DONTWAIT) == 0) {
        return;
      }
      continue;
    }
    if (!responder.send(dispatch(*line, responder))) {
      return;
    }
  }
}

nlohmann::json ControlServer::dispatch(const std::string& line, ControlResponder& responder) {
  auto parsed = parse_control_request(line);
  if (!parsed) {
    return {{"ok", false}, {"error", parsed.error()}};
  }
  const nlohmann::json& request = *parsed;
  auto cmd = request.find("cmd");
  auto handler = handlers_.find(cmd->get<std::string>());
  if (handler == handlers_.end()) {
    std::string known;
    for (const auto& [name, h] : handlers_) {
      known += (known.empty() ? "" : ", ") + name;
    }
    return {
        {"ok", false},
        {"error", fmt::format("unknown command '{}' (known: {})", cmd->get<std::string>(), known)}};
  }
  return run_exclusive(handler->first, handler->second, request, responder);
}

VmmResult<nlohmann::json> control_request(const std::string& path, const nlohmann::json& request,
                                          const std::function<void(const nlohmann::json&)>& on_line,
                                          int timeout_ms) {
  auto addr = socket_address(path);
  if (!addr) {
    return fail(addr.error());
  }
  kernel::UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  // SAFETY: addr is a fully initialised sockaddr_un.
  if (!fd || ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&*addr), sizeof(*addr)) != 0) {
    return fail(control_error(fmt::format("cannot connect to control socket '{}'", path),
                              kernel::last_error("connect")));
  }
  if (!write_all_fd(fd.get(), request.dump() + "\n")) {
    return fail(control_error("send request", kernel::last_error("send")));
  }
  std::string buffer;
  while (true) {
    auto line = read_line(fd.get(), buffer, 16 << 20, timeout_ms);
    if (!line) {
      return fail(
          control_error(fmt::format("no reply from VMM within {} ms (or it closed the "
                                    "connection)",
                                    timeout_ms)));
    }
    auto reply = nlohmann::json::parse(*line, nullptr, false);
    if (reply.is_discarded()) {
      return fail(control_error("VMM sent a malformed reply line"));
    }
    if (reply.contains("ok")) {
      return reply;
    }
    if (on_line) {
      on_line(reply);
    }
  }
}

}  // namespace ferry::vmm
