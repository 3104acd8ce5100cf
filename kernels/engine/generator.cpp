#include "kernels/engine/generator.hpp"

#include <algorithm>
#include <deque>
#include <memory>

namespace bastion::kernels {
namespace {

struct running {
  std::size_t index = 0;  // into requests / results
  sequence_id seq = 0;
  std::int64_t prefilled = 0;  // prompt tokens already in the KV cache
  std::int32_t pending = -1;   // the sampled token the next step feeds, once prefill is done
  std::int64_t reserved_blocks = 0;
  bool done = false;
  std::unique_ptr<sampler> pick;
  std::vector<std::int32_t> history;  // prompt + generated, for the repetition penalty
};

status check_request(const generation_request& r, const generator_options& o,
                     const model_config& c) {
  if (auto s = r.sampling.validate(); !s) return s;
  if (r.prompt.empty()) return {status_code::invalid_argument, "request: empty prompt"};
  for (auto t : r.prompt)
    if (t < 0 || t >= c.vocab)
      return {status_code::invalid_argument,
              "request: prompt token " + std::to_string(t) + " outside the vocabulary"};
  if (r.max_tokens < 0) return {status_code::invalid_argument, "request: negative max_tokens"};
  if (static_cast<std::int64_t>(r.prompt.size()) >= c.context)
    return {status_code::invalid_argument, "request: prompt of " + std::to_string(r.prompt.size()) +
                                               " tokens leaves no room in the context of " +
                                               std::to_string(c.context)};
  if (!r.stop_strings.empty() && !o.detokenize)
    return {status_code::invalid_argument, "request: stop strings need a detokenizer"};
  return status::ok();
}

}  // namespace

status generate(decoder& dec, const std::vector<generation_request>& requests,
                const generator_options& o, std::vector<generation_result>& out,
                generation_stats* stats) {
  if (o.batch_sequences_max <= 0 || o.step_tokens_max <= 0 || o.prefill_chunk_max <= 0)
    return {status_code::invalid_argument, "generate: batch, step and chunk bounds must be > 0"};
  const model_config& c = dec.model_ref().config;
  kv_cache& kv = dec.cache();
  out.assign(requests.size(), generation_result{});
  generation_stats local;
  generation_stats& st = stats ? *stats : local;

  std::deque<std::size_t> waiting;
  for (std::size_t i = 0; i < requests.size(); ++i) {
    if (auto s = check_request(requests[i], o, c); !s) {
      out[i].error = s;
      continue;
    }
    if (requests[i].max_tokens == 0) {
      out[i].reason = finish_reason::max_tokens;
      continue;
    }
    waiting.push_back(i);
  }
  std::vector<running> active;
  // Blocks promised to running sequences, out of those free when the run starts (the cache
  // may hold other sequences; they keep theirs).
  std::int64_t reserved = 0;
  const std::int64_t capacity = kv.blocks_free();

  auto finish = [&](running& r, finish_reason why) {
    out[r.index].reason = why;
    kv.release(r.seq);
    reserved -= r.reserved_blocks;
    r.done = true;
  };

  while (!waiting.empty() || !active.empty()) {
    // Admit in order while a slot and the blocks for the whole request are free. Reserving
    // prompt + max_tokens up front means a running sequence never finds the cache full.
    while (!waiting.empty() && static_cast<std::int64_t>(active.size()) < o.batch_sequences_max) {
      const std::size_t i = waiting.front();
      const auto& req = requests[i];
      const std::int64_t tokens_max = std::min<std::int64_t>(
          static_cast<std::int64_t>(req.prompt.size()) + req.max_tokens, c.context);
      const std::int64_t blocks = kv.blocks_for(tokens_max);
      if (blocks > capacity) {
        out[i].error = {status_code::resource_exhausted, "request needs " + std::to_string(blocks) +
                                                             " KV blocks, the cache has " +
                                                             std::to_string(capacity) + " free"};
        waiting.pop_front();
        continue;
      }
      if (reserved + blocks > capacity) break;  // wait for a running one to finish
      running r;
      r.index = i;
      r.seq = o.first_sequence_id + i;
      if (auto s = kv.add_sequence(r.seq); !s) {
        out[i].error = s;
        waiting.pop_front();
        continue;
      }
      r.reserved_blocks = blocks;
      reserved += blocks;
      r.pick = std::make_unique<sampler>(req.sampling);
      r.history = req.prompt;
      active.push_back(std::move(r));
      waiting.pop_front();
    }
    if (active.empty()) continue;

    // Build the step: every decoding sequence's pending token, then prefill chunks in the
    // budget that is left. A sequence whose chunk does not fit waits for the next step.
    std::vector<step_entry> batch;
    std::vector<std::size_t> owner;  // batch entry -> index in active
    std::int64_t budget = o.step_tokens_max;
    for (std::size_t a = 0; a < active.size() && budget > 0; ++a) {
      auto& r = active[a];
      if (r.pending < 0) continue;
      batch.push_back({r.seq, {r.pending}, false});
      owner.push_back(a);
      --budget;
      ++st.decode_tokens;
    }
    for (std::size_t a = 0; a < active.size() && budget > 0; ++a) {
      auto& r = active[a];
      if (r.pending >= 0) continue;
      const auto& prompt = requests[r.index].prompt;
      const std::int64_t n = std::min(
          {static_cast<std::int64_t>(prompt.size()) - r.prefilled, o.prefill_chunk_max, budget});
      step_entry e{r.seq, {}, false};
      e.tokens.assign(prompt.begin() + r.prefilled, prompt.begin() + r.prefilled + n);
      batch.push_back(std::move(e));
      owner.push_back(a);
      budget -= n;
      st.prefill_tokens += n;
    }
    step_output logits;
    if (auto s = dec.step(batch, logits); !s) {
      for (auto& r : active) {
        out[r.index].error = s;
        finish(r, finish_reason::error);
      }
      return s;
    }
    ++st.steps;

    for (std::size_t b = 0; b < batch.size(); ++b) {
      running& r = active[owner[b]];
      const auto& req = requests[r.index];
      if (r.pending < 0) {
        r.prefilled += static_cast<std::int64_t>(batch[b].tokens.size());
        if (r.prefilled < static_cast<std::int64_t>(req.prompt.size())) continue;  // more prompt
      }
      const std::int32_t next = r.pick->sample(logits.last_logits(b), logits.vocab, r.history);
      auto& res = out[r.index];
      if (std::find(o.end_of_generation_ids.begin(), o.end_of_generation_ids.end(), next) !=
          o.end_of_generation_ids.end()) {
        finish(r, finish_reason::end_of_generation);
        continue;
      }
      res.tokens.push_back(next);
      r.history.push_back(next);
      r.pending = next;
      if (o.detokenize) {
        res.text = o.detokenize(res.tokens);
        std::size_t cut = std::string::npos;
        for (const auto& stop : req.stop_strings)
          if (!stop.empty()) cut = std::min(cut, res.text.find(stop));
        if (cut != std::string::npos) {
          res.text.resize(cut);
          finish(r, finish_reason::stop_string);
          continue;
        }
      }
      if (static_cast<std::int64_t>(res.tokens.size()) >= req.max_tokens) {
        finish(r, finish_reason::max_tokens);
      } else if (kv.length(r.seq) + 1 > c.context) {
        finish(r, finish_reason::context_full);
      }
    }
    active.erase(
        std::remove_if(active.begin(), active.end(), [](const running& r) { return r.done; }),
        active.end());
  }
  return status::ok();
}

}  // namespace bastion::kernels
