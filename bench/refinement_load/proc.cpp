// Child processes and /proc accounting (proc.hpp).
#include "proc.hpp"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <deque>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>
#include <stdexcept>

extern char** environ;

namespace refinement_load {

namespace {

/// envp for a child: the current environment with `extra` replacing or adding variables.
std::vector<std::string> child_env(const std::map<std::string, std::string>& extra) {
  std::vector<std::string> out;
  for (char** e = environ; e && *e; ++e) {
    std::string kv(*e);
    const auto eq = kv.find('=');
    if (eq != std::string::npos && extra.count(kv.substr(0, eq))) continue;
    out.push_back(std::move(kv));
  }
  for (const auto& [k, v] : extra) out.push_back(k + "=" + v);
  return out;
}

std::vector<char*> c_strings(std::vector<std::string>& v) {
  std::vector<char*> out;
  for (auto& s : v) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

/// Children started by Child and not yet reaped, for stop_children_on_signal().
std::mutex live_mu;
std::set<pid_t> live;

void track(pid_t pid) {
  std::lock_guard lk(live_mu);
  live.insert(pid);
}

void untrack(pid_t pid) {
  std::lock_guard lk(live_mu);
  live.erase(pid);
}

int decode_status(int st) {
  if (WIFEXITED(st)) return WEXITSTATUS(st);
  if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
  return -1;
}

/// Spawns with the given stdin/stdout/stderr descriptors (-1 = /dev/null for stdin).
pid_t spawn(std::vector<std::string> argv, const std::map<std::string, std::string>& env, int in_fd, int out_fd,
            int err_fd, const std::filesystem::path& cwd) {
  auto envs = child_env(env);
  auto cargv = c_strings(argv);
  auto cenv = c_strings(envs);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  if (in_fd >= 0) {
    posix_spawn_file_actions_adddup2(&fa, in_fd, 0);
  } else {
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  }
  posix_spawn_file_actions_adddup2(&fa, out_fd, 1);
  posix_spawn_file_actions_adddup2(&fa, err_fd, 2);
  if (!cwd.empty()) posix_spawn_file_actions_addchdir_np(&fa, cwd.c_str());
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  // A process group of its own: a Ctrl-C at the terminal reaches the harness, which stops it
  // (stop_children_on_signal). The signals the harness blocks or ignores are the child's again.
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  posix_spawnattr_setpgroup(&attr, 0);
  sigset_t none, defaults;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  sigemptyset(&defaults);
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGPIPE}) sigaddset(&defaults, sig);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  pid_t pid = -1;
  const int rc = posix_spawnp(&pid, cargv[0], &fa, &attr, cargv.data(), cenv.data());
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) throw std::runtime_error("cannot start " + argv[0] + ": " + std::strerror(rc));
  return pid;
}

int open_log(const std::filesystem::path& log) {
  const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error("cannot open log " + log.string() + ": " + std::strerror(errno));
  return fd;
}

std::string read_file(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

}  // namespace

Child Child::start(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
                   const std::filesystem::path& log, const std::filesystem::path& cwd) {
  const int fd = open_log(log);
  Child c;
  c.log_ = log;
  try {
    c.pid_ = spawn(argv, env, -1, fd, fd, cwd);
  } catch (...) {
    ::close(fd);
    throw;
  }
  ::close(fd);
  track(c.pid_);
  return c;
}

Child Child::start_piped(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
                         const std::filesystem::path& log) {
  int in_pipe[2];
  int out_pipe[2];
  if (::pipe2(in_pipe, O_CLOEXEC) != 0) throw std::runtime_error(std::string("pipe: ") + std::strerror(errno));
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) {
    ::close(in_pipe[0]);
    ::close(in_pipe[1]);
    throw std::runtime_error(std::string("pipe: ") + std::strerror(errno));
  }
  const int err = open_log(log);
  Child c;
  c.log_ = log;
  try {
    c.pid_ = spawn(argv, env, in_pipe[0], out_pipe[1], err, {});
  } catch (...) {
    for (int fd : {in_pipe[0], in_pipe[1], out_pipe[0], out_pipe[1], err}) ::close(fd);
    throw;
  }
  ::close(in_pipe[0]);
  ::close(out_pipe[1]);
  ::close(err);
  c.in_ = in_pipe[1];
  c.out_ = out_pipe[0];
  track(c.pid_);
  return c;
}

Child::Child(Child&& o) noexcept
    : pid_(o.pid_), in_(o.in_), out_(o.out_), status_(o.status_), log_(std::move(o.log_)) {
  o.pid_ = -1;
  o.in_ = -1;
  o.out_ = -1;
}

Child& Child::operator=(Child&& o) noexcept {
  if (this != &o) {
    stop();
    pid_ = o.pid_;
    in_ = o.in_;
    out_ = o.out_;
    status_ = o.status_;
    log_ = std::move(o.log_);
    o.pid_ = -1;
    o.in_ = -1;
    o.out_ = -1;
  }
  return *this;
}

Child::~Child() { stop(); }

void Child::close_stdin() {
  if (in_ >= 0) ::close(in_);
  in_ = -1;
}

