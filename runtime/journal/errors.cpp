#include "runtime/journal/errors.hpp"

#include <caf/actor_system_config.hpp>
#include <caf/make_message.hpp>
#include <caf/message.hpp>

#include <cerrno>
#include <system_error>

namespace bastion::journal {

const char* to_string(journal_errc code) noexcept {
  switch (code) {
    case journal_errc::io_error:
      return "io_error";
    case journal_errc::no_space:
      return "no_space";
    case journal_errc::corrupt_record:
      return "corrupt_record";
    case journal_errc::corrupt_file:
      return "corrupt_file";
    case journal_errc::journal_full:
      return "journal_full";
    case journal_errc::queue_full:
      return "queue_full";
    case journal_errc::record_too_large:
      return "record_too_large";
    case journal_errc::non_contiguous:
      return "non_contiguous";
    case journal_errc::closed:
      return "closed";
    case journal_errc::store_failed:
      return "store_failed";
    case journal_errc::invalid_options:
      return "invalid_options";
    case journal_errc::locked:
      return "locked";
  }
  return "unknown_journal_error";
}

caf::error make_error(journal_errc code) {
  return caf::error{static_cast<std::uint8_t>(code), journal_category::value};
}

caf::error make_error(journal_errc code, std::string detail) {
  return caf::error{static_cast<std::uint8_t>(code), journal_category::value,
                    caf::make_message(std::move(detail))};
}

caf::error make_io_error(int errno_value, const std::string& what) {
  const bool full = errno_value == ENOSPC || errno_value == EDQUOT;
  std::string detail = what;
  detail += ": ";
  detail += std::error_code(errno_value, std::generic_category()).message();
  return make_error(full ? journal_errc::no_space : journal_errc::io_error, std::move(detail));
}

journal_errc journal_code(const caf::error& err) noexcept {
  if (!err || err.category() != journal_category::value) return journal_errc{};
  return static_cast<journal_errc>(err.code());
}

std::string error_detail(const caf::error& err) {
  if (!err || err.category() != journal_category::value) return {};
  const auto& ctx = err.context();
  return ctx.match_elements<std::string>() ? ctx.get_as<std::string>(0) : std::string{};
}

std::string render_journal_error(std::uint8_t code, caf::atom_value, const caf::message& ctx) {
  std::string out = "journal.";
  out += to_string(static_cast<journal_errc>(code));
  if (ctx.match_elements<std::string>()) {
    out += ": ";
    out += ctx.get_as<std::string>(0);
  }
  return out;
}

void announce_journal_errors(caf::actor_system_config& cfg) {
  cfg.add_error_category(journal_category::value, render_journal_error);
}

}  // namespace bastion::journal
