// The sampler: greedy is argmax; seeds repeat; top-k = 1 and a tiny top-p reduce to greedy;
// top-k and top-p never pick outside their set; temperature sharpens or flattens the
// distribution; repetition penalty steers away from earlier tokens, and its host definition
// (what a device backend applies) is the sampler's rule, so penalised logits sample the same;
// bad parameters refused;
// the selection-based draw picks the token a full sort of the vocabulary would; drawing from a
// backend's candidates picks what the whole row picks (top-k and top-p past the sure candidates
// included) or asks for the row; NaN and infinite logits neither crash it nor get picked over
// real ones.

#include "kernels/engine/sampler.hpp"
#include "tests/kernels/full_sort_sampler.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <random>

using namespace bastion::kernels;

namespace {

sampling_params params(float temperature, std::int32_t top_k, float top_p, std::uint64_t seed) {
  sampling_params p;
  p.temperature = temperature;
  p.top_k = top_k;
  p.top_p = top_p;
  p.seed = seed;
  return p;
}

std::vector<float> random_logits(std::size_t n, std::uint32_t seed) {
  std::mt19937 rng{seed};
  std::normal_distribution<float> dist{0.0f, 2.0f};
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

std::int32_t argmax(const std::vector<float>& v) {
  return static_cast<std::int32_t>(std::max_element(v.begin(), v.end()) - v.begin());
}

std::map<std::int32_t, int> histogram(sampling_params p, const std::vector<float>& logits, int n) {
  sampler s{p};
  std::map<std::int32_t, int> h;
  for (int i = 0; i < n; ++i)
    ++h[s.sample(logits.data(), static_cast<std::int64_t>(logits.size()), {})];
  return h;
}

}  // namespace

TEST_CASE("the draw picks the token a full sort of the vocabulary picks") {
  // Rows of a real vocabulary's size with ties planted (rounded logits), across temperatures,
  // top-k and top-p, many draws each. Sums run in another order than the full sort's, so a
  // draw within ~1e-16 of a boundary could differ: none of these does.
  int draws = 0;
  for (std::uint32_t row_seed : {1u, 2u, 3u}) {
    auto logits = random_logits(49152, row_seed);
    if (row_seed == 3)
      for (auto& x : logits) x = std::round(x * 4.0f) / 4.0f;  // many equal logits
    for (float temperature : {0.3f, 1.0f, 1.7f})
      for (std::int32_t top_k : {0, 1, 40, 1000})
        for (float top_p : {1.0f, 0.9f, 0.3f}) {
          const auto p = params(temperature, top_k, top_p,
                                row_seed * 1000 + static_cast<std::uint64_t>(top_k));
          sampler fast{p};
          bastion::test::full_sort_sampler slow{p};
          for (int i = 0; i < 5; ++i, ++draws) {
            INFO("row " << row_seed << " T " << temperature << " top_k " << top_k << " top_p "
                        << top_p << " draw " << i);
            REQUIRE(fast.sample(logits.data(), 49152, {}) == slow.sample(logits));
          }
        }
  }
  CHECK(draws == 3 * 3 * 4 * 3 * 5);
}

namespace {

struct candidate_draws {
  int answered = 0;       // by sample_from, from the candidates
  int asked_for_row = 0;  // sample_from gave nothing: sample() on the whole row finished
};

// `draws` tokens from one row, twice with the same seed: sampler `from` sees the row as
// candidates first (backend::sampling_candidates_f32's host definition, `capacity` per row, as
// the batch runner gathers them) and the whole row only when it asks; sampler `whole` always
// sees the row. Every token must agree, which also shows both move the generator once per
// token.
candidate_draws draw_both_ways(const std::vector<float>& logits, const sampling_params& p,
                               std::int32_t capacity, int draws) {
  const auto vocab = static_cast<std::int64_t>(logits.size());
  sampler from{p}, whole{p};
  REQUIRE(from.draws_from_candidates());
  candidate_summary summary;
  std::vector<std::int32_t> ids(static_cast<std::size_t>(capacity));
  std::vector<float> kept(static_cast<std::size_t>(capacity));
  REQUIRE(host_sampling_candidates(logits.data(), 1, vocab, &p.temperature,
                                   sampler::candidate_window, capacity, &summary, ids.data(),
                                   kept.data()));
  candidate_draws out;
  for (int i = 0; i < draws; ++i) {
    INFO("T " << p.temperature << " top_k " << p.top_k << " top_p " << p.top_p << " capacity "
              << capacity << " seed " << p.seed << " draw " << i);
    auto token = from.sample_from(summary, ids.data(), kept.data(), capacity);
    if (token) {
      ++out.answered;
    } else {
      ++out.asked_for_row;
      token = from.sample(logits.data(), vocab, {});
    }
    REQUIRE(*token == whole.sample(logits.data(), vocab, {}));
  }
  return out;
}

}  // namespace

TEST_CASE("drawing from the candidates picks what the whole row picks, with the same draws") {
  int answered = 0, asked_for_row = 0;
  for (std::uint32_t row_seed : {5u, 6u, 7u}) {
    auto logits = random_logits(row_seed == 7 ? 50 : 49152, row_seed);
    if (row_seed == 6)
      for (auto& x : logits) x = std::round(x * 2.0f) / 2.0f;  // ties
    for (float temperature : {0.5f, 1.0f, 2.0f})
      for (std::int32_t top_k : {0, 1, 40})
        for (float top_p : {1.0f, 0.8f})
          for (std::int32_t capacity : {64, 4096}) {
            const auto p =
                params(temperature, top_k, top_p, row_seed + static_cast<std::uint64_t>(capacity));
            INFO("row " << row_seed);
            const auto n = draw_both_ways(logits, p, capacity, 8);
            answered += n.answered;
            asked_for_row += n.asked_for_row;
          }
  }
  CHECK(answered + asked_for_row == 3 * 3 * 3 * 2 * 2 * 8);
  CHECK(answered > 100);      // the candidates answer most draws
  CHECK(asked_for_row > 50);  // and the row is asked for: capacity short, flat rows, tails
}

namespace {

// A confident model's row, in scores (logit / temperature): a few tokens far ahead of a long
// tail, so that fewer than top-k tokens lie within the window of the best.
struct peaked_row {
  const char* what;
  std::size_t vocab;
  std::vector<float> head;   // the leaders' scores
  float tail_mean, tail_sd;  // the other tokens': normal, or uniform within mean +- sd if flat
  bool flat;
  bool fixed;  // the same logits at every temperature (its scores at temperature 1): then the
               // temperature makes it more or less peaked
};

// The logits whose scores at `temperature` are the row's (the same shape at every temperature).
std::vector<float> logits_of(const peaked_row& row, float temperature, std::uint32_t seed) {
  std::mt19937 rng{seed};
  std::normal_distribution<float> normal{row.tail_mean, row.tail_sd};
  std::uniform_real_distribution<float> uniform{row.tail_mean - row.tail_sd,
                                                row.tail_mean + row.tail_sd};
  std::vector<float> scores(row.vocab);
  for (auto& s : scores) s = row.flat ? uniform(rng) : normal(rng);
  std::copy(row.head.begin(), row.head.end(), scores.begin() + 17);  // not at the front
  std::vector<float> logits(row.vocab);
  for (std::size_t i = 0; i < row.vocab; ++i) logits[i] = temperature * (scores[i] + 10.0f);
  return logits;
}

// How many tokens score within `gap` of the best at `temperature`.
std::size_t scoring_within(const std::vector<float>& logits, float temperature, float gap) {
  float best = -std::numeric_limits<float>::infinity();
  for (float l : logits) best = std::max(best, l / temperature);
  return static_cast<std::size_t>(std::count_if(
      logits.begin(), logits.end(), [&](float l) { return l / temperature >= best - gap; }));
}

}  // namespace

TEST_CASE("top-k and top-p reaching past the sure candidates are drawn from them on peaked rows") {
  // With top-k above the tokens within 11 of the best (the candidates surely ranked above every
  // token not sent) the kept set's weight is known only within bounds; the draw is answered
  // from the candidates when it picks the same token anywhere within them. Top-p past the sure
  // candidates (the flat tail holds over 10% of the weight) likewise.
  const std::vector<peaked_row> rows = {
      {"one far ahead", 49152, {0.0f}, -20.0f, 2.5f, false, false},
      {"a few ahead", 49152, {0.0f, -0.4f, -1.5f, -3.0f, -6.5f, -9.8f}, -18.0f, 2.0f, false, false},
      {"a Qwen-sized row", 151936, {0.0f, -2.0f}, -19.0f, 2.0f, false, false},
      {"a flat tail just out of the window", 49152, {0.0f, -1.0f}, -12.35f, 0.25f, true, false},
      {"one far ahead, same logits at each T", 49152, {0.0f}, -25.0f, 2.5f, false, true},
  };
  int draws = 0;
  candidate_draws top_k_40, top_k_past_sure, top_p_past_sure;
  std::uint32_t row_seed = 40;
  for (const auto& row : rows)
    for (float temperature : {0.3f, 0.7f, 1.0f, 1.5f}) {
      const auto logits = logits_of(row, row.fixed ? 1.0f : temperature, ++row_seed);
      // Fewer than 40 within 11 of the best: before top-k could reach past the sure candidates,
      // every draw here with top-k 40, 50 or 200 asked for the row.
      const auto sure = scoring_within(logits, temperature, 11.0f);
      REQUIRE(sure < 40);
      for (std::int32_t top_k : {0, 10, 40, 50, 200})
        for (float top_p : {1.0f, 0.9f, 0.5f}) {
          const auto p = params(temperature, top_k, top_p,
                                row_seed * 1000 + static_cast<std::uint64_t>(top_k));
          INFO(row.what);
          const auto n = draw_both_ways(logits, p, 512, 20);
          draws += n.answered + n.asked_for_row;
          if (top_k == 40) {
            top_k_40.answered += n.answered;
            top_k_40.asked_for_row += n.asked_for_row;
          }
          if (static_cast<std::size_t>(top_k) > sure) {
            top_k_past_sure.answered += n.answered;
            top_k_past_sure.asked_for_row += n.asked_for_row;
          }
          if (top_k == 0 && top_p == 0.9f && row.flat) {
            top_p_past_sure.answered += n.answered;
            top_p_past_sure.asked_for_row += n.asked_for_row;
          }
        }
    }
  CHECK(draws == 5 * 4 * 5 * 3 * 20);
  const int n_40 = top_k_40.answered + top_k_40.asked_for_row;
  CHECK(n_40 == 5 * 4 * 3 * 20);
  CHECK(top_k_40.answered > 9 * n_40 / 10);  // before: none
  const int n_k = top_k_past_sure.answered + top_k_past_sure.asked_for_row;
  CHECK(top_k_past_sure.answered > 9 * n_k / 10);  // before: none
  // Top-p 0.9 alone on the flat tail: the two leaders hold under 90% of the weight.
  const int n_p = top_p_past_sure.answered + top_p_past_sure.asked_for_row;
  CHECK(n_p == 4 * 20);
  CHECK(top_p_past_sure.answered > 8 * n_p / 10);  // before: none
}

TEST_CASE("a draw near a boundary the tokens not sent can move asks for the row") {
  // Four leaders and 20000 tokens just out of the window: top-k 5000 or 20000 keeps thousands
  // of tokens the candidates only bound (e^-11 each at most), so the kept set's weight is
  // known within 3-13%, and the top-p cut and many draws land where it matters.
  const peaked_row row{"leaders", 49152, {0.0f, -0.2f, -0.7f, -1.5f}, -25.0f, 2.0f, false, false};
  candidate_draws total;
  for (float temperature : {0.7f, 1.3f}) {
    auto logits = logits_of(row, temperature, 77);
    std::mt19937 rng{78};
    std::uniform_real_distribution<float> near_edge{-12.8f, -12.2f};
    for (std::size_t i = 100; i < 20100; ++i) logits[i] = temperature * (near_edge(rng) + 10.0f);
    for (std::int32_t top_k : {5000, 20000})
      for (float top_p : {1.0f, 0.9f, 0.6f}) {
        const auto p = params(temperature, top_k, top_p, 5 + static_cast<std::uint64_t>(top_k));
        const auto n = draw_both_ways(logits, p, 512, 100);
        total.answered += n.answered;
        total.asked_for_row += n.asked_for_row;
      }
  }
  CHECK(total.answered + total.asked_for_row == 2 * 2 * 3 * 100);
  CHECK(total.answered > 2 * 2 * 3 * 100 / 5);  // both ways taken, many times each
  CHECK(total.asked_for_row > 2 * 2 * 3 * 100 / 20);
}

TEST_CASE("candidates refuse bad arguments and leave rows that are not sampled empty") {
  const std::vector<float> row = {1.0f, 2.0f, 3.0f, 4.0f};
  const float temperatures[2] = {0.0f, 1.0f};
  candidate_summary s[2];
  std::int32_t ids[8];
  float kept[8];
  CHECK_FALSE(host_sampling_candidates(row.data(), 1, 4, temperatures, 12.0f, 0, s, ids, kept));
  CHECK_FALSE(host_sampling_candidates(row.data(), 1, 0, temperatures, 12.0f, 4, s, ids, kept));
  CHECK_FALSE(host_sampling_candidates(row.data(), 1, 4, temperatures, -1.0f, 4, s, ids, kept));
  CHECK_FALSE(host_sampling_candidates(nullptr, 1, 4, temperatures, 12.0f, 4, s, ids, kept));
  const std::vector<float> two_rows = {1.0f, 2.0f, 3.0f, 4.0f, 9.0f, 0.0f, 9.0f, -20.0f};
  REQUIRE(host_sampling_candidates(two_rows.data(), 2, 4, temperatures, 3.5f, 4, s, ids, kept));
  CHECK(s[0].count == 0);  // temperature 0: not a sampled row
  CHECK(s[1].best == 9.0f);
  CHECK(s[1].count == 2);  // 9 and 9; 0 and -20 are more than 3.5 below
  CHECK(s[1].total == Approx(2.0 + std::exp(-9.0) + std::exp(-29.0)));
  CHECK(ids[4] == 0);
  CHECK(ids[5] == 2);
  CHECK(kept[4] == 9.0f);
}

TEST_CASE("NaN and infinite logits neither crash the sampler nor win over real ones") {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  sampling_params hot;
  hot.temperature = 1.0f;
  for (auto p : {sampling_params{}, hot}) {
    sampler s{p};
    std::vector<float> v = {nan, 1.0f, nan, 3.0f, -inf};
    CHECK(s.sample(v.data(), 5, {}) == 3);  // greedy and (nearly always) the draw
    std::vector<float> all_nan(7, nan);
    const auto t = s.sample(all_nan.data(), 7, {});
    CHECK((t >= 0 && t < 7));
    std::vector<float> none = {-inf, -inf, -inf};
    CHECK(s.sample(none.data(), 3, {}) == 0);
    std::vector<float> swamped = {1.0f, inf, 2.0f, inf};
    CHECK(s.sample(swamped.data(), 4, {}) == 1);  // the first of the infinite ones
  }
}

TEST_CASE("greedy picks the largest logit, the lowest id on ties") {
  sampler s{sampling_params{}};
  for (std::uint32_t seed = 0; seed < 20; ++seed) {
    const auto l = random_logits(1000, seed);
    CHECK(s.sample(l.data(), 1000, {}) == argmax(l));
  }
  const std::vector<float> tie = {0.0f, 3.0f, 1.0f, 3.0f};
  CHECK(s.sample(tie.data(), 4, {}) == 1);
}

TEST_CASE("the same seed gives the same tokens, another seed other tokens") {
  const auto l = random_logits(500, 1);
  sampling_params p;
  p.temperature = 1.0f;
  p.seed = 42;
  auto run = [&](sampling_params q) {
    sampler s{q};
    std::vector<std::int32_t> out;
    for (int i = 0; i < 50; ++i) out.push_back(s.sample(l.data(), 500, {}));
    return out;
  };
  CHECK(run(p) == run(p));
  auto other = p;
  other.seed = 43;
  CHECK(run(p) != run(other));
}

TEST_CASE("top-k = 1 and a tiny top-p are greedy even at high temperature") {
  for (std::uint32_t seed = 0; seed < 10; ++seed) {
    const auto l = random_logits(300, seed);
    sampling_params k1;
    k1.temperature = 5.0f;
    k1.top_k = 1;
    k1.seed = seed;
    sampling_params p_tiny = k1;
    p_tiny.top_k = 0;
    p_tiny.top_p = 1e-6f;
    sampler a{k1}, b{p_tiny};
    for (int i = 0; i < 20; ++i) {
      CHECK(a.sample(l.data(), 300, {}) == argmax(l));
      CHECK(b.sample(l.data(), 300, {}) == argmax(l));
    }
  }
}

TEST_CASE("top-k and top-p draw only inside their sets, and cover them") {
  const std::vector<float> l = {4.0f, 3.9f, 3.8f, 0.0f, -1.0f, 3.7f, -2.0f, 0.5f};
  sampling_params p;
  p.temperature = 1.0f;
  p.top_k = 3;
  p.seed = 7;
  auto h = histogram(p, l, 3000);
  CHECK(h.size() == 3);
  CHECK(h.count(0));
  CHECK(h.count(1));
  CHECK(h.count(2));
  // top-p: probabilities of {0,1,2,5} hold ~0.98 of the mass, the top three ~0.77, so p = 0.9 keeps
  // them.
  p.top_k = 0;
  p.top_p = 0.9f;
  h = histogram(p, l, 4000);
  CHECK(h.size() == 4);
  for (auto id : {0, 1, 2, 5}) CHECK(h.count(id));
}

TEST_CASE("temperature sharpens and flattens the distribution") {
  const std::vector<float> l = {2.0f, 1.0f, 0.0f};
  auto share_of_top = [&](float t) {
    sampling_params p;
    p.temperature = t;
    p.seed = 3;
    return histogram(p, l, 6000)[0] / 6000.0;
  };
  // softmax([2,1,0]/T)[0]: T=0.25 -> 0.98, T=1 -> 0.665, T=4 -> 0.42
  CHECK(share_of_top(0.25f) == Approx(0.982).margin(0.02));
  CHECK(share_of_top(1.0f) == Approx(0.665).margin(0.03));
  CHECK(share_of_top(4.0f) == Approx(0.419).margin(0.03));
}

TEST_CASE("repetition penalty turns greedy away from tokens already seen") {
  const std::vector<float> l = {2.0f, 1.8f, -1.0f, -1.1f};
  sampling_params p;
  sampler plain{p};
  CHECK(plain.sample(l.data(), 4, {0}) == 0);
  p.repetition_penalty = 1.2f;  // 2.0 / 1.2 = 1.67 < 1.8
  sampler penal{p};
  CHECK(penal.sample(l.data(), 4, {0, 0, 0}) == 1);
  CHECK(penal.sample(l.data(), 4, {2}) == 0);  // unrelated history: no change
  // Negative logits are pushed further down (multiplied), not raised towards zero.
  const std::vector<float> neg = {-1.0f, -1.1f};
  CHECK(penal.sample(neg.data(), 2, {0}) == 1);
  // Ids outside the vocabulary in the history are ignored.
  CHECK(penal.sample(l.data(), 4, {-5, 99}) == 0);
}

namespace {

// The sampler's rule written out: each distinct history id in [0, vocab) once, a positive
// logit divided by the penalty, any other multiplied by it.
std::vector<float> penalised_by_hand(std::vector<float> row, std::vector<std::int32_t> history,
                                     float penalty) {
  std::sort(history.begin(), history.end());
  history.erase(std::unique(history.begin(), history.end()), history.end());
  for (auto t : history) {
    if (t < 0 || t >= static_cast<std::int32_t>(row.size())) continue;
    float& l = row[static_cast<std::size_t>(t)];
    l = l > 0.0f ? l / penalty : l * penalty;
  }
  return row;
}

// Equal as floats bit for bit, any NaN equal to any NaN.
bool same_floats(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::isnan(a[i]) && std::isnan(b[i])) continue;
    if (std::memcmp(&a[i], &b[i], sizeof(float)) != 0) return false;
  }
  return true;
}

