#pragma once
// Child processes and /proc accounting for the refinement load benchmark (Linux only):
// start a service with its output in a log file, stop it, and read what it costs
// (proc(5): /proc/<pid>/stat utime+stime, /proc/<pid>/status Threads and VmRSS).

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace refinement_load {

/// A started child process. Destruction stops it (SIGTERM, then SIGKILL).
class Child {
 public:
  /// Starts `argv` (argv[0] is a path or a name looked up in PATH) with the current environment
  /// plus `env` (overriding), stdout and stderr appended to `log`, stdin from /dev/null, in
  /// `cwd` (empty: the current directory). Throws std::runtime_error when it cannot be started.
  static Child start(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
                     const std::filesystem::path& log, const std::filesystem::path& cwd = {});
  /// Like start(), but stdin and stdout are pipes to this process (stdin_fd(), stdout_fd()).
  static Child start_piped(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
                           const std::filesystem::path& log);
  Child() = default;
  Child(Child&& o) noexcept;
  Child& operator=(Child&& o) noexcept;
  ~Child();

  pid_t pid() const { return pid_; }
  /// Write end of the child's stdin (start_piped), -1 otherwise or once closed.
  int stdin_fd() const { return in_; }
  /// Read end of the child's stdout (start_piped), -1 otherwise.
  int stdout_fd() const { return out_; }
  /// Closes the child's stdin (it sees end of file).
  void close_stdin();
  /// True while the process runs (reaps it when it has exited).
  bool alive();
  /// The exit status once it has exited (exit code, or 128 + signal).
  std::optional<int> exit_status() const { return status_; }
  /// SIGTERM, waits up to `grace`, then SIGKILL. Returns the exit status. Idempotent.
  int stop(std::chrono::milliseconds grace = std::chrono::seconds(15));
  const std::filesystem::path& log() const { return log_; }
  /// The last `n` lines of the log (for failure reports).
  std::string log_tail(std::size_t n = 15) const;

 private:
  void close_pipes();
  pid_t pid_ = -1;
  int in_ = -1;
  int out_ = -1;
  std::optional<int> status_;
  std::filesystem::path log_;
};

/// Runs `argv` to completion with `input` on stdin; returns its exit status and stdout (stderr is
/// appended to `log`). Throws std::runtime_error when it cannot be started or exceeds `timeout`.
struct RunResult {
  int status = -1;
  std::string out;
};
RunResult run_to_completion(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
                            const std::string& input, const std::filesystem::path& log,
                            std::chrono::milliseconds timeout = std::chrono::seconds(120));

/// What /proc says about one process at one moment.
struct ProcSample {
  double cpu_seconds = 0;  ///< utime + stime of all its threads, seconds
  /// utime + stime per thread name (/proc/<pid>/task/<tid>/stat; the services name their threads
  /// by role: http-io, http-handler, rt-io, rt-blocking, event-writer), seconds; only filled by
  /// sample(pid, true). Threads that already exited are not in it.
  std::map<std::string, double> cpu_by_thread;
  long threads = 0;        ///< /proc/<pid>/status Threads
  long rss_bytes = 0;      ///< /proc/<pid>/status VmRSS
  bool ok = false;         ///< false when the process is gone
};
ProcSample sample(pid_t pid, bool by_thread = false);

/// Sum of sample() over `pids` (ok when any of them was readable).
ProcSample sample_all(const std::vector<pid_t>& pids);

/// Process ids whose parent is `parent` (scans /proc).
std::vector<pid_t> children_of(pid_t parent);

/// This process's CPU time (user + system, all threads), seconds (getrusage).
double self_cpu_seconds();

/// Samples the thread count and RSS of named process groups every `period` on a thread of its
/// own and keeps the peaks (the load phase only: start() ... stop()).
class PeakSampler {
 public:
  explicit PeakSampler(std::chrono::milliseconds period = std::chrono::milliseconds(100)) : period_(period) {}
  ~PeakSampler() { stop(); }
  /// Adds a group (e.g. "nginx" = master + workers) before start().
  void watch(const std::string& name, std::vector<pid_t> pids) { groups_[name].pids = std::move(pids); }
  void start();
  void stop();
  /// Peak threads / RSS (bytes) of a group seen so far.
  long peak_threads(const std::string& name) const;
  long peak_rss(const std::string& name) const;

 private:
  struct Group {
    std::vector<pid_t> pids;
    long peak_threads = 0;
    long peak_rss = 0;
  };
  void take();
  std::chrono::milliseconds period_;
  std::map<std::string, Group> groups_;
  mutable std::mutex mu_;
  std::thread thread_;
  bool running_ = false;
  std::mutex wake_mu_;
  std::condition_variable wake_;
};

/// Makes SIGINT, SIGTERM and SIGHUP stop every running Child (SIGTERM to its process group,
/// SIGKILL after 5 s) before this process exits with 128 + the signal: the services run in process
/// groups of their own, so a Ctrl-C would otherwise leave them running. Call once from main()
/// before any other thread starts (the signals are blocked in every thread and taken by a thread
/// of its own; children get the default signal handling back).
void stop_children_on_signal();

/// Raises RLIMIT_NOFILE (soft and, when permitted, hard) to at least `wanted` descriptors; children
/// started afterwards inherit it. Returns the soft limit in effect.
std::size_t raise_nofile(std::size_t wanted);

/// A free TCP port on 127.0.0.1 (bound and released; good enough for loopback tests).
int free_port();

/// The ephemeral port range (net.ipv4.ip_local_port_range), {0, 0} when unreadable.
std::pair<int, int> ephemeral_port_range();

}  // namespace refinement_load
