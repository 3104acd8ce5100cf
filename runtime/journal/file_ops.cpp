#include "runtime/journal/file_ops.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

namespace bastion::journal {

sys_errno posix_file_ops::open(const std::string& path, open_mode mode, int& fd) {
  int flags = O_CLOEXEC;
  switch (mode) {
    case open_mode::read_only:
      flags |= O_RDONLY;
      break;
    case open_mode::read_write:
      flags |= O_RDWR;
      break;
    case open_mode::create_new:
      flags |= O_RDWR | O_CREAT | O_EXCL;
      break;
    case open_mode::create_replace:
      flags |= O_RDWR | O_CREAT | O_TRUNC;
      break;
  }
  do {
    fd = ::open(path.c_str(), flags, 0644);
  } while (fd < 0 && errno == EINTR);
  return fd < 0 ? errno : 0;
}

sys_errno posix_file_ops::close(int fd) {
  // No retry on EINTR: Linux releases the descriptor even then.
  return ::close(fd) == 0 ? 0 : errno;
}

sys_errno posix_file_ops::pwrite_all(int fd, const void* data, std::size_t size,
                                     std::uint64_t offset) {
  const auto* p = static_cast<const unsigned char*>(data);
  while (size > 0) {
    const ssize_t n = ::pwrite(fd, p, size, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (n == 0) return EIO;  // no progress on a regular file: treat as an I/O error
    p += n;
    size -= static_cast<std::size_t>(n);
    offset += static_cast<std::uint64_t>(n);
  }
  return 0;
}

sys_errno posix_file_ops::pread_full(int fd, void* data, std::size_t size, std::uint64_t offset,
                                     std::size_t& got) {
  auto* p = static_cast<unsigned char*>(data);
  got = 0;
  while (got < size) {
    const ssize_t n = ::pread(fd, p + got, size - got, static_cast<off_t>(offset + got));
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (n == 0) break;  // end of file
    got += static_cast<std::size_t>(n);
  }
  return 0;
}

sys_errno posix_file_ops::fdatasync(int fd) { return ::fdatasync(fd) == 0 ? 0 : errno; }

sys_errno posix_file_ops::ftruncate(int fd, std::uint64_t size) {
  int rc;
  do {
    rc = ::ftruncate(fd, static_cast<off_t>(size));
  } while (rc != 0 && errno == EINTR);
  return rc == 0 ? 0 : errno;
}

sys_errno posix_file_ops::file_size(int fd, std::uint64_t& size) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return errno;
  size = static_cast<std::uint64_t>(st.st_size);
  return 0;
}

sys_errno posix_file_ops::rename(const std::string& from, const std::string& to) {
  return std::rename(from.c_str(), to.c_str()) == 0 ? 0 : errno;
}

sys_errno posix_file_ops::unlink(const std::string& path) {
  return ::unlink(path.c_str()) == 0 ? 0 : errno;
}

sys_errno posix_file_ops::sync_dir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return errno;
  const sys_errno rc = ::fsync(fd) == 0 ? 0 : errno;
  ::close(fd);
  return rc;
}

sys_errno posix_file_ops::make_dir(const std::string& dir) {
  if (::mkdir(dir.c_str(), 0755) == 0 || errno == EEXIST) return 0;
  return errno;
}

sys_errno posix_file_ops::list_dir(const std::string& dir, std::vector<std::string>& names) {
  names.clear();
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return errno;
  errno = 0;
  while (const dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    if (e->d_type == DT_REG || e->d_type == DT_UNKNOWN) names.push_back(std::move(name));
  }
  const sys_errno rc = errno;
  ::closedir(d);
  return rc;
}

}  // namespace bastion::journal