void Child::close_pipes() {
  close_stdin();
  if (out_ >= 0) ::close(out_);
  out_ = -1;
}

bool Child::alive() {
  if (pid_ < 0 || status_) return false;
  int st = 0;
  const pid_t r = ::waitpid(pid_, &st, WNOHANG);
  if (r == pid_) {
    status_ = decode_status(st);
    return false;
  }
  return r == 0;
}

int Child::stop(std::chrono::milliseconds grace) {
  close_stdin();
  if (pid_ < 0) {
    close_pipes();
    return status_.value_or(-1);
  }
  if (alive()) {
    ::kill(pid_, SIGTERM);
    const auto end = std::chrono::steady_clock::now() + grace;
    while (alive() && std::chrono::steady_clock::now() < end) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    if (alive()) {
      ::kill(pid_, SIGKILL);
      int st = 0;
      if (::waitpid(pid_, &st, 0) == pid_) status_ = decode_status(st);
    }
  }
  untrack(pid_);
  pid_ = -1;
  close_pipes();
  return status_.value_or(-1);
}

std::string Child::log_tail(std::size_t n) const {
  std::ifstream f(log_);
  std::deque<std::string> lines;
  std::string line;
  while (std::getline(f, line)) {
    lines.push_back(line.size() > 400 ? line.substr(0, 400) + "..." : line);
    if (lines.size() > n) lines.pop_front();
  }
  std::string out;
  for (const auto& l : lines) out += "    | " + l + "\n";
  return out;
}

RunResult run_to_completion(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
                            const std::string& input, const std::filesystem::path& log,
                            std::chrono::milliseconds timeout) {
  int in_pipe[2];
  int out_pipe[2];
  if (::pipe2(in_pipe, O_CLOEXEC) != 0 || ::pipe2(out_pipe, O_CLOEXEC) != 0) {
    throw std::runtime_error(std::string("pipe: ") + std::strerror(errno));
  }
  const int err_fd = open_log(log);
  pid_t pid = -1;
  try {
    pid = spawn(argv, env, in_pipe[0], out_pipe[1], err_fd, {});
  } catch (...) {
    for (int fd : {in_pipe[0], in_pipe[1], out_pipe[0], out_pipe[1], err_fd}) ::close(fd);
    throw;
  }
  ::close(in_pipe[0]);
  ::close(out_pipe[1]);
  ::close(err_fd);
  // The input is one short line: it fits the pipe buffer, so writing before reading cannot block.
  signal(SIGPIPE, SIG_IGN);
  [[maybe_unused]] auto w = ::write(in_pipe[1], input.data(), input.size());
  ::close(in_pipe[1]);
  RunResult r;
  char buf[4096];
  const auto end = std::chrono::steady_clock::now() + timeout;
  ::fcntl(out_pipe[0], F_SETFL, O_NONBLOCK);
  for (;;) {
    const ssize_t n = ::read(out_pipe[0], buf, sizeof buf);
    if (n > 0) {
      r.out.append(buf, static_cast<std::size_t>(n));
      continue;
    }
    if (n == 0) break;
    if (errno != EAGAIN && errno != EINTR) break;
    if (std::chrono::steady_clock::now() > end) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
      ::close(out_pipe[0]);
      throw std::runtime_error(argv[0] + " did not finish within the timeout");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ::close(out_pipe[0]);
  int st = 0;
  ::waitpid(pid, &st, 0);
  r.status = decode_status(st);
  return r;
}

namespace {

/// utime + stime in seconds and the command name of a /proc stat line (proc(5)); false when
/// the line cannot be read.
bool parse_stat(const std::string& stat, double& cpu_seconds, std::string& comm) {
  // Fields after the command name (which may hold spaces) start after the last ')'.
  const auto open = stat.find('(');
  const auto close = stat.rfind(')');
  if (open == std::string::npos || close == std::string::npos || close < open) return false;
  comm = stat.substr(open + 1, close - open - 1);
  std::istringstream in(stat.substr(close + 2));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && in >> field; ++i) {  // proc(5): field 14 utime, 15 stime (clock ticks)
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  cpu_seconds = static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
  return true;
}

}  // namespace

ProcSample sample(pid_t pid, bool by_thread) {
  ProcSample s;
  const std::string base = "/proc/" + std::to_string(pid);
  std::string comm;
  if (!parse_stat(read_file(base + "/stat"), s.cpu_seconds, comm)) return s;
  if (DIR* d = by_thread ? ::opendir((base + "/task").c_str()) : nullptr) {
    while (dirent* e = ::readdir(d)) {
      if (e->d_name[0] == '.') continue;
      double cpu = 0;
      std::string name;
      if (parse_stat(read_file(base + "/task/" + e->d_name + "/stat"), cpu, name)) s.cpu_by_thread[name] += cpu;
    }
    ::closedir(d);
  }
  std::istringstream status(read_file(base + "/status"));
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("Threads:", 0) == 0) s.threads = std::stol(line.substr(8));
    if (line.rfind("VmRSS:", 0) == 0) s.rss_bytes = std::stol(line.substr(6)) * 1024;  // kB
  }
  s.ok = true;
  return s;
}

