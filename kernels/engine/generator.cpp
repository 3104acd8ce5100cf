#include "kernels/engine/generator.hpp"

#include "kernels/engine/batch_runner.hpp"

#include <algorithm>

namespace bastion::kernels {

// The whole-batch driver is a loop over batch_runner, so continuous batching has one
// implementation: requests are added up front, steps run until every one has finished.
status generate(decoder& dec, const std::vector<generation_request>& requests,
                const generator_options& o, std::vector<generation_result>& out,
                generation_stats* stats) {
  if (o.batch_sequences_max <= 0 || o.step_tokens_max <= 0 || o.prefill_chunk_max <= 0)
    return {status_code::invalid_argument, "generate: batch, step and chunk bounds must be > 0"};
  runner_options ro;
  ro.batch_sequences_max = o.batch_sequences_max;
  ro.step_tokens_max = o.step_tokens_max;
  ro.prefill_chunk_max = o.prefill_chunk_max;
  ro.waiting_max = static_cast<std::int64_t>(requests.size()) + 1;
  ro.end_of_generation_ids = o.end_of_generation_ids;
  ro.detokenize = o.detokenize;
  ro.first_sequence_id = o.first_sequence_id;
  batch_runner runner{dec, ro};

  out.assign(requests.size(), generation_result{});
  for (std::size_t i = 0; i < requests.size(); ++i) {
    const auto& r = requests[i];
    if (r.max_tokens == 0 && r.sampling.validate() && !r.prompt.empty()) {
      out[i].reason = finish_reason::max_tokens;  // nothing to generate
      continue;
    }
    runner_request rr{i, r.prompt, r.sampling, r.max_tokens, r.stop_strings};
    if (auto s = runner.add(std::move(rr)); !s) out[i].error = s;
  }
  std::vector<runner_event> events;
  status failure;
  while (!runner.idle()) {
    events.clear();
    failure = runner.step(events);
    for (auto& e : events) {
      auto& res = out[e.id];
      res.text += e.text;
      if (e.what == runner_event::kind::token) {
        res.tokens.push_back(e.token);
      } else {
        res.reason = e.reason;
        res.error = e.error;
      }
    }
    if (!failure) break;
  }
  if (stats) {
    stats->steps = runner.stats().steps;
    stats->prefill_tokens = runner.stats().prefill_tokens;
    stats->decode_tokens = runner.stats().decode_tokens;
  }
  return failure;
}

}  // namespace bastion::kernels
