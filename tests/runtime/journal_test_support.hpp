#pragma once
// Shared by the journal tests: a temporary directory, entries whose payload says which index
// and term they were written for, blocking wrappers around the asynchronous store calls, and
// raw file access to damage segments the way crashes and bad disks do.

#include "runtime/journal/crc32c.hpp"
#include "runtime/journal/errors.hpp"
#include "runtime/journal/file_store.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <iterator>
#include <string>
#include <vector>

namespace journal_test {

namespace fs = std::filesystem;
using namespace bastion::journal;

class temp_dir {
 public:
  temp_dir() {
    std::string tmpl = (fs::temp_directory_path() / "bastion-journal-XXXXXX").string();
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    path_ = tmpl;
  }
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  /// The journal directory inside (created by the store itself).
  std::string journal() const { return (fs::path{path_} / "journal").string(); }

 private:
  std::string path_;
};

/// An entry whose payload encodes (index, term) and has `size` bytes.
inline log_entry make_entry(std::uint64_t index, std::uint64_t term, std::size_t size = 40) {
  log_entry e;
  e.term = term;
  e.type = static_cast<std::uint8_t>(1 + index % 3);
  e.payload.resize(size);
  for (std::size_t i = 0; i < size; ++i) {
    e.payload[i] = static_cast<std::uint8_t>((index * 131 + term * 31 + i * 7) & 0xFF);
  }
  return e;
}

inline std::vector<log_entry> make_entries(std::uint64_t first, std::size_t n, std::uint64_t term,
                                           std::size_t size = 40) {
  std::vector<log_entry> out;
  for (std::size_t i = 0; i < n; ++i) out.push_back(make_entry(first + i, term, size));
  return out;
}

inline bool same_entry(const log_entry& a, const log_entry& b) {
  return a.term == b.term && a.type == b.type && a.payload == b.payload;
}

/// Waits for a completion; fails the test when it never comes.
class completion_waiter {
 public:
  log_store::completion callback() {
    return [p = promise_](caf::error err) { p->set_value(std::move(err)); };
  }
  caf::error wait() {
    auto fut = promise_->get_future();
    REQUIRE(fut.wait_for(std::chrono::seconds(30)) == std::future_status::ready);
    return fut.get();
  }

 private:
  std::shared_ptr<std::promise<caf::error>> promise_ = std::make_shared<std::promise<caf::error>>();
};

inline caf::error append_and_wait(log_store& store, std::uint64_t first,
                                  std::vector<log_entry> entries) {
  completion_waiter w;
  store.append(first, std::move(entries), w.callback());
  return w.wait();
}

inline caf::error truncate_and_wait(log_store& store, std::uint64_t index) {
  completion_waiter w;
  store.truncate(index, w.callback());
  return w.wait();
}

inline caf::error snapshot_and_wait(log_store& store, snapshot snap, std::uint64_t trailing) {
  completion_waiter w;
  store.put_snapshot(std::move(snap), trailing, w.callback());
  return w.wait();
}

/// A store on the real file system (or `ops`), loaded; REQUIREs that load succeeded.
struct opened_store {
  std::unique_ptr<file_store> store;
  recovered_log log;
  // Shared with the store's log sink, which may run on its I/O thread after this is moved.
  std::shared_ptr<std::vector<std::string>> notice_lines =
      std::make_shared<std::vector<std::string>>();
  const std::vector<std::string>& notices() const { return *notice_lines; }
};

inline std::shared_ptr<file_ops> real_ops() { return std::make_shared<posix_file_ops>(); }

inline caf::expected<recovered_log> try_open(
    std::unique_ptr<file_store>& store, const std::string& dir, file_store_options opts = {},
    std::shared_ptr<file_ops> ops = real_ops(),
    std::shared_ptr<std::vector<std::string>> notices = {}) {
  store = std::make_unique<file_store>(dir, opts, std::move(ops), [notices](const std::string& l) {
    if (notices) notices->push_back(l);
  });
  return store->load();
}

inline opened_store open_store(const std::string& dir, file_store_options opts = {},
                               std::shared_ptr<file_ops> ops = real_ops()) {
  opened_store out;
  auto log = try_open(out.store, dir, opts, std::move(ops), out.notice_lines);
  if (!log) FAIL("load failed: " << error_detail(log.error()));
  out.log = std::move(*log);
  return out;
}

/// Segment files in `dir`, oldest first.
inline std::vector<std::string> segment_files(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    const auto name = e.path().filename().string();
    if (name.rfind("segment-", 0) == 0) out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

inline std::vector<std::uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

inline void write_bytes(const std::string& path, const std::vector<std::uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
  REQUIRE(out.good());
}

inline void flip_bit(const std::string& path, std::uint64_t offset, int bit = 3) {
  auto bytes = read_bytes(path);
  REQUIRE(offset < bytes.size());
  bytes[offset] ^= static_cast<std::uint8_t>(1u << bit);
  write_bytes(path, bytes);
}

/// The record offsets of a segment holding entries of `payload_bytes` each: header, then
/// 32-byte record headers and payloads back to back.
inline std::uint64_t record_offset(std::size_t record, std::size_t payload_bytes) {
  return 32 + record * (32 + payload_bytes);
}

}  // namespace journal_test
