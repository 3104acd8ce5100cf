#include "actors/replicator_errors.hpp"

#include <caf/make_message.hpp>
#include <caf/message.hpp>

namespace bastion::actors {

const char* to_string(replicator_errc code) noexcept {
  switch (code) {
    case replicator_errc::not_leader:
      return "not_leader";
    case replicator_errc::lost_leadership:
      return "lost_leadership";
    case replicator_errc::overloaded:
      return "overloaded";
    case replicator_errc::record_too_large:
      return "record_too_large";
    case replicator_errc::bad_target:
      return "bad_target";
    case replicator_errc::transfer_failed:
      return "transfer_failed";
    case replicator_errc::storage_failed:
      return "storage_failed";
    case replicator_errc::shutdown:
      return "shutdown";
    case replicator_errc::raft_failed:
      return "raft_failed";
    case replicator_errc::bad_snapshot:
      return "bad_snapshot";
    case replicator_errc::frame_too_large:
      return "frame_too_large";
    case replicator_errc::bad_link_fault:
      return "bad_link_fault";
    case replicator_errc::recovery_refused:
      return "recovery_refused";
    case replicator_errc::membership_failed:
      return "membership_failed";
  }
  return "unknown_journal_error";
}

caf::error make_error(replicator_errc code) {
  return caf::error{static_cast<std::uint8_t>(code), replicator_category::value};
}

caf::error make_error(replicator_errc code, std::string detail) {
  return caf::error{static_cast<std::uint8_t>(code), replicator_category::value,
                    caf::make_message(std::move(detail))};
}

caf::error make_not_leader(std::string detail, std::uint64_t leader_id,
                           std::string leader_address) {
  return caf::error{static_cast<std::uint8_t>(replicator_errc::not_leader),
                    replicator_category::value,
                    caf::make_message(std::move(detail), leader_id, std::move(leader_address))};
}

std::optional<leader_hint> leader_of(const caf::error& err) {
  if (err.category() != replicator_category::value ||
      err.code() != static_cast<std::uint8_t>(replicator_errc::not_leader))
    return std::nullopt;
  const auto& ctx = err.context();
  if (!ctx.match_elements<std::string, std::uint64_t, std::string>()) return std::nullopt;
  leader_hint hint{ctx.get_as<std::uint64_t>(1), ctx.get_as<std::string>(2)};
  if (hint.id == 0) return std::nullopt;
  return hint;
}

std::string replicator_error_detail(const caf::error& err) {
  if (err.category() != replicator_category::value) return {};
  const auto& ctx = err.context();
  if (ctx.empty() || !ctx.match_element<std::string>(0)) return {};
  return ctx.get_as<std::string>(0);
}

std::string render_replicator_error(std::uint8_t code, caf::atom_value, const caf::message& ctx) {
  std::string out = "replicator.";
  out += to_string(static_cast<replicator_errc>(code));
  if (!ctx.empty() && ctx.match_element<std::string>(0)) {
    out += ": ";
    out += ctx.get_as<std::string>(0);
  }
  if (ctx.match_elements<std::string, std::uint64_t, std::string>()) {
    const auto id = ctx.get_as<std::uint64_t>(1);
    if (id != 0)
      out += " (leader " + std::to_string(id) + " at " + ctx.get_as<std::string>(2) + ")";
  }
  return out;
}

}  // namespace bastion::actors
