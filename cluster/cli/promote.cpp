#include "cluster/cli/promote.hpp"

#include "actors/replicator_errors.hpp"
#include "actors/replicator_recovery.hpp"
#include "cluster/cli/admin_client.hpp"
#include "runtime/journal/file_ops.hpp"
#include "runtime/journal/file_store.hpp"

#include <chrono>
#include <ctime>
#include <filesystem>
#include <istream>
#include <ostream>
#include <set>
#include <sstream>

namespace bastion::cli {

namespace {

std::set<std::string> split(const std::string& csv) {
  std::set<std::string> out;
  std::stringstream ss(csv);
  for (std::string item; std::getline(ss, item, ',');)
    if (!item.empty()) out.insert(item);
  return out;
}

/// The newest modification time among the journal's files: the last moment this replica
/// wrote anything, so the start of what the lost sites may have committed without it.
std::optional<std::filesystem::file_time_type> last_write(const std::string& dir) {
  std::error_code ec;
  std::optional<std::filesystem::file_time_type> newest;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    const auto t = e.last_write_time(ec);
    if (!ec && (!newest || t > *newest)) newest = t;
  }
  return newest;
}

}  // namespace

int promote(const config::node_config& cfg, const std::string& fenced_csv, bool assume_yes,
            std::istream& in, std::ostream& out, std::ostream& err) {
  const auto fenced = split(fenced_csv);
  const auto& c = cfg.cluster;
  std::vector<std::pair<std::uint64_t, std::string>> keep{
      {c.replica_id, cfg.http.listen.host + ":" + std::to_string(cfg.http.listen.port)}};
  for (const auto& f : fenced) {
    bool known = false;
    for (const auto& p : c.peers) known = known || p.site == f;
    if (!known || f == cfg.node.site) {
      err << "bastion promote: '" << f << "' is not another site of this cluster\n";
      return 2;
    }
  }
  for (const auto& p : c.peers)
    if (!fenced.count(p.site)) keep.push_back({p.replica_id, p.http_address});
  const std::size_t voters = c.peers.size() + 1;
  if (keep.size() > voters / 2) {
    err << "bastion promote: " << keep.size() << " of " << voters
        << " sites would remain, a majority: they elect a leader themselves. Forced promotion "
           "is only for the loss of the majority; use `bastion switchover` to move leadership\n";
    return 2;
  }
  // A fenced site must not answer. This does not prove it is fenced (that is the operator's
  // attestation), but it catches the worst mistake: promoting beside a live majority.
  for (const auto& p : c.peers) {
    if (!fenced.count(p.site)) continue;
    auto a = http_call(p.http_address, "GET", "/healthz", "", "", std::chrono::seconds{2});
    if (a.status != 0) {
      err << "bastion promote: site '" << p.site << "' answers at " << p.http_address << " (HTTP "
          << a.status << "): it is not fenced. Stop and fence it first.\n";
      return 1;
    }
  }
  const auto written = last_write(c.journal_dir);
  out << "Forced promotion of site '" << cfg.node.site << "' (replica " << c.replica_id
      << "), journal " << c.journal_dir << "\n"
      << "You attest that these sites are fenced and cannot come back by themselves: " << fenced_csv
      << "\n";
  if (written) {
    const auto age = std::chrono::duration_cast<std::chrono::seconds>(
        std::filesystem::file_time_type::clock::now() - *written);
    out << "Possible loss window: results the lost sites committed after this replica last "
           "wrote its journal, "
        << age.count()
        << " s ago, are lost (this site cannot know how many; compare with the lost sites' "
           "last reported commit index).\n";
  }
  if (!assume_yes) {
    const std::string expected = "promote " + cfg.node.site;
    out << "Type '" << expected << "' to continue: " << std::flush;
    std::string line;
    std::getline(in, line);
    if (line != expected) {
      err << "bastion promote: not confirmed; nothing was changed\n";
      return 1;
    }
  }
  journal::file_store store(
      c.journal_dir, journal::file_store_options{}, std::make_shared<journal::posix_file_ops>(),
      [&err](const std::string& line) { err << "journal: " << line << "\n"; });
  auto report = actors::force_configuration(store, c.replica_id, keep.front().second, keep);
  if (!report) {
    err << "bastion promote: refused: "
        << actors::render_replicator_error(report.error().code(), report.error().category(),
                                           report.error().context())
        << "\n";
    return 1;
  }
  out << report->describe() << "Start the node of site '" << cfg.node.site
      << "' again: it leads alone. A fenced site comes back only through `bastion rejoin` (never "
         "with its old journal), then `bastion add-site`.\n";
  return 0;
}

}  // namespace bastion::cli