// The ascending distinct ids of `history` (what backend::repetition_penalty_f32 takes).
std::vector<std::int32_t> distinct(std::vector<std::int32_t> history) {
  std::sort(history.begin(), history.end());
  history.erase(std::unique(history.begin(), history.end()), history.end());
  return history;
}

}  // namespace

TEST_CASE("the host repetition penalty applies the sampler rule bit for bit") {
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float tiny = std::numeric_limits<float>::denorm_min();
  // Positive, negative, +0, -0, NaN, infinities, denormals, extremes, inexact quotients.
  const std::vector<float> base = {2.0f,   -1.0f, 0.0f,  -0.0f,    nan,    inf,   -inf,
                                   tiny,   -tiny, 3e38f, -3e38f,   0.1f,   -0.3f, 7.77f,
                                   1e-30f, -2.5f, 1.0f,  123.456f, -9.99f, 0.333f};
  const auto dim = static_cast<std::int64_t>(base.size());
  // Duplicates, ids outside [0, dim) on both sides, and every position touched somewhere.
  const std::vector<std::vector<std::int32_t>> histories = {
      {0, 0, 0, 1, 2, 3, 4, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19},
      {-7, -1, 3, 3, 19, 20, 99, 1 << 30},
      {},
      {12, 11, 13, 11, 12, 0, 5, 6}};
  for (float penalty : {0.5f, 0.7f, 1.0f, 1.1f, 1.3f, 2.0f, 3.0f}) {
    INFO("penalty " << penalty);
    std::vector<float> rows, want;
    std::vector<float> penalties;
    std::vector<std::int32_t> begin{0}, tokens;
    for (const auto& h : histories) {
      rows.insert(rows.end(), base.begin(), base.end());
      const auto by_hand = penalised_by_hand(base, h, penalty);
      want.insert(want.end(), by_hand.begin(), by_hand.end());
      const auto ids = distinct(h);
      tokens.insert(tokens.end(), ids.begin(), ids.end());
      begin.push_back(static_cast<std::int32_t>(tokens.size()));
      penalties.push_back(penalty);
    }
    const auto n_rows = static_cast<std::int64_t>(histories.size());
    REQUIRE(host_repetition_penalty(rows.data(), n_rows, dim, penalties.data(), begin.data(),
                                    tokens.data()));
    CHECK(same_floats(rows, want));
  }
  // Different penalties per row in one call; penalty 1 leaves a row as it is.
  std::vector<float> two(base);
  two.insert(two.end(), base.begin(), base.end());
  const float penalties[2] = {1.0f, 1.5f};
  const std::int32_t begin[3] = {0, 2, 4};
  const std::int32_t tokens[4] = {0, 1, 0, 1};
  REQUIRE(host_repetition_penalty(two.data(), 2, dim, penalties, begin, tokens));
  CHECK(two[0] == 2.0f);
  CHECK(two[1] == -1.0f);
  CHECK(two[static_cast<std::size_t>(dim)] == 2.0f / 1.5f);
  CHECK(two[static_cast<std::size_t>(dim) + 1] == -1.5f);
}

