#pragma once
// The sites a config names and what their admin endpoints say, for the `bastion` CLI's
// commands (status, switchover, fault, rejoin, add-site): one place that lists the sites, asks
// each for its status and finds the ready primary.

#include "cluster/cli/admin_client.hpp"
#include "runtime/config/node_config.hpp"

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <vector>

namespace bastion::cli {

struct site_address {
  std::string site;
  std::string http;  // host:port
};

/// This site first, then its [cluster.peers], as the config names them.
std::vector<site_address> sites_of(const config::node_config& cfg);

/// An admin answer for people: the error's message, else the result line, else the body.
std::string answer_text(const http_answer& a);

struct site_status {
  site_address where;
  std::optional<nlohmann::json> status;  // nullopt: down or not answering
  std::string error;
};

/// GET /admin/v1/status of every site, in order.
std::vector<site_status> ask_all(const std::vector<site_address>& sites, const std::string& key);

/// The site whose status says ready (the primary) among `all`; null when none does.
const site_status* ready_primary(const std::vector<site_status>& all);

}  // namespace bastion::cli