ProcSample sample_all(const std::vector<pid_t>& pids) {
  ProcSample sum;
  for (pid_t p : pids) {
    const ProcSample s = sample(p);
    if (!s.ok) continue;
    sum.ok = true;
    sum.cpu_seconds += s.cpu_seconds;
    sum.threads += s.threads;
    sum.rss_bytes += s.rss_bytes;
  }
  return sum;
}

std::vector<pid_t> children_of(pid_t parent) {
  std::vector<pid_t> out;
  DIR* d = ::opendir("/proc");
  if (!d) return out;
  while (dirent* e = ::readdir(d)) {
    char* end = nullptr;
    const long pid = std::strtol(e->d_name, &end, 10);
    if (*end != '\0' || pid <= 0) continue;
    const std::string stat = read_file("/proc/" + std::string(e->d_name) + "/stat");
    const auto close = stat.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream in(stat.substr(close + 2));
    std::string state;
    long ppid = 0;
    in >> state >> ppid;
    if (ppid == parent) out.push_back(static_cast<pid_t>(pid));
  }
  ::closedir(d);
  return out;
}

double self_cpu_seconds() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  auto secs = [](const timeval& tv) { return static_cast<double>(tv.tv_sec) + tv.tv_usec / 1e6; };
  return secs(ru.ru_utime) + secs(ru.ru_stime);
}

void PeakSampler::start() {
  running_ = true;
  take();
  thread_ = std::thread([this] {
    std::unique_lock lk(wake_mu_);
    while (running_) {
      wake_.wait_for(lk, period_);
      if (!running_) break;
      lk.unlock();
      take();
      lk.lock();
    }
  });
}

void PeakSampler::stop() {
  {
    std::lock_guard lk(wake_mu_);
    if (!running_) return;
    running_ = false;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  take();
}

void PeakSampler::take() {
  std::lock_guard lk(mu_);
  for (auto& [name, g] : groups_) {
    const ProcSample s = sample_all(g.pids);
    if (!s.ok) continue;
    g.peak_threads = std::max(g.peak_threads, s.threads);
    g.peak_rss = std::max(g.peak_rss, s.rss_bytes);
  }
}

long PeakSampler::peak_threads(const std::string& name) const {
  std::lock_guard lk(mu_);
  auto it = groups_.find(name);
  return it == groups_.end() ? 0 : it->second.peak_threads;
}

long PeakSampler::peak_rss(const std::string& name) const {
  std::lock_guard lk(mu_);
  auto it = groups_.find(name);
  return it == groups_.end() ? 0 : it->second.peak_rss;
}

void stop_children_on_signal() {
  static sigset_t stops;
  sigemptyset(&stops);
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&stops, sig);
  pthread_sigmask(SIG_BLOCK, &stops, nullptr);
  std::thread([] {
    int sig = 0;
    if (sigwait(&stops, &sig) != 0) return;
    std::set<pid_t> pids;
    {
      std::lock_guard lk(live_mu);
      pids = live;
    }
    std::cerr << "\nrefinement-load: signal " << sig << ": stopping " << pids.size() << " services" << std::endl;
    for (pid_t p : pids) ::kill(-p, SIGTERM);
    const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    for (;;) {
      bool any = false;
      for (pid_t p : pids) {
        if (::waitpid(p, nullptr, WNOHANG) == 0) any = true;
      }
      if (!any || std::chrono::steady_clock::now() >= end) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    for (pid_t p : pids) ::kill(-p, SIGKILL);
    std::_Exit(128 + sig);
  }).detach();
}

std::size_t raise_nofile(std::size_t wanted) {
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) return 0;
  if (lim.rlim_max != RLIM_INFINITY && lim.rlim_max < wanted) {
    // Raising the hard limit needs CAP_SYS_RESOURCE and is bounded by fs.nr_open.
    std::size_t nr_open = wanted;
    std::ifstream f("/proc/sys/fs/nr_open");
    if (f >> nr_open) nr_open = std::min(nr_open, wanted);
    rlimit more{static_cast<rlim_t>(nr_open), static_cast<rlim_t>(nr_open)};
    if (::setrlimit(RLIMIT_NOFILE, &more) == 0) lim = more;
  }
  if (lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &lim);
  }
  ::getrlimit(RLIMIT_NOFILE, &lim);
  return lim.rlim_cur == RLIM_INFINITY ? static_cast<std::size_t>(-1) : static_cast<std::size_t>(lim.rlim_cur);
}

int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    ::close(fd);
    throw std::runtime_error(std::string("cannot find a free port: ") + std::strerror(errno));
  }
  ::close(fd);
  return ntohs(a.sin_port);
}

std::pair<int, int> ephemeral_port_range() {
  std::ifstream f("/proc/sys/net/ipv4/ip_local_port_range");
  int lo = 0, hi = 0;
  if (!(f >> lo >> hi)) return {0, 0};
  return {lo, hi};
}

}  // namespace refinement_load