TEST_CASE("logits penalised beforehand give the tokens the sampler gives raw ones") {
  // Sampler `raw` applies the penalty itself; sampler `pre` gets the row penalised by the host
  // definition (as a device backend would penalise it) and is told so, both whole and as
  // candidates. Same seeds: every token must agree, so the penalty is applied exactly once.
  const std::int64_t vocab = 3000;
  auto logits = random_logits(static_cast<std::size_t>(vocab), 21);
  // The history's tokens are made likely, so the penalty decides many draws.
  std::vector<std::int32_t> history = {5, 5, 17, 2999, 5, 400, 401, 17, -2, 3000, 1234};
  for (auto t : history)
    if (t >= 0 && t < vocab) logits[static_cast<std::size_t>(t)] = 6.0f + 0.1f * (t % 7);
  logits[401] = -6.0f;  // a negative one: multiplied
  const auto ids = distinct(history);
  int differs_from_unpenalised = 0, from_candidates = 0;
  for (float penalty : {0.6f, 1.3f, 2.5f}) {
    std::vector<float> pre_row = logits;
    const std::int32_t begin[2] = {0, static_cast<std::int32_t>(ids.size())};
    REQUIRE(host_repetition_penalty(pre_row.data(), 1, vocab, &penalty, begin, ids.data()));
    for (float temperature : {0.0f, 0.7f, 1.5f})
      for (std::int32_t top_k : {0, 3})
        for (float top_p : {1.0f, 0.5f}) {
          auto p = params(temperature, top_k, top_p, 31 + static_cast<std::uint64_t>(top_k));
          p.repetition_penalty = penalty;
          sampler raw{p}, pre{p}, from{p};
          sampling_params unpenalised = p;
          unpenalised.repetition_penalty = 1.0f;
          sampler plain{unpenalised};
          CHECK_FALSE(from.draws_from_candidates());  // raw candidates cannot carry a penalty
          CHECK(from.draws_from_candidates(logits_kind::penalised) == (temperature > 0.0f));
          candidate_summary summary;
          const std::int32_t capacity = 4096;  // every token within the window fits
          std::vector<std::int32_t> cand_ids(capacity);
          std::vector<float> cand_logits(capacity);
          if (temperature > 0.0f)
            REQUIRE(host_sampling_candidates(pre_row.data(), 1, vocab, &temperature,
                                             sampler::candidate_window, capacity, &summary,
                                             cand_ids.data(), cand_logits.data()));
          for (int i = 0; i < 10; ++i) {
            INFO("penalty " << penalty << " T " << temperature << " top_k " << top_k << " top_p "
                            << top_p << " draw " << i);
            const auto want = raw.sample(logits.data(), vocab, history);
            CHECK(pre.sample(pre_row.data(), vocab, history, logits_kind::penalised) == want);
            if (temperature > 0.0f) {
              auto token = from.sample_from(summary, cand_ids.data(), cand_logits.data(), capacity,
                                            logits_kind::penalised);
              from_candidates += token ? 1 : 0;
              if (!token) token = from.sample(pre_row.data(), vocab, {}, logits_kind::penalised);
              CHECK(*token == want);
            }
            differs_from_unpenalised += plain.sample(logits.data(), vocab, {}) != want ? 1 : 0;
          }
        }
  }
  CHECK(from_candidates > 100);
  CHECK(differs_from_unpenalised > 50);  // the penalty matters in these draws

  // Raw candidates with a penalty to apply: nothing, and no draw taken, so sample() on the raw
  // row draws what a fresh sampler draws first.
  sampling_params p;
  p.temperature = 1.0f;
  p.repetition_penalty = 1.3f;
  p.seed = 8;
  sampler from{p}, fresh{p};
  candidate_summary summary;
  std::vector<std::int32_t> cand_ids(64);
  std::vector<float> cand_logits(64);
  REQUIRE(host_sampling_candidates(logits.data(), 1, vocab, &p.temperature,
                                   sampler::candidate_window, 64, &summary, cand_ids.data(),
                                   cand_logits.data()));
  CHECK_FALSE(from.sample_from(summary, cand_ids.data(), cand_logits.data(), 64));
  for (int i = 0; i < 5; ++i)
    CHECK(from.sample(logits.data(), vocab, history) ==
          fresh.sample(logits.data(), vocab, history));
}

