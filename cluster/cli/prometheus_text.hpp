#pragma once
// Reading a node's /metrics back (Prometheus text exposition format 0.0.4), for `bastion
// health`, which prints the same figures as a table for a person (DESIGN.md §7). Lines are
//   name{label="value",...} value [timestamp]
// with `#` comments (HELP, TYPE) and blank lines between them; label values escape \\, \" and
// \n; values are Go-style floats, NaN, +Inf and -Inf among them.
//
// Lenient by line: a line that is not a sample is left out and named in `errors` (line number
// and why), so one odd line from a newer node costs one figure, not the whole report.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace bastion::cli {

struct metric_sample {
  std::string name;
  std::vector<std::pair<std::string, std::string>> labels;  // in the order written
  double value = 0.0;

  /// The label's value; empty when the sample has no such label.
  std::string label(std::string_view key) const;
};

struct parsed_metrics {
  std::vector<metric_sample> samples;
  std::vector<std::string> errors;  // "line 12: <why>"
};

parsed_metrics parse_prometheus_text(std::string_view text);

/// A value as the format writes it (a sample's value, a bucket's `le`): a decimal float, NaN,
/// +Inf or -Inf; nothing for anything else (hex floats, "nan", trailing text).
std::optional<double> parse_sample_value(std::string_view text);

}  // namespace bastion::cli
