// A worker's `threads` setting reaches its CPU backend: a worker configured with N threads
// runs a backend whose thread pool has N threads (the caller's and N - 1 started ones, counted
// in /proc/self/task), the setting wins over BASTION_CPU_THREADS, and a bad value is refused
// at config load with the key, the value and the reason.

#include "actors/worker/worker_backend.hpp"

#include <catch2/catch.hpp>

#include <dirent.h>
#include <unistd.h>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

using namespace bastion;

namespace {

// Threads of this process now.
int process_threads() {
  int n = 0;
  DIR* d = ::opendir("/proc/self/task");
  REQUIRE(d != nullptr);
  while (auto* e = ::readdir(d))
    if (e->d_name[0] != '.') ++n;
  ::closedir(d);
  return n;
}

struct model_file {
  std::string path = "/tmp/bastion-worker-backend-test-" + std::to_string(::getpid()) + ".gguf";
  model_file() { std::ofstream{path} << "x"; }
  ~model_file() { ::unlink(path.c_str()); }
};

config::load_result load_worker(const model_file& m, const std::string& worker_extra) {
  return config::parse_node_config("[[models]]\nid = \"m\"\npath = \"" + m.path +
                                       "\"\n[[workers]]\nid = \"cpu-0\"\nkind = \"cpu\"\n"
                                       "models = [\"m\"]\n" +
                                       worker_extra,
                                   "test.toml");
}

// The threads a backend built for `w` starts (its pool's workers; the caller is the last one).
int threads_started_by(const config::worker_section& w, worker::worker_backend& out) {
  const int before = process_threads();
  out = worker::make_worker_backend(w);
  REQUIRE(out.backend != nullptr);
  return process_threads() - before;
}

}  // namespace

TEST_CASE("a worker configured with N threads runs a CPU backend with N threads") {
  ::unsetenv("BASTION_CPU_THREADS");
  model_file m;
  for (int n : {1, 3, 5}) {
    auto r = load_worker(m, "threads = " + std::to_string(n) + "\n");
    INFO((r.errors.empty() ? std::string{} : r.errors[0]));
    REQUIRE(r.config);
    REQUIRE(r.config->workers[0].threads == static_cast<std::uint32_t>(n));
    worker::worker_backend be;
    CHECK(threads_started_by(r.config->workers[0], be) == n - 1);
    CHECK(be.threads == n);
    CHECK(be.name == "cpu");
    CHECK(be.error.empty());
  }
}

TEST_CASE("the worker's threads win over BASTION_CPU_THREADS; 0 leaves the environment's") {
  model_file m;
  ::setenv("BASTION_CPU_THREADS", "4", 1);
  auto two = load_worker(m, "threads = 2\n");
  REQUIRE(two.config);
  worker::worker_backend be;
  CHECK(threads_started_by(two.config->workers[0], be) == 1);
  CHECK(be.threads == 2);

  auto zero = load_worker(m, "");
  REQUIRE(zero.config);
  CHECK(zero.config->workers[0].threads == 0u);
  worker::worker_backend env_be;
  CHECK(threads_started_by(zero.config->workers[0], env_be) == 3);
  CHECK(env_be.threads == 4);
  ::unsetenv("BASTION_CPU_THREADS");
}

TEST_CASE("a bad environment gives no backend and a reason naming the worker") {
  model_file m;
  ::setenv("BASTION_CPU_THREADS", "lots", 1);
  auto r = load_worker(m, "");
  REQUIRE(r.config);
  auto be = worker::make_worker_backend(r.config->workers[0]);
  ::unsetenv("BASTION_CPU_THREADS");
  CHECK(be.backend == nullptr);
  CHECK_THAT(be.error, Catch::Contains("worker 'cpu-0'") && Catch::Contains("BASTION_CPU_THREADS"));
}

TEST_CASE("a bad threads value is refused at config load with key, value and reason") {
  model_file m;
  auto too_many = load_worker(m, "threads = 257\n");
  CHECK_FALSE(too_many.config);
  REQUIRE(too_many.errors.size() == 1);
  CHECK_THAT(too_many.errors[0],
             Catch::Contains("workers[0].threads = 257 refused: must be between 0 and 256"));
  auto words = load_worker(m, "threads = \"four\"\n");
  CHECK_FALSE(words.config);
  REQUIRE(words.errors.size() == 1);
  CHECK_THAT(words.errors[0],
             Catch::Contains("workers[0].threads = 'four' refused: must be an integer"));
}
