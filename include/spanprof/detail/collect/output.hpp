// spanprof: the output folder — created on demand, written atomically, never escaped.
//
// NOT ASYNC-SIGNAL-SAFE. Collector thread only.
// Every file is written as "<name>.tmp-<pid>" with O_EXCL, then renamed over "<name>" inside
// the folder (renameat on the folder's descriptor): a reader never sees half a file under the
// final name, even if the process dies mid-write. Names are resolved relative to the folder's
// descriptor and opened with O_NOFOLLOW, so neither the name nor a planted symlink can make us
// write outside the folder.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <string_view>

namespace spanprof::detail {

// mkdir -p. Returns 0 or the errno of the step that failed.
inline int make_directories(const std::string& path) {
  if (path.empty()) return ENOENT;
  std::string prefix;
  std::size_t pos = 0;
  while (pos != std::string::npos) {
    pos = path.find('/', pos + 1);
    prefix = path.substr(0, pos);
    if (prefix.empty()) continue;
    if (::mkdir(prefix.c_str(), 0755) != 0 && errno != EEXIST) return errno;
  }
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return errno;
  return S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
}

class output_folder {
 public:
  output_folder() = default;
  output_folder(const output_folder&) = delete;
  output_folder& operator=(const output_folder&) = delete;
  ~output_folder() { close(); }

  // Creates the folder if needed and checks that a file can be created in it.
  [[nodiscard]] bool open(const std::string& path, std::string& error) {
    close();
    path_ = path;
    if (const int err = make_directories(path); err != 0) {
      error = "spanprof: output folder \"" + path + "\" cannot be created: " + std::strerror(err);
      return false;
    }
    dir_fd_ = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd_ < 0) {
      error = "spanprof: output folder \"" + path + "\" cannot be opened: " + std::strerror(errno);
      return false;
    }
    if (::faccessat(dir_fd_, ".", W_OK | X_OK, AT_EACCESS) != 0) {
      error = "spanprof: output folder \"" + path + "\" is not writable: " + std::strerror(errno);
      close();
      return false;
    }
    // access(2) says yes to root on almost any folder (/proc, a root-squashed NFS share), so
    // also create (and remove) a file: otherwise every transaction would fail to write instead.
    const std::string probe = ".spanprof-probe-" + std::to_string(::getpid());
    const int fd = ::openat(dir_fd_, probe.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0 && errno != EEXIST) {
      error = "spanprof: output folder \"" + path + "\" is not writable: " + std::strerror(errno);
      close();
      return false;
    }
    if (fd >= 0) {
      ::close(fd);
      ::unlinkat(dir_fd_, probe.c_str(), 0);
    }
    return true;
  }

  [[nodiscard]] bool is_open() const noexcept { return dir_fd_ >= 0; }
  [[nodiscard]] const std::string& path() const noexcept { return path_; }

  // `file_name` must be a plain name (no '/', no NUL); callers build it with safe_file_stem().
  [[nodiscard]] bool write_atomically(const std::string& file_name, std::string_view content, std::string& error) {
    if (dir_fd_ < 0 || file_name.empty() || file_name.find('/') != std::string::npos ||
        file_name.find('\0') != std::string::npos || file_name == "." || file_name == "..") {
      error = "spanprof: refusing to write \"" + file_name + "\" in \"" + path_ + "\"";
      return false;
    }
    const std::string temp_name = file_name + ".tmp-" + std::to_string(::getpid());
    // O_EXCL: never open a file planted at the temporary name (a hard link to a file outside
    // the folder would be truncated and written through; O_NOFOLLOW only covers symlinks).
    const int fd = ::openat(dir_fd_, temp_name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0) {
      error = "spanprof: cannot create \"" + path_ + "/" + temp_name + "\": " + std::strerror(errno);
      return false;
    }
    std::size_t written = 0;
    while (written < content.size()) {
      const ssize_t n = ::write(fd, content.data() + written, content.size() - written);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        error = "spanprof: writing \"" + path_ + "/" + file_name + "\" failed: " + std::strerror(n < 0 ? errno : ENOSPC);
        ::close(fd);
        ::unlinkat(dir_fd_, temp_name.c_str(), 0);
        return false;
      }
      written += static_cast<std::size_t>(n);
    }
    if (::close(fd) != 0 || ::renameat(dir_fd_, temp_name.c_str(), dir_fd_, file_name.c_str()) != 0) {
      error = "spanprof: finishing \"" + path_ + "/" + file_name + "\" failed: " + std::strerror(errno);
      ::unlinkat(dir_fd_, temp_name.c_str(), 0);
      return false;
    }
    return true;
  }

  void close() noexcept {
    if (dir_fd_ >= 0) ::close(dir_fd_);
    dir_fd_ = -1;
  }

 private:
  std::string path_;
  int dir_fd_ = -1;
};

}  // namespace spanprof::detail
