#pragma once
// The way back for a site fenced by a forced promotion (DESIGN.md §5, issue 7):
//
//   1. bastion rejoin   --config prod.toml [--yes]        on prod, its node stopped
//   2. start prod's node                                  it waits, holding no configuration
//   3. bastion add-site --config prod.toml --site prod    the leader catches it up, then it votes
//
// Then the preference rule hands leadership back to prod once it has caught up (failback),
// and `bastion switchover` moves it anywhere else. Repeat for dr-local.

#include "runtime/config/node_config.hpp"

#include <iosfwd>
#include <string>

namespace bastion::cli {

/// Step 1, offline: refuses while this site's node answers, when no other site is the ready
/// primary, or when the primary still counts this site as a voter (then its journal is valid
/// and it should just be started). Otherwise, after the confirmation line (unless
/// `assume_yes`), moves the journal aside and leaves an empty one with the join marker
/// (actors/replicator_rejoin.hpp). Returns 0 when prepared.
int rejoin(const config::node_config& cfg, const std::string& key, bool assume_yes,
           std::istream& in, std::ostream& out, std::ostream& err);

/// Step 3: asks the ready primary to make `site` a voter and waits (at most `wait_s`) until
/// the primary lists it as a caught-up voting peer. Returns 0 then.
int add_site(const config::node_config& cfg, const std::string& key, const std::string& site,
             int wait_s, std::ostream& out, std::ostream& err);

}  // namespace bastion::cli
