// Reading /metrics back for `bastion health`: samples with and without labels, escaped label
// values, the special values and timestamps the format allows; every malformed line is left
// out and named with its line number, without losing the good lines around it.

#include "cluster/cli/prometheus_text.hpp"

#include <catch2/catch.hpp>

#include <cmath>

using bastion::cli::parse_prometheus_text;

TEST_CASE("samples are read with their labels, values and escapes") {
  const auto m = parse_prometheus_text(
      "# HELP bastion_worker_healthy 1 when the worker's backend is healthy\n"
      "# TYPE bastion_worker_healthy gauge\n"
      "bastion_worker_healthy{worker=\"cpu-0\"} 1\n"
      "\n"
      "bastion_up 1 1700000000000\n"
      "bastion_gpu_info{device=\"0\",name=\"A \\\"quoted\\\" \\\\ name\\nline\",} 1\r\n"
      "  bastion_gpu_temperature_celsius{device=\"0\"} NaN\n"
      "bastion_x{a=\"1\"} +Inf\n"
      "bastion_y -Inf\n"
      "bastion_z 1.5e3\n");
  CHECK(m.errors.empty());
  REQUIRE(m.samples.size() == 7);
  CHECK(m.samples[0].name == "bastion_worker_healthy");
  CHECK(m.samples[0].label("worker") == "cpu-0");
  CHECK(m.samples[0].label("absent").empty());
  CHECK(m.samples[0].value == 1.0);
  CHECK(m.samples[1].name == "bastion_up");
  CHECK(m.samples[1].labels.empty());
  CHECK(m.samples[2].label("name") == "A \"quoted\" \\ name\nline");
  CHECK(m.samples[2].label("device") == "0");
  CHECK(std::isnan(m.samples[3].value));
  CHECK(std::isinf(m.samples[4].value));
  CHECK(m.samples[4].value > 0);
  CHECK(m.samples[5].value < 0);
  CHECK(m.samples[6].value == 1500.0);
}

TEST_CASE("malformed lines are named and left out, the rest is kept") {
  const auto m = parse_prometheus_text(
      "good_one 1\n"
      "{device=\"0\"} 1\n"                // 2: no name
      "bad_label{device=0} 1\n"           // 3: unquoted value
      "open_label{device=\"0} 1\n"        // 4: value never closed
      "no_value{device=\"0\"}\n"          // 5: nothing after the labels
      "bad_value 12abc\n"                 // 6: not a number
      "hex_value 0x10\n"                  // 7: strtod takes it, the format does not
      "nan_lower nan\n"                   // 8: only NaN is written so
      "bad_escape{a=\"\\t\"} 1\n"         // 9: \t is not an escape of the format
      "bad_ts 1 soon\n"                   // 10: not a timestamp
      "missing_sep{a=\"1\" b=\"2\"} 1\n"  // 11: no comma between labels
      "good_two{a=\"x\"} 2\n");
  REQUIRE(m.samples.size() == 2);
  CHECK(m.samples[0].name == "good_one");
  CHECK(m.samples[1].name == "good_two");
  REQUIRE(m.errors.size() == 10);
  CHECK_THAT(m.errors[0], Catch::StartsWith("line 2: a metric name was expected"));
  CHECK_THAT(m.errors[1], Catch::StartsWith("line 3: label device's value is not quoted"));
  CHECK_THAT(m.errors[2], Catch::StartsWith("line 4: label device's value is not closed"));
  CHECK_THAT(m.errors[3], Catch::StartsWith("line 5: a blank and a value were expected"));
  CHECK_THAT(m.errors[4], Catch::StartsWith("line 6: '12abc' is not a value"));
  CHECK_THAT(m.errors[5], Catch::StartsWith("line 7: '0x10' is not a value"));
  CHECK_THAT(m.errors[6], Catch::StartsWith("line 8: 'nan' is not a value"));
  CHECK_THAT(m.errors[7], Catch::StartsWith("line 9: label a's value has an unknown escape"));
  CHECK_THAT(m.errors[8], Catch::StartsWith("line 10: 'soon' after the value"));
  CHECK_THAT(m.errors[9], Catch::StartsWith("line 11: ',' or '}' was expected"));
}

TEST_CASE("hostile input ends without a crash or a sample") {
  std::string binary(4096, '\0');
  for (std::size_t i = 0; i < binary.size(); ++i) binary[i] = static_cast<char>(i * 37 % 256);
  const auto noise = parse_prometheus_text(binary);
  CHECK(noise.samples.empty());
  CHECK(noise.errors.size() == 17);  // its 16 newlines make 17 lines, none blank or a comment
  const auto cut = parse_prometheus_text("x{a=\"\\");
  CHECK(cut.samples.empty());
  REQUIRE(cut.errors.size() == 1);
  CHECK(parse_prometheus_text("").samples.empty());
  CHECK(parse_prometheus_text("# only a comment").errors.empty());
}
