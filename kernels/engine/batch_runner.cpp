#include "kernels/engine/batch_runner.hpp"

#include <algorithm>

namespace bastion::kernels {

struct batch_runner::sequence_state {
  runner_request req;
  sequence_id seq = 0;
  std::int64_t prefilled = 0;  // prompt tokens already in the KV cache
  std::int32_t pending = -1;   // the sampled token the next step feeds
  std::int64_t reserved_blocks = 0;
  bool done = false;
  std::unique_ptr<sampler> pick;
  std::vector<std::int32_t> history;  // prompt + generated, for the repetition penalty
  // Device backends with a penalty: the distinct tokens of history[0, distinct_upto), ascending
  // (what backend::repetition_penalty_f32 takes), grown as the history grows.
  std::vector<std::int32_t> distinct;
  std::size_t distinct_upto = 0;
  std::vector<std::int32_t> generated;
  std::size_t emitted_bytes = 0;  // text already handed out
  std::string text;               // detokenized generated text
};

namespace {

// Bytes at the end of `s` that form an incomplete UTF-8 sequence (0 when it ends cleanly).
std::size_t incomplete_utf8_tail(const std::string& s) {
  const std::size_t n = s.size();
  for (std::size_t back = 1; back <= 4 && back <= n; ++back) {
    const auto c = static_cast<unsigned char>(s[n - back]);
    if ((c & 0xc0) == 0x80) continue;  // continuation byte: keep looking for the lead
    std::size_t need = 1;
    if ((c & 0xe0) == 0xc0)
      need = 2;
    else if ((c & 0xf0) == 0xe0)
      need = 3;
    else if ((c & 0xf8) == 0xf0)
      need = 4;
    return need > back ? back : 0;
  }
  return 0;
}

// Length of the longest suffix of `text` that is a proper prefix of some stop string.
std::size_t stop_prefix_tail(const std::string& text, const std::vector<std::string>& stops) {
  std::size_t hold = 0;
  for (const auto& stop : stops) {
    const std::size_t max = std::min(stop.size() - 1, text.size());
    for (std::size_t len = max; len > hold; --len)
      if (text.compare(text.size() - len, len, stop, 0, len) == 0) {
        hold = len;
        break;
      }
  }
  return hold;
}

}  // namespace

batch_runner::batch_runner(step_engine& engine, runner_options options)
    : engine_(engine),
      options_(std::move(options)),
      capacity_blocks_(engine.kv_blocks_free()),
      next_seq_(options_.first_sequence_id) {}

batch_runner::~batch_runner() {
  for (auto& s : active_) engine_.release_sequence(s->seq);
}

status batch_runner::add(runner_request r) {
  const model_config& c = engine_.config();
  if (auto s = r.sampling.validate(); !s) return s;
  if (r.prompt.empty()) return {status_code::invalid_argument, "request: empty prompt"};
  for (auto t : r.prompt)
    if (t < 0 || t >= c.vocab)
      return {status_code::invalid_argument, "request: prompt token " + std::to_string(t) +
                                                 " is outside the vocabulary of " +
                                                 std::to_string(c.vocab)};
  if (r.max_tokens < 1) return {status_code::invalid_argument, "request: max_tokens must be >= 1"};
  if (static_cast<std::int64_t>(r.prompt.size()) >= c.context)
    return {status_code::invalid_argument, "request: prompt of " + std::to_string(r.prompt.size()) +
                                               " tokens leaves no room in the model's context of " +
                                               std::to_string(c.context)};
  for (const auto& stop : r.stop_strings)
    if (stop.empty()) return {status_code::invalid_argument, "request: empty stop string"};
  if (!r.stop_strings.empty() && !options_.detokenize)
    return {status_code::invalid_argument, "request: stop strings need a detokenizer"};
  if (live_.count(r.id))
    return {status_code::invalid_argument,
            "request " + std::to_string(r.id) + " is already running"};
  if (static_cast<std::int64_t>(waiting_.size()) >= options_.waiting_max)
    return {status_code::resource_exhausted, "the runner's queue is full"};
  const std::int64_t tokens =
      std::min<std::int64_t>(static_cast<std::int64_t>(r.prompt.size()) + r.max_tokens, c.context);
  const std::int64_t blocks = engine_.kv_blocks_for(tokens);
  if (blocks > capacity_blocks_)
    return {status_code::resource_exhausted, "request needs " + std::to_string(blocks) +
                                                 " KV blocks; the runner has " +
                                                 std::to_string(capacity_blocks_) + " in all"};
  live_[r.id] = true;
  waiting_.push_back(std::move(r));
  return status::ok();
}

void batch_runner::admit() {
  const model_config& c = engine_.config();
  while (!waiting_.empty() &&
         static_cast<std::int64_t>(active_.size()) < options_.batch_sequences_max) {
    auto& r = waiting_.front();
    const std::int64_t tokens = std::min<std::int64_t>(
        static_cast<std::int64_t>(r.prompt.size()) + r.max_tokens, c.context);
    // Reserving prompt + max_tokens up front means a running sequence never finds the cache
    // full mid-generation; a request waits here until enough blocks are free.
    const std::int64_t blocks = engine_.kv_blocks_for(tokens);
    if (reserved_blocks_ + blocks > capacity_blocks_) break;
    auto s = std::make_unique<sequence_state>();
    s->seq = next_seq_++;
    if (!engine_.add_sequence(s->seq)) break;  // at sequences_max: wait for one to finish
    s->reserved_blocks = blocks;
    reserved_blocks_ += blocks;
    s->pick = std::make_unique<sampler>(r.sampling);
    s->history = r.prompt;
    s->req = std::move(r);
    waiting_.pop_front();
    active_.push_back(std::move(s));
  }
}

void batch_runner::finish(sequence_state& s, finish_reason why, std::vector<runner_event>& events,
                          status error) {
  runner_event e;
  e.what = runner_event::kind::finished;
  e.id = s.req.id;
  e.reason = why;
  e.error = std::move(error);
  e.prompt_tokens = static_cast<std::int64_t>(s.req.prompt.size());
  e.completion_tokens = static_cast<std::int64_t>(s.generated.size());
  if (s.emitted_bytes < s.text.size()) e.text = s.text.substr(s.emitted_bytes);
  events.push_back(std::move(e));
  engine_.release_sequence(s.seq);
  reserved_blocks_ -= s.reserved_blocks;
  live_.erase(s.req.id);
  s.done = true;
}

void batch_runner::emit_text(sequence_state& s, std::int32_t token,
                             std::vector<runner_event>& events) {
  runner_event e;
  e.id = s.req.id;
  e.token = token;
  if (options_.detokenize) {
    const std::size_t hold =
        std::max(incomplete_utf8_tail(s.text), stop_prefix_tail(s.text, s.req.stop_strings));
    const std::size_t final_bytes = s.text.size() - hold;
    if (final_bytes > s.emitted_bytes) {
      e.text = s.text.substr(s.emitted_bytes, final_bytes - s.emitted_bytes);
      s.emitted_bytes = final_bytes;
    }
  }
  events.push_back(std::move(e));
}

bool batch_runner::cancel(std::uint64_t id) {
  std::vector<std::int32_t> ignored;
  return preempt(id, ignored);
}

bool batch_runner::preempt(std::uint64_t id, std::vector<std::int32_t>& generated) {
  if (!live_.count(id)) return false;
  for (auto it = waiting_.begin(); it != waiting_.end(); ++it)
    if (it->id == id) {
      waiting_.erase(it);
      live_.erase(id);
      generated.clear();
      return true;
    }
  for (auto it = active_.begin(); it != active_.end(); ++it)
    if ((*it)->req.id == id) {
      generated = (*it)->generated;
      engine_.release_sequence((*it)->seq);
      reserved_blocks_ -= (*it)->reserved_blocks;
      live_.erase(id);
      active_.erase(it);
      return true;
    }
  return false;
}

status batch_runner::penalise_on_device(const std::vector<sequence_state*>& picks,
                                        const step_output& out, float* logits,
                                        bool& penalised_greedy) {
  penalised_greedy = false;
  const std::int64_t rows = out.row_begin.back();
  penalties_.assign(static_cast<std::size_t>(rows), 1.0f);
  penalty_begin_.assign(static_cast<std::size_t>(rows) + 1, 0);
  penalty_tokens_.clear();
  std::int64_t penalised = 0;
  for (std::size_t b = 0; b < picks.size(); ++b) {
    sequence_state* s = picks[b];
    if (!s || !s->pick->penalises()) continue;
    for (; s->distinct_upto < s->history.size(); ++s->distinct_upto) {
      const std::int32_t t = s->history[s->distinct_upto];
      const auto at = std::lower_bound(s->distinct.begin(), s->distinct.end(), t);
      if (at == s->distinct.end() || *at != t) s->distinct.insert(at, t);
    }
    const auto row = static_cast<std::size_t>(out.row_begin[b + 1] - 1);
    penalties_[row] = s->pick->repetition_penalty();
    penalty_tokens_.insert(penalty_tokens_.end(), s->distinct.begin(), s->distinct.end());
    penalty_begin_[row + 1] = static_cast<std::int32_t>(penalty_tokens_.size());
    penalised_greedy = penalised_greedy || s->pick->is_greedy();
    ++penalised;
  }
  if (penalised == 0) return status::ok();
  // Rows come in entry order, so a row without tokens ends where the row before it ends.
  for (std::size_t r = 1; r < penalty_begin_.size(); ++r)
    penalty_begin_[r] = std::max(penalty_begin_[r], penalty_begin_[r - 1]);
  if (auto st = engine_.logits_backend().repetition_penalty_f32(
          logits, rows, out.vocab, penalties_.data(), penalty_begin_.data(),
          penalty_tokens_.data());
      !st)
    return st;
  stats_.penalised_rows += penalised;
  return status::ok();
}

status batch_runner::pick_on_device(const std::vector<sequence_state*>& picks,
                                    const step_output& out, std::vector<std::int32_t>& next) {
  backend& be = engine_.logits_backend();
  // The step's logits are the engine's scratch in backend memory until its next step, and
  // nothing reads them after the picks below: the penalty may rewrite them in place.
  float* device_logits = engine_.backend_logits();
  const std::int64_t rows = out.row_begin.back(), vocab = out.vocab;
  // From here on every row's logits carry its penalty: greedy rows are their argmax, sampled
  // rows are drawn from their candidates (the same tokens the host's sample() gives).
  bool penalised_greedy = false;
  if (auto st = penalise_on_device(picks, out, device_logits, penalised_greedy); !st) return st;
  if (penalised_greedy) {
    // The step's greedy tokens are the unpenalised logits' argmax: take it again.
    if (auto st = penalised_greedy_dev_.reserve(&be, static_cast<std::size_t>(rows) * 4); !st)
      return st;
    penalised_greedy_.resize(static_cast<std::size_t>(rows));
    if (auto st = be.argmax_rows_f32(device_logits, rows, vocab,
                                     penalised_greedy_dev_.as<std::int32_t>());
        !st)
      return st;
    if (auto st = be.download(penalised_greedy_.data(), penalised_greedy_dev_.data(),
                              static_cast<std::size_t>(rows) * sizeof(std::int32_t));
        !st)
      return st;
  }
  temperatures_.assign(static_cast<std::size_t>(rows), 0.0f);
  bool any_candidates = false;
  for (std::size_t b = 0; b < picks.size(); ++b) {
    if (!picks[b] || !picks[b]->pick->draws_from_candidates(logits_kind::penalised)) continue;
    temperatures_[static_cast<std::size_t>(out.row_begin[b + 1] - 1)] =
        picks[b]->req.sampling.temperature;
    any_candidates = true;
  }
  if (any_candidates) {
    const auto cap = static_cast<std::size_t>(candidates_per_row);
    summaries_.resize(static_cast<std::size_t>(rows));
    candidate_ids_.resize(static_cast<std::size_t>(rows) * cap);
    candidate_logits_.resize(static_cast<std::size_t>(rows) * cap);
    if (auto st = be.sampling_candidates_f32(
            device_logits, rows, vocab, temperatures_.data(), sampler::candidate_window,
            candidates_per_row, summaries_.data(), candidate_ids_.data(), candidate_logits_.data());
        !st)
      return st;
  }
  for (std::size_t b = 0; b < picks.size(); ++b) {
    sequence_state* s = picks[b];
    if (!s) continue;
    const auto row = static_cast<std::size_t>(out.row_begin[b + 1] - 1);
    if (s->pick->is_greedy()) {
      next[b] = s->pick->penalises() ? penalised_greedy_[row] : out.greedy_tokens[row];
      continue;
    }
    const auto at = row * static_cast<std::size_t>(candidates_per_row);
    if (auto token = s->pick->sample_from(summaries_[row], candidate_ids_.data() + at,
                                          candidate_logits_.data() + at, candidates_per_row,
                                          logits_kind::penalised)) {
      next[b] = *token;
      ++stats_.candidate_draws;
      continue;
    }
    row_.resize(static_cast<std::size_t>(vocab));
    if (auto st = be.download(row_.data(), device_logits + static_cast<std::int64_t>(row) * vocab,
                              static_cast<std::size_t>(vocab) * sizeof(float));
        !st)
      return st;
    next[b] = s->pick->sample(row_.data(), vocab, s->history, logits_kind::penalised);
    ++stats_.rows_downloaded;
  }
  return status::ok();
}

status batch_runner::step(std::vector<runner_event>& events, std::int64_t* sequences_in_step) {
  admit();
  if (sequences_in_step) *sequences_in_step = 0;
  if (active_.empty()) return status::ok();
  const model_config& c = engine_.config();

  // Every decoding sequence's pending token first, then prefill chunks in what is left.
  std::vector<step_entry> batch;
  std::vector<sequence_state*> owner;
  std::int64_t budget = options_.step_tokens_max;
  for (auto& s : active_) {
    if (budget <= 0) break;
    if (s->pending < 0) continue;
    batch.push_back({s->seq, {s->pending}, false});
    owner.push_back(s.get());
    --budget;
    ++stats_.decode_tokens;
  }
  for (auto& s : active_) {
    if (budget <= 0) break;
    if (s->pending >= 0) continue;
    const auto& prompt = s->req.prompt;
    const std::int64_t n = std::min({static_cast<std::int64_t>(prompt.size()) - s->prefilled,
                                     options_.prefill_chunk_max, budget});
    step_entry e{s->seq, {}, false};
    e.tokens.assign(prompt.begin() + s->prefilled, prompt.begin() + s->prefilled + n);
    batch.push_back(std::move(e));
    owner.push_back(s.get());
    budget -= n;
    stats_.prefill_tokens += n;
  }
  // The rows that pick a token (an entry that ends its prompt or decodes); a host backend's
  // logits are on the host anyway, so only a plain greedy batch can skip writing them out.
  std::vector<sequence_state*> picks(batch.size(), nullptr);
  bool all_greedy = true;
  for (std::size_t b = 0; b < batch.size(); ++b) {
    sequence_state& s = *owner[b];
    const auto after = s.prefilled + static_cast<std::int64_t>(batch[b].tokens.size());
    if (s.pending < 0 && after < static_cast<std::int64_t>(s.req.prompt.size())) continue;
    picks[b] = &s;
    all_greedy = all_greedy && s.pick->is_plain_greedy();
  }
  // A device backend sends back greedy tokens always, and candidates or rows only for the
  // rows that sample or carry a repetition penalty (pick_on_device, which applies the penalty
  // on the device); its logits stay where they were computed.
  const bool on_device = !engine_.logits_backend().uses_host_memory();
  const step_results want =
      on_device || all_greedy ? step_results::greedy_tokens : step_results::logits;
  step_output logits;
  if (auto st = engine_.step(batch, logits, want); !st) {
    for (auto& s : active_) finish(*s, finish_reason::error, events, st);
    active_.clear();
    return st;
  }
  ++stats_.steps;
  if (all_greedy) ++stats_.greedy_steps;
  stats_.last_step_sequences = static_cast<std::int64_t>(batch.size());
  stats_.max_step_sequences = std::max(stats_.max_step_sequences, stats_.last_step_sequences);
  if (sequences_in_step) *sequences_in_step = stats_.last_step_sequences;

  std::vector<std::int32_t> picked(batch.size(), -1);
  if (on_device && !all_greedy) {
    if (auto st = pick_on_device(picks, logits, picked); !st) {
      for (auto& s : active_) finish(*s, finish_reason::error, events, st);
      active_.clear();
      return st;
    }
  }
  for (std::size_t b = 0; b < batch.size(); ++b) {
    sequence_state& s = *owner[b];
    if (s.pending < 0) s.prefilled += static_cast<std::int64_t>(batch[b].tokens.size());
    if (!picks[b]) continue;
    const auto last_row = static_cast<std::size_t>(logits.row_begin[b + 1] - 1);
    const std::int32_t next = all_greedy ? logits.greedy_tokens[last_row]
                              : on_device
                                  ? picked[b]
                                  : s.pick->sample(logits.last_logits(b), logits.vocab, s.history);
    const auto& eog = options_.end_of_generation_ids;
    if (std::find(eog.begin(), eog.end(), next) != eog.end()) {
      finish(s, finish_reason::end_of_generation, events);
      continue;
    }
    s.generated.push_back(next);
    s.history.push_back(next);
    s.pending = next;
    if (options_.detokenize) {
      s.text = options_.detokenize(s.generated);
      std::size_t cut = std::string::npos;
      for (const auto& stop : s.req.stop_strings) cut = std::min(cut, s.text.find(stop));
      if (cut != std::string::npos) {
        s.text.resize(cut);
        // Text before the stop string that was held back goes out with the finished event.
        events.push_back({runner_event::kind::token, s.req.id, next, {}, {}, {}, 0, 0});
        finish(s, finish_reason::stop_string, events);
        continue;
      }
    }
    emit_text(s, next, events);
    if (static_cast<std::int64_t>(s.generated.size()) >= s.req.max_tokens) {
      finish(s, finish_reason::max_tokens, events);
    } else if (engine_.sequence_length(s.seq) + 1 > c.context) {
      finish(s, finish_reason::context_full, events);
    }
  }
  active_.erase(std::remove_if(active_.begin(), active_.end(),
                               [](const std::unique_ptr<sequence_state>& s) { return s->done; }),
                active_.end());
  return status::ok();
}

}  // namespace bastion::kernels
