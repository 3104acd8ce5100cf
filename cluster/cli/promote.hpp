#pragma once
// `bastion promote`: forced promotion of this site when no majority of sites is left
// (DESIGN.md §5). The operator stops this site's node, attests that the lost sites are fenced
// (powered off or cut off so they can never form the old majority again), confirms, and the
// journal gets a configuration of the survivors only (actors/replicator_recovery.hpp). Then
// the node is started again and leads alone.

#include "runtime/config/node_config.hpp"

#include <iosfwd>
#include <string>

namespace bastion::cli {

/// `fenced_csv`: the lost sites, as "prod,dr-local". Without `assume_yes` the operator must
/// type the confirmation line on `in`. Returns 0 when the configuration was written.
int promote(const config::node_config& cfg, const std::string& fenced_csv, bool assume_yes,
            std::istream& in, std::ostream& out, std::ostream& err);

}  // namespace bastion::cli