TEST_CASE("the repetition penalty refuses bad tables with reasons") {
  std::vector<float> row(8, 1.0f);
  const float one[1] = {1.5f};
  const std::int32_t begin[2] = {0, 3};
  const std::int32_t ascending[3] = {1, 4, 6};
  auto why = [&](float* x, std::int64_t rows, std::int64_t dim, const float* penalty,
                 const std::int32_t* b, const std::int32_t* t) {
    const auto st = host_repetition_penalty(x, rows, dim, penalty, b, t);
    CHECK(st.code() == status_code::invalid_argument);
    return st.message();
  };
  CHECK_THAT(why(row.data(), 1, 0, one, begin, ascending), Catch::Contains("shape"));
  CHECK_THAT(why(row.data(), -1, 8, one, begin, ascending), Catch::Contains("shape"));
  CHECK_THAT(why(nullptr, 1, 8, one, begin, ascending), Catch::Contains("null"));
  CHECK_THAT(why(row.data(), 1, 8, one, begin, nullptr), Catch::Contains("null"));
  const std::int32_t repeated[3] = {1, 4, 4};
  CHECK_THAT(why(row.data(), 1, 8, one, begin, repeated), Catch::Contains("ascending"));
  const std::int32_t unsorted[3] = {4, 1, 6};
  CHECK_THAT(why(row.data(), 1, 8, one, begin, unsorted), Catch::Contains("ascending"));
  for (float bad : {0.0f, -1.0f, std::numeric_limits<float>::quiet_NaN(),
                    std::numeric_limits<float>::infinity()})
    CHECK_THAT(why(row.data(), 1, 8, &bad, begin, ascending), Catch::Contains("penalty"));
  const std::int32_t late[2] = {1, 3};
  CHECK_THAT(why(row.data(), 1, 8, one, late, ascending), Catch::Contains("token_begin[0]"));
  const float two[2] = {1.5f, 1.5f};
  const std::int32_t falling[3] = {0, 3, 2};
  CHECK_THAT(why(row.data(), 2, 8, two, falling, ascending), Catch::Contains("falls"));
  CHECK(row == std::vector<float>(8, 1.0f));  // nothing written by a refused call
  CHECK(host_repetition_penalty(nullptr, 0, 8, nullptr, nullptr, nullptr));  // no rows: nothing
}

TEST_CASE("sampling parameters out of range are refused with the field named") {
  auto bad = [](sampling_params p, const char* field) {
    const auto s = p.validate();
    CHECK(s.code() == status_code::invalid_argument);
    CHECK_THAT(s.message(), Catch::Contains(field));
  };
  sampling_params p;
  CHECK(p.validate());
  p.temperature = -1.0f;
  bad(p, "temperature");
  p = {};
  p.temperature = NAN;
  bad(p, "temperature");
  p = {};
  p.top_k = -2;
  bad(p, "top_k");
  p = {};
  p.top_p = 0.0f;
  bad(p, "top_p");
  p.top_p = 1.5f;
  bad(p, "top_p");
  p = {};
  p.repetition_penalty = 0.0f;
  bad(p, "repetition_penalty");
}
