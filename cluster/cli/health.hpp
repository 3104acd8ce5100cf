#pragma once
// `bastion health`: asks each site's node for /healthz, /readyz and /metrics (no admin key:
// these are the endpoints load balancers and Prometheus read) and prints them for a person,
// or as JSON lines for a script (cluster/cli/health_view.hpp).

#include "cluster/cli/sites.hpp"

#include <ostream>
#include <vector>

namespace bastion::cli {

/// Prints every site's health; returns 0 when all are well (all_well), 1 otherwise.
int health(const std::vector<site_address>& sites, bool as_json, std::ostream& out);

}  // namespace bastion::cli
