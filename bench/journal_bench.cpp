// journal_bench: commit latency and throughput of file_store's group commit, beside a plain
// "write + fdatasync per record" baseline on the same disk in the same run (ratios survive a
// noisy machine better than absolute numbers).
//
//   build/bench/journal_bench [directory (default: a new one under $TMPDIR)] [records per run]
//                             [group_commit_linger_us for the "linger" rows (default 200)]
//
// Runs for 256-byte and 4 KiB records:
//   baseline 1 thread : pwrite + fdatasync per record, one thread, one file
//   baseline 8 threads: the same from 8 threads on one file (each its own region)
//   file_store 1 sub. : one submitter, append + wait for the callback, one record at a time
//   file_store 8 subs.: 8 submitters in closed loops (group commit merges their fsyncs)
//   "linger" rows      : the same with file_store_options::group_commit_linger_us set

#include "runtime/journal/crc32c.hpp"
#include "runtime/journal/errors.hpp"
#include "runtime/journal/file_store.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

namespace fs = std::filesystem;
namespace bj = bastion::journal;
using steady = std::chrono::steady_clock;

struct result {
  double seconds = 0;
  std::size_t records = 0;
  std::size_t record_bytes = 0;
  std::vector<double> latencies_us;
  std::uint64_t fsyncs = 0;

  double percentile(double p) {
    if (latencies_us.empty()) return 0;
    std::sort(latencies_us.begin(), latencies_us.end());
    const auto i = static_cast<std::size_t>(p * static_cast<double>(latencies_us.size() - 1));
    return latencies_us[i];
  }
  double records_per_s() const { return static_cast<double>(records) / seconds; }
  double mb_per_s() const { return static_cast<double>(records * record_bytes) / seconds / 1e6; }
};

double micros_since(steady::time_point t0) {
  return std::chrono::duration<double, std::micro>(steady::now() - t0).count();
}

// write + fdatasync per record; `threads` writers on one file, each in its own region.
result run_baseline(const std::string& dir, std::size_t record_bytes, std::size_t records,
                    int threads) {
  const std::string path = dir + "/baseline.dat";
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    std::perror("open baseline file");
    std::exit(1);
  }
  result r;
  r.records = records;
  r.record_bytes = record_bytes;
  std::vector<std::vector<double>> lat(static_cast<std::size_t>(threads));
  const std::size_t per_thread = records / static_cast<std::size_t>(threads);
  r.records = per_thread * static_cast<std::size_t>(threads);
  const auto t0 = steady::now();
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      std::vector<unsigned char> buf(record_bytes, static_cast<unsigned char>(t));
      const auto base = static_cast<off_t>(static_cast<std::size_t>(t) * per_thread * record_bytes);
      for (std::size_t i = 0; i < per_thread; ++i) {
        const auto s = steady::now();
        const auto off = base + static_cast<off_t>(i * record_bytes);
        if (::pwrite(fd, buf.data(), buf.size(), off) != static_cast<ssize_t>(buf.size()) ||
            ::fdatasync(fd) != 0) {
          std::perror("baseline write");
          std::exit(1);
        }
        lat[static_cast<std::size_t>(t)].push_back(micros_since(s));
      }
    });
  }
  for (auto& th : pool) th.join();
  r.seconds = std::chrono::duration<double>(steady::now() - t0).count();
  for (auto& l : lat) r.latencies_us.insert(r.latencies_us.end(), l.begin(), l.end());
  r.fsyncs = r.records;
  ::close(fd);
  fs::remove(path);
  return r;
}

