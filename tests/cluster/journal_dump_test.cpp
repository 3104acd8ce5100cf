// `bastion journal` (cluster/cli/journal_dump): a stopped replica's journal read back as JSON
// lines, on a journal written by the real store with the coordinator's own records and the
// replicator's own snapshot summary.

#include "cluster/cli/journal_dump.hpp"
#include "actors/coordination/journal_records.hpp"
#include "actors/replicator_state.hpp"
#include "tests/runtime/journal_test_support.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <sstream>
#include <string>
#include <vector>

namespace {

using json = nlohmann::json;
namespace coordination = bastion::coordination;
namespace gateway = bastion::gateway;

coordination::record_bytes failed(const std::string& id, gateway::inference_error e) {
  e.request_id = id;
  return coordination::encode_completion(id, e, {true, "prod", 1}, 1);
}

/// The prompt-too-long refusal as the serving port gives it: typed reason and field at fault.
gateway::inference_error too_long() {
  gateway::inference_error e{gateway::error_code::invalid_argument,
                             "the prompt leaves no room in the context",
                             {},
                             0,
                             {},
                             "input"};
  e.reason = std::string{gateway::prompt_too_long_reason};
  return e;
}

gateway::inference_error plain_failure() {
  return {gateway::error_code::internal, "worker lost", {}, 0, {}};
}

struct dumped {
  int rc = -1;
  std::vector<json> lines;
  std::string err;
};

dumped dump(const std::string& dir) {
  std::ostringstream out, err;
  dumped d;
  d.rc = bastion::cli::dump_journal(dir, out, err);
  d.err = err.str();
  std::istringstream in(out.str());
  for (std::string line; std::getline(in, line);) d.lines.push_back(json::parse(line));
  return d;
}

const json* find_line(const std::vector<json>& lines, const std::string& request_id) {
  for (const auto& l : lines)
    if (l.contains("request_id") && l.at("request_id") == request_id) return &l;
  return nullptr;
}

}  // namespace

TEST_CASE("the journal dump shows a failed completion with its typed reason and field") {
  journal_test::temp_dir tmp;
  const std::vector<coordination::record_bytes> records{failed("req-long", too_long()),
                                                        failed("req-lost", plain_failure()),
                                                        failed("req-long-again", too_long())};
  bastion::actors::journal_summary summary;
  {
    auto opened = journal_test::open_store(tmp.journal());
    std::vector<bastion::journal::log_entry> entries;
    for (const auto& r : records) entries.push_back({1, 1, r});
    REQUIRE(!journal_test::append_and_wait(*opened.store, 1, entries));
    // The first two are also folded into a snapshot, as the replicator compacts them.
    summary.apply(1, records[0]);
    summary.apply(2, records[1]);
    bastion::journal::snapshot snap;
    snap.index = 2;
    snap.term = 1;
    snap.data = summary.serialize();
    REQUIRE(!journal_test::snapshot_and_wait(*opened.store, std::move(snap), 10));
  }  // the store's lock is released: the dump reads the directory as an operator would

  const auto d = dump(tmp.journal());
  INFO(d.err);
  REQUIRE(d.rc == 0);

  const auto* long_one = find_line(d.lines, "req-long-again");
  REQUIRE(long_one != nullptr);
  CHECK(long_one->at("kind") == "completion");
  CHECK(long_one->at("error_code") == "invalidArgument");
  CHECK(long_one->at("error") == "the prompt leaves no room in the context");
  CHECK(long_one->at("error_reason") == "prompt_too_long");
  CHECK(long_one->at("error_param") == "input");

  const auto* lost = find_line(d.lines, "req-lost");
  REQUIRE(lost != nullptr);
  CHECK(lost->at("error_code") == "internal");
  CHECK(lost->at("error") == "worker lost");
  CHECK_FALSE(lost->contains("error_reason"));  // unspecified: nothing to show
  CHECK_FALSE(lost->contains("error_param"));

  const json* snapshot = nullptr;
  for (const auto& l : d.lines)
    if (l.at("kind") == "snapshot") snapshot = &l;
  REQUIRE(snapshot != nullptr);
  const auto remembered = snapshot->at("completions").get<std::vector<json>>();
  const auto* kept = find_line(remembered, "req-long");
  REQUIRE(kept != nullptr);
  CHECK(kept->at("error_reason") == "prompt_too_long");
  CHECK(kept->at("error_param") == "input");
}
