#include "actors/replicator_rejoin.hpp"

#include "actors/replicator_errors.hpp"
#include "runtime/journal/directory_lock.hpp"

#include <caf/error.hpp>
#include <caf/message.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>

namespace bastion::actors {

namespace fs = std::filesystem;

namespace {

caf::error refused(const std::string& why) {
  return make_error(replicator_errc::recovery_refused, "refusing to prepare a rejoin: " + why);
}

std::string errno_text(int err) { return std::strerror(err); }

// fsync on a directory makes a rename or a new entry in it durable.
int sync_path(const std::string& path, int flags) {
  const int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) return errno;
  const int rc = ::fsync(fd) == 0 ? 0 : errno;
  ::close(fd);
  return rc;
}

std::string parent_of(const std::string& dir) {
  auto p = fs::path(dir).lexically_normal().parent_path();
  return p.empty() ? "." : p.string();
}

// Only the marker (and the lock file a node leaves behind): already prepared.
bool only_marker(const std::string& dir) {
  std::error_code ec;
  bool marker = false;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const auto name = e.path().filename().string();
    if (name == join_marker_file)
      marker = true;
    else if (name != journal::lock_file_name)
      return false;
  }
  return marker && !ec;
}

caf::error write_marker(const std::string& dir) {
  const std::string path = dir + "/" + join_marker_file;
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return refused("cannot create " + path + ": " + errno_text(errno));
  static const char text[] =
      "This replica rejoins an existing cluster: it starts without bootstrapping a\n"
      "configuration and waits for the leader to add it (bastion add-site). Written by\n"
      "bastion rejoin after a forced promotion; see actors/replicator_rejoin.hpp.\n";
  const bool ok = ::write(fd, text, sizeof text - 1) == static_cast<ssize_t>(sizeof text - 1) &&
                  ::fsync(fd) == 0;
  const int err = errno;
  ::close(fd);
  if (!ok) return refused("cannot write " + path + ": " + errno_text(err));
  if (int rc = sync_path(dir, O_RDONLY | O_DIRECTORY))
    return refused("cannot sync " + dir + ": " + errno_text(rc));
  return caf::none;
}

}  // namespace

bool joins_existing_cluster(const std::string& journal_dir) {
  std::error_code ec;
  return fs::exists(fs::path(journal_dir) / join_marker_file, ec);
}

caf::expected<rejoin_report> prepare_rejoin(const std::string& journal_dir,
                                            const std::string& suffix) {
  rejoin_report report;
  report.marker = journal_dir + "/" + join_marker_file;
  std::error_code ec;
  const bool exists = fs::exists(journal_dir, ec);
  if (exists && !fs::is_directory(journal_dir, ec))
    return refused(journal_dir + " is not a directory");
  if (exists && only_marker(journal_dir)) return report;  // prepared before
  const bool empty = !exists || fs::is_empty(journal_dir, ec);
  if (!empty) {
    // A running node holds the lock: its journal must not move under it.
    auto lock = journal::directory_lock::acquire(journal_dir);
    if (!lock) {
      const auto& ctx = lock.error().context();
      std::string why = "the journal is in use";
      if (ctx.match_elements<std::string>()) why = ctx.get_as<std::string>(0);
      return refused(why + " (stop the site's node first)");
    }
    report.moved_to = fs::path(journal_dir).lexically_normal().string() + ".fenced-" + suffix;
    if (fs::exists(report.moved_to, ec)) return refused(report.moved_to + " exists already");
    // Moved while locked (the lock follows the directory): no node can start on it between.
    if (::rename(journal_dir.c_str(), report.moved_to.c_str()) != 0)
      return refused("cannot move " + journal_dir + " to " + report.moved_to + ": " +
                     errno_text(errno));
    lock->release();
  }
  fs::create_directories(journal_dir, ec);
  if (ec) return refused("cannot create " + journal_dir + ": " + ec.message());
  if (int rc = sync_path(parent_of(journal_dir), O_RDONLY | O_DIRECTORY))
    return refused("cannot sync " + parent_of(journal_dir) + ": " + errno_text(rc));
  if (auto err = write_marker(journal_dir)) return err;
  return report;
}

}  // namespace bastion::actors
