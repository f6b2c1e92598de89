#pragma once
// One process per embedded (SQLite) data directory: an exclusive flock(2) on a lock file in it.

#include <filesystem>
#include <string>

namespace core {

/// Holds an exclusive, non-blocking flock(2) on `<dir>/<file>` (the directory is created) for its
/// lifetime and writes this process's pid into the file. A second process on the same directory
/// fails with std::runtime_error naming the holder's pid and `advice`. The kernel drops the lock
/// when the holder exits, also on kill -9, so a stale file never blocks a restart.
class DataDirLock {
 public:
  /// Takes the lock of `dir` for `service` (e.g. "spec-engine"), in lock file `file`; throws
  /// std::runtime_error when the file cannot be opened or another process holds the lock.
  DataDirLock(const std::filesystem::path& dir, const std::string& file, const std::string& service,
              const std::string& advice);
  ~DataDirLock();
  DataDirLock(const DataDirLock&) = delete;
  DataDirLock& operator=(const DataDirLock&) = delete;

 private:
  int fd_ = -1;
};

}  // namespace core
