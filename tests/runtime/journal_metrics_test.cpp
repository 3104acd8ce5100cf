// The file_store's metrics: after appends and a snapshot, its series appear in the registry's
// Prometheus text with the owner's labels, with values that follow what the store did.

#include "journal_test_support.hpp"

#include "runtime/metrics/registry.hpp"

using namespace journal_test;

TEST_CASE("journal metrics appear in the Prometheus text and count what the store did") {
  temp_dir tmp;
  bastion::metrics::registry reg;
  auto store = std::make_unique<file_store>(tmp.journal(), file_store_options{}, real_ops(),
                                            [](const std::string&) {});
  store->attach_metrics(reg, {{"replica", "7"}});
  REQUIRE(store->load());
  REQUIRE_FALSE(append_and_wait(*store, 1, make_entries(1, 3, 1, 100)));
  REQUIRE_FALSE(append_and_wait(*store, 4, make_entries(4, 2, 1, 100)));
  snapshot snap;
  snap.index = 4;
  snap.term = 1;
  REQUIRE_FALSE(snapshot_and_wait(*store, snap, 1));
  const auto text = reg.render_prometheus();
  CHECK_THAT(text, Catch::Contains("bastion_journal_appends_total{replica=\"7\"} 2"));
  CHECK_THAT(text, Catch::Contains("bastion_journal_entries_total{replica=\"7\"} 5"));
  // 5 records of 100 payload bytes and a 32-byte header each.
  CHECK_THAT(text, Catch::Contains("bastion_journal_bytes_total{replica=\"7\"} 660"));
  CHECK_THAT(text, Catch::Contains("bastion_journal_snapshots_stored_total{replica=\"7\"} 1"));
  CHECK_THAT(text, Catch::Contains("# TYPE bastion_journal_fsync_seconds_bucket counter"));
  CHECK_THAT(text,
             Catch::Contains("bastion_journal_fsync_seconds_bucket{replica=\"7\",le=\"+Inf\"} " +
                             std::to_string(store->stats().fsyncs.load())));
  CHECK(store->stats().fsyncs.load() >= 2);
  CHECK_THAT(text, Catch::Contains("bastion_journal_fsync_seconds_count{replica=\"7\"} " +
                                   std::to_string(store->stats().fsyncs.load())));
  CHECK_THAT(text, Catch::Contains("bastion_journal_failed_appends_total{replica=\"7\"} 0"));
}
