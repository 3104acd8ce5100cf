#include "actors/replicator_recovery.hpp"

#include "actors/replicator_errors.hpp"
#include "actors/replicator_raft_io.hpp"
#include "runtime/clock/clock.hpp"
#include "runtime/journal/errors.hpp"

extern "C" {
#include <raft.h>
}

#include <condition_variable>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>

namespace bastion::actors {

namespace {

caf::error refused(std::string why) {
  return make_error(replicator_errc::recovery_refused,
                    "refusing to force a configuration: " + std::move(why));
}

// Readable without an actor system (the operator tool may not run one).
std::string render(const caf::error& err) {
  if (err.category() == journal::journal_category::value)
    return journal::render_journal_error(err.code(), err.category(), err.context());
  if (err.category() == replicator_category::value)
    return render_replicator_error(err.code(), err.category(), err.context());
  return caf::to_string(err);
}

const char* role_name(int role) {
  switch (role) {
    case RAFT_VOTER:
      return "voter";
    case RAFT_STANDBY:
      return "standby";
    case RAFT_SPARE:
      return "spare";
    default:
      return "unknown";
  }
}

std::vector<configured_server> servers_of(const raft_configuration& conf) {
  std::vector<configured_server> out;
  for (unsigned i = 0; i < conf.n; ++i)
    out.push_back({conf.servers[i].id, conf.servers[i].address, role_name(conf.servers[i].role)});
  return out;
}

std::string describe_servers(const std::vector<configured_server>& servers) {
  std::ostringstream out;
  const char* sep = "";
  for (const auto& s : servers) {
    out << sep << s.id << "@" << s.address << " (" << s.role << ")";
    sep = ", ";
  }
  return servers.empty() ? "(none)" : out.str();
}

// The configuration in force at the end of the recovered log: the last RAFT_CHANGE entry, or
// the snapshot's. Empty `servers` when neither holds one.
struct stored_configuration {
  std::uint64_t index = 0;
  std::vector<configured_server> servers;
};

caf::expected<stored_configuration> latest_configuration(const journal::recovered_log& rec) {
  const std::vector<std::uint8_t>* bytes = nullptr;
  stored_configuration out;
  for (std::size_t i = rec.entries.size(); i-- > 0;) {
    if (rec.entries[i].type == RAFT_CHANGE) {
      bytes = &rec.entries[i].payload;
      out.index = rec.start_index + i;
      break;
    }
  }
  if (bytes == nullptr && rec.snap) {
    bytes = &rec.snap->configuration;
    out.index = rec.snap->configuration_index;
  }
  if (bytes == nullptr) return out;
  raft_configuration conf;
  raft_configuration_init(&conf);
  if (decode_configuration(*bytes, &conf) != 0)
    return refused("the stored configuration at index " + std::to_string(out.index) +
                   " cannot be read");
  out.servers = servers_of(conf);
  raft_configuration_close(&conf);
  return out;
}

caf::error check_voters(std::uint64_t self_id, const std::string& self_address,
                        const std::vector<std::pair<std::uint64_t, std::string>>& keep) {
  if (keep.empty()) return refused("the new configuration names no voter");
  std::set<std::uint64_t> seen;
  bool self_kept = false;
  for (const auto& [id, address] : keep) {
    if (id == 0) return refused("voter id 0 names no replica (Raft server ids start at 1)");
    if (!seen.insert(id).second) return refused("voter " + std::to_string(id) + " is listed twice");
    if (address.empty()) return refused("voter " + std::to_string(id) + " has an empty address");
    if (id == self_id) {
      if (address != self_address)
        return refused("this replica (" + std::to_string(self_id) + ") is listed as " + address +
                       " but its address is " + self_address);
      self_kept = true;
    }
  }
  if (!self_kept)
    return refused("this replica (" + std::to_string(self_id) +
                   ") is not in the new configuration: the promoted replica must be a voter of "
                   "it, or nobody could lead");
  return caf::none;
}

// What the raft_io reports back from the store's thread: the status of each token.
struct completions {
  std::mutex mutex;
  std::condition_variable changed;
  std::map<std::uint64_t, int> done;
  std::string last_error;
};

}  // namespace

std::string forced_configuration_report::describe() const {
  std::ostringstream out;
  out << "term " << term << ", voted for " << voted_for << "\n";
  out << "log " << first_index << ".." << last_index << " (last term " << last_term
      << "), snapshot up to " << snapshot_index << "\n";
  out << "replaced configuration (index " << replaced_configuration_index
      << "): " << describe_servers(replaced_configuration) << "\n";
  out << "forced configuration (index " << configuration_index << ", term " << configuration_term
      << "): " << describe_servers(configuration) << "\n";
  for (const auto& n : notes) out << n << "\n";
  return out.str();
}

caf::expected<forced_configuration_report> force_configuration(
    journal::log_store& store, std::uint64_t self_id, std::string self_address,
    std::vector<std::pair<std::uint64_t, std::string>> keep_voters,
    std::chrono::milliseconds durable_wait) {
  if (self_id == 0) return refused("self id 0 names no replica");
  if (auto err = check_voters(self_id, self_address, keep_voters)) return err;
  auto loaded = store.load();
  if (!loaded)
    return refused("the journal cannot be opened: " + render(loaded.error()) +
                   " (stop the node that uses it first)");
  auto& rec = *loaded;
  if (rec.entries.empty() && !rec.snap)
    return refused(
        "the journal is pristine (no entry, no snapshot): there is nothing to "
        "recover; a new cluster is bootstrapped instead");
  forced_configuration_report report;
  report.term = rec.hard.term;
  report.voted_for = rec.hard.voted_for;
  report.snapshot_index = rec.snap ? rec.snap->index : 0;
  report.first_index = rec.start_index;
  report.last_index = rec.start_index + rec.entries.size() - 1;
  report.last_term = rec.entries.empty() ? rec.snap->term : rec.entries.back().term;
  report.known_committed_index = report.snapshot_index;
  auto replaced = latest_configuration(rec);
  if (!replaced) return replaced.error();
  report.replaced_configuration_index = replaced->index;
  report.replaced_configuration = replaced->servers;
  for (const auto& [id, address] : keep_voters) {
    bool known = false;
    for (const auto& s : replaced->servers) known = known || s.id == id;
    if (!known)
      return refused("voter " + std::to_string(id) +
                     " is not a server of the configuration being replaced (" +
                     describe_servers(replaced->servers) +
                     "); forced promotion only reduces it (is this the right journal?)");
  }

  // libraft over our raft_io, never started: raft_init, raft_recover (do_recover appends the
  // entry), wait for the store, raft_close.
  auto done = std::make_shared<completions>();
  caf_raft_io::hooks hooks;
  hooks.send_frame = [](raft_id, wire::frame) { return false; };
  hooks.post_completion = [done](std::uint64_t token, int status) {
    {
      std::lock_guard<std::mutex> guard{done->mutex};
      done->done[token] = status;
    }
    done->changed.notify_all();
  };
  hooks.schedule_tick = [](unsigned) {};
  hooks.report_error = [done](std::string what) {
    std::lock_guard<std::mutex> guard{done->mutex};
    done->last_error = std::move(what);
  };
  const system_clock_source clock;  // libraft reads no time before raft_start
  caf_raft_io io{store, clock, 0, std::move(rec), std::move(hooks)};
  raft_fsm fsm{};
  fsm.version = 1;
  struct raft r {};
  if (int rv = raft_init(&r, io.io(), &fsm, self_id, self_address.c_str()); rv != 0)
    return make_error(replicator_errc::raft_failed, std::string{"raft_init: "} + raft_strerror(rv));
  bool closed = false;
  r.data = &closed;
  auto close_raft = [&] {
    raft_close(&r, [](struct raft* rr) { *static_cast<bool*>(rr->data) = true; });
    if (!closed) std::abort();  // our io closes synchronously; anything else is a bug
  };
  raft_configuration conf;
  raft_configuration_init(&conf);
  int rv = 0;
  for (const auto& [id, address] : keep_voters)
    if (rv == 0) rv = raft_configuration_add(&conf, id, address.c_str(), RAFT_VOTER);
  if (rv == 0) rv = raft_recover(&r, &conf);
  if (rv == 0) report.configuration = servers_of(conf);
  raft_configuration_close(&conf);
  if (rv != 0) {
    std::string detail = std::string{"raft_recover: "} + raft_strerror(rv);
    if (*raft_errmsg(&r) != '\0') detail += std::string{" ("} + raft_errmsg(&r) + ")";
    close_raft();
    return make_error(
        rv == RAFT_IOERR ? replicator_errc::storage_failed : replicator_errc::raft_failed,
        std::move(detail));
  }
  const auto written = io.recovered();
  std::optional<int> status;
  {
    std::unique_lock<std::mutex> lock{done->mutex};
    done->changed.wait_for(lock, durable_wait, [&] { return done->done.count(written.token) > 0; });
    if (auto it = done->done.find(written.token); it != done->done.end()) status = it->second;
  }
  if (!status) {
    close_raft();  // cancels the wait; the store may still write the entry later
    return make_error(replicator_errc::storage_failed,
                      "the forced configuration at index " + std::to_string(written.index) +
                          " was not durable after " + std::to_string(durable_wait.count()) +
                          " ms; check the journal (it may or may not hold the entry)");
  }
  io.complete(written.token, *status);
  close_raft();
  if (*status != 0)
    return make_error(replicator_errc::storage_failed,
                      "writing the forced configuration at index " + std::to_string(written.index) +
                          " failed: " + done->last_error);

  report.configuration_index = written.index;
  report.configuration_term = written.term;
  report.notes.push_back("the forced configuration is entry " + std::to_string(written.index) +
                         " (term " + std::to_string(written.term) +
                         "); on start this replica leads alone with it" +
                         (keep_voters.size() > 1 ? " once a majority of it is up" : ""));
  report.notes.push_back(
      "loss window: entries " + std::to_string(report.known_committed_index + 1) + ".." +
      std::to_string(report.last_index) +
      " were held here without proof of commit; they all become committed now, including any "
      "the old cluster never acknowledged. Records the lost sites committed after index " +
      std::to_string(report.last_index) +
      " never reached this replica and are lost: compare with the commit index they last "
      "reported");
  report.notes.push_back(
      "lost sites come back only with an empty journal that does not bootstrap (`bastion "
      "rejoin` on the site), never their old one, and are added back by a configuration "
      "change (`bastion add-site`)");
  return report;
}

}  // namespace bastion::actors