// `submitters` threads, each appending one record and waiting for its callback, in a loop.
result run_store(const std::string& dir, std::size_t record_bytes, std::size_t records,
                 int submitters, std::uint32_t linger_us = 0) {
  const std::string jdir = dir + "/journal";
  fs::remove_all(jdir);
  bj::posix_file_ops real;
  auto ops = std::shared_ptr<bj::file_ops>(&real, [](bj::file_ops*) {});  // not owned
  bj::file_store_options opts;
  opts.group_commit_linger_us = linger_us;
  bj::file_store store{jdir, opts, ops};
  if (auto log = store.load(); !log) {
    std::fprintf(stderr, "load failed: %s\n", bj::error_detail(log.error()).c_str());
    std::exit(1);
  }
  const std::uint64_t fsyncs_before = store.stats().fsyncs.load();
  std::mutex order;  // indexes must be handed to append() in order
  std::uint64_t next_index = 1;
  const std::size_t per_thread = records / static_cast<std::size_t>(submitters);
  std::vector<std::vector<double>> lat(static_cast<std::size_t>(submitters));
  const auto t0 = steady::now();
  std::vector<std::thread> pool;
  for (int t = 0; t < submitters; ++t) {
    pool.emplace_back([&, t] {
      std::mutex m;
      std::condition_variable cv;
      for (std::size_t i = 0; i < per_thread; ++i) {
        bj::log_entry e;
        e.term = 1;
        e.payload.assign(record_bytes, static_cast<std::uint8_t>(i));
        bool done = false;
        caf::error outcome;
        const auto s = steady::now();
        {
          std::lock_guard<std::mutex> guard{order};
          store.append(next_index++, {std::move(e)}, [&](caf::error err) {
            std::lock_guard<std::mutex> g{m};
            outcome = std::move(err);
            done = true;
            cv.notify_one();
          });
        }
        std::unique_lock<std::mutex> g{m};
        cv.wait(g, [&] { return done; });
        if (outcome) {
          std::fprintf(stderr, "append failed: %s\n", bj::error_detail(outcome).c_str());
          std::exit(1);
        }
        lat[static_cast<std::size_t>(t)].push_back(micros_since(s));
      }
    });
  }
  for (auto& th : pool) th.join();
  result r;
  r.seconds = std::chrono::duration<double>(steady::now() - t0).count();
  r.records = per_thread * static_cast<std::size_t>(submitters);
  r.record_bytes = record_bytes;
  for (auto& l : lat) r.latencies_us.insert(r.latencies_us.end(), l.begin(), l.end());
  r.fsyncs = store.stats().fsyncs.load() - fsyncs_before;
  store.stop();
  fs::remove_all(jdir);
  return r;
}

void print_row(const char* name, result& r) {
  std::printf("  %-22s %9.0f rec/s %8.2f MB/s  p50 %8.1f us  p99 %8.1f us  fsyncs %6llu\n", name,
              r.records_per_s(), r.mb_per_s(), r.percentile(0.50), r.percentile(0.99),
              static_cast<unsigned long long>(r.fsyncs));
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir;
  bool own_dir = false;
  if (argc > 1) {
    dir = argv[1];
    fs::create_directories(dir);
  } else {
    std::string tmpl = (fs::temp_directory_path() / "journal-bench-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) {
      std::perror("mkdtemp");
      return 1;
    }
    dir = tmpl;
    own_dir = true;
  }
  const long records_arg = argc > 2 ? std::atol(argv[2]) : 2000;
  if (records_arg < 8) {
    std::fprintf(stderr, "usage: %s [directory] [records per run >= 8] [linger_us]\n", argv[0]);
    return 2;
  }
  const auto records = static_cast<std::size_t>(records_arg);
  const auto linger_us = static_cast<std::uint32_t>(argc > 3 ? std::atol(argv[3]) : 200);
  std::printf("command: %s %s %zu %u\n", argv[0], dir.c_str(), records, linger_us);
  std::printf("directory: %s, %zu records per run, crc32c hardware: %s\n", dir.c_str(), records,
              bj::crc32c_uses_hardware() ? "yes" : "no");
  for (std::size_t size : {std::size_t{256}, std::size_t{4096}}) {
    std::printf("\nrecord payload %zu bytes\n", size);
    auto base1 = run_baseline(dir, size, records, 1);
    auto base8 = run_baseline(dir, size, records, 8);
    auto store1 = run_store(dir, size, records, 1);
    auto store1_linger = run_store(dir, size, records, 1, linger_us);
    auto store8 = run_store(dir, size, records, 8);
    auto store8_linger = run_store(dir, size, records, 8, linger_us);
    print_row("baseline 1 thread", base1);
    print_row("baseline 8 threads", base8);
    print_row("file_store 1 sub", store1);
    print_row("file_store 1 sub linger", store1_linger);
    print_row("file_store 8 subs", store8);
    print_row("file_store 8 subs linger", store8_linger);
    auto ratios = [&](const char* name, result& r, result& base) {
      std::printf("  %-40s throughput %5.2fx  p50 %5.2fx  p99 %5.2fx  records/fsync %5.2f\n", name,
                  r.records_per_s() / base.records_per_s(),
                  r.percentile(0.5) / base.percentile(0.5),
                  r.percentile(0.99) / base.percentile(0.99),
                  static_cast<double>(r.records) / static_cast<double>(r.fsyncs));
    };
    std::printf("  ratios (ours / baseline; latency ratio < 1 is better):\n");
    ratios("file_store 1 sub / baseline 1 thread", store1, base1);
    ratios("file_store 1 sub linger / baseline 1 thread", store1_linger, base1);
    ratios("file_store 8 subs / baseline 1 thread", store8, base1);
    ratios("file_store 8 subs linger / baseline 1 thread", store8_linger, base1);
    ratios("file_store 8 subs / baseline 8 threads", store8, base8);
    ratios("file_store 8 subs linger / baseline 8 threads", store8_linger, base8);
  }
  if (own_dir) fs::remove_all(dir);
  return 0;
}
