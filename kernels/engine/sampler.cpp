#include "kernels/engine/sampler.hpp"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <string>

namespace bastion::kernels {

status sampling_params::validate() const {
  auto bad = [](const char* field, const std::string& value, const char* want) {
    return status{status_code::invalid_argument,
                  std::string{"sampling: "} + field + " = " + value + " " + want};
  };
  if (!std::isfinite(temperature) || temperature < 0.0f)
    return bad("temperature", std::to_string(temperature), "must be finite and >= 0");
  if (top_k < 0) return bad("top_k", std::to_string(top_k), "must be >= 0");
  if (!(top_p > 0.0f && top_p <= 1.0f))
    return bad("top_p", std::to_string(top_p), "must be in (0, 1]");
  if (!std::isfinite(repetition_penalty) || repetition_penalty <= 0.0f)
    return bad("repetition_penalty", std::to_string(repetition_penalty), "must be finite and > 0");
  return status::ok();
}

namespace {

// (score, token): the more likely first, equal scores by id, so orders and draws reproduce.
bool more_likely_scored(const std::pair<float, std::int32_t>& a,
                        const std::pair<float, std::int32_t>& b) {
  return a.first > b.first || (a.first == b.first && a.second < b.second);
}

}  // namespace

sampler::sampler(const sampling_params& params) : params_(params), rng_(params.seed) {}

double sampler::draw() {
  if (!pending_draw_) return uniform();
  const double u = *pending_draw_;
  pending_draw_.reset();
  return u;
}

std::optional<std::int32_t> sampler::sample_from(const candidate_summary& summary,
                                                 const std::int32_t* ids, const float* logits,
                                                 std::int64_t capacity, logits_kind kind) {
  const auto count = static_cast<std::size_t>(summary.count);
  if (!draws_from_candidates(kind) || summary.count <= 0 || summary.count > capacity ||
      !std::isfinite(summary.best) || !(summary.total > 0.0))
    return std::nullopt;
  // Scores as sample() computes them, most likely first. The candidates are every token within
  // the window of the best; a backend's scores may differ from these in the last bits, so only
  // those a margin inside the window are surely ahead of every token left out.
  candidates_.clear();
  for (std::size_t i = 0; i < count; ++i)
    candidates_.emplace_back(sampling_score(logits[i], params_.temperature), ids[i]);
  std::sort(candidates_.begin(), candidates_.end(), more_likely_scored);
  const double best = candidates_.front().first;
  if (!std::isfinite(best)) return std::nullopt;
  constexpr float margin = 1.0f;
  const float sure_floor = candidates_.front().first - (candidate_window - margin);
  std::size_t sure = 0;
  while (sure < count && candidates_[sure].first >= sure_floor) ++sure;
  // The running weight of the sure ones (what top-k, top-p and the draw read); the others'
  // weights only when top-k reaches past them. Every token outside the sure set scores below
  // sure_floor: candidates by the count above, the others by the margin. So each weighs at most
  // outside_max (the factor covers an exp off by an ulp, which could break monotonicity).
  auto weight = [&](std::size_t i) {
    return std::exp(static_cast<double>(candidates_[i].first) - best);
  };
  cumulative_.resize(sure);
  double sure_mass = 0.0;
  for (std::size_t i = 0; i < sure; ++i) cumulative_[i] = sure_mass += weight(i);
  const double outside_max = std::exp(static_cast<double>(sure_floor) - best) * (1.0 + 1e-12);

  // Past the sure candidates the candidates cannot tell exactly what sample() computes: the
  // denominator, the top-p set, the draw's scale. They bound them instead, and a token is
  // returned only when it is the one drawn anywhere within the bounds; otherwise the row is
  // asked for. What is accepted, as before: the sums here run in rank order and sample()'s in
  // its selection's order, and without top-k the denominator is the backend's sum over the
  // row, so a top-p or draw target within those sums' rounding (last bits, ~1e-16 relative
  // for the host's double sums) of a boundary could fall the other way. The bounds add no
  // error of their own: each holds for the values sample() computes.
  constexpr std::size_t all = std::numeric_limits<std::size_t>::max();

  // Top-k and the softmax denominator, in [total_lo, total_hi]: the kept tokens' weights, or
  // the backend's total over the row, rescaled to this best.
  std::size_t keep = all;
  double total_lo = summary.total * std::exp(static_cast<double>(summary.best) - best);
  double total_hi = total_lo;
  if (params_.top_k > 0) {
    keep = static_cast<std::size_t>(params_.top_k);
    if (keep <= sure) {
      total_lo = total_hi = cumulative_[keep - 1];
    } else {
      // The sure candidates and keep - sure tokens ranked below them, the most likely of those
      // left: together at least the most likely candidates there, each at most outside_max.
      // (A row with fewer tokens than keep has fewer below: the bounds hold for it too.)
      double below = 0.0;
      for (std::size_t i = sure; i < std::min(keep, count); ++i) below += weight(i);
      total_lo = sure_mass + below;
      total_hi = sure_mass + static_cast<double>(keep - sure) * outside_max;
    }
  }
  // The draw picks among the `kept` most likely tokens, kept_min <= kept <= kept_max (`all`:
  // some count past the sure candidates), scaled by their weight, in [mass_lo, mass_hi]:
  // top-k's set and its total, cut further by top-p.
  std::size_t kept_min = keep, kept_max = keep;
  double mass_lo = total_lo, mass_hi = total_hi;
  if (params_.top_p < 1.0f) {
    const double p = static_cast<double>(params_.top_p);
    // The fewest most likely tokens whose weight reaches p * total, as take_until(or_equal)
    // counts them: all kept ones when rounding leaves them short; `all` when the count lies
    // past the sure candidates. Grows with total, so the two ends bound it.
    auto cut = [&](double total) {
      for (std::size_t i = 0; i < std::min(keep, sure); ++i)
        if (cumulative_[i] >= p * total) return i + 1;
      return keep <= sure ? keep : all;
    };
    kept_min = cut(total_lo);
    kept_max = cut(total_hi);
    // Past the sure candidates the set weighs at least p * total and all the sure ones, and
    // less than p * total and one more token (the one that reached it), at most the total.
    mass_lo = kept_min != all ? cumulative_[kept_min - 1] : std::max(p * total_lo, sure_mass);
    mass_hi = kept_max != all ? cumulative_[kept_max - 1]
                              : std::min(p * total_hi + outside_max, total_hi);
  }
  // The draw: the first kept token at which the running weight passes u * mass. The one
  // passing u * mass_lo is returned when it passes u * mass_hi too (then it is the first for
  // every scale between) and is kept whatever the count.
  const double u = uniform();
  const double target_lo = u * mass_lo, target_hi = u * mass_hi;
  const std::size_t walk_end = std::min(kept_min, sure);
  std::size_t i = 0;
  while (i < walk_end && !(cumulative_[i] > target_lo)) ++i;
  if (i < walk_end) {
    if (cumulative_[i] > target_hi) return candidates_[i].second;
  } else if (kept_min == kept_max && kept_max <= sure) {
    return candidates_[kept_max - 1].second;  // rounding: the last kept token, as sample()
  }
  pending_draw_ = u;  // undecided by the candidates: sample() takes it from here
  return std::nullopt;
}

double sampler::uniform() {
  return static_cast<double>(rng_() >> 11) * (1.0 / 9007199254740992.0);  // 53 bits / 2^53
}

bool sampler::more_likely(std::int32_t a, std::int32_t b) const noexcept {
  // Equal scores by id, so the order (and the draw) is reproducible.
  const float sa = work_[static_cast<std::size_t>(a)];
  const float sb = work_[static_cast<std::size_t>(b)];
  return sa > sb || (sa == sb && a < b);
}

std::size_t sampler::take_until(std::size_t lo, std::size_t hi, double target, bool or_equal,
                                double& reached) {
  auto passes = [&](double w) { return or_equal ? w >= target : w > target; };
  auto at = [this](std::size_t i) { return order_.begin() + static_cast<std::ptrdiff_t>(i); };
  // Quickselect on weight: split around a pivot; the answer lies among the more likely side
  // when that side alone passes, else at the pivot or beyond it.
  while (lo < hi) {
    std::int32_t a = *at(lo), b = *at(lo + (hi - lo) / 2), c = *at(hi - 1);
    if (more_likely(b, a)) std::swap(a, b);
    if (more_likely(c, b)) std::swap(b, c);
    if (more_likely(b, a)) std::swap(a, b);
    const std::int32_t pivot = b;  // the median of three
    const auto split =
        std::partition(at(lo), at(hi), [&](std::int32_t t) { return more_likely(t, pivot); });
    std::iter_swap(split, std::find(split, at(hi), pivot));
    const auto mid = static_cast<std::size_t>(split - order_.begin());
    double above = 0.0;
    for (std::size_t i = lo; i < mid; ++i) above += weight_[static_cast<std::size_t>(*at(i))];
    if (mid > lo && passes(reached + above)) {
      hi = mid;
      continue;
    }
    reached += above + weight_[static_cast<std::size_t>(pivot)];
    lo = mid + 1;
    if (passes(reached)) return lo;
  }
  return hi;
}

std::int32_t sampler::sample(const float* logits, std::int64_t vocab,
                             const std::vector<std::int32_t>& history, logits_kind kind) {
  work_.assign(logits, logits + vocab);
  if (kind == logits_kind::raw && params_.repetition_penalty != 1.0f) {
    // Each distinct earlier token once: shrink its logit towards "less likely" (divide a
    // positive logit, multiply a negative one), as the CTRL paper and Hugging Face do.
    std::vector<std::int32_t> seen(history);
    std::sort(seen.begin(), seen.end());
    seen.erase(std::unique(seen.begin(), seen.end()), seen.end());
    for (auto t : seen) {
      if (t < 0 || t >= vocab) continue;
      float& l = work_[static_cast<std::size_t>(t)];
      l = penalised_logit(l, params_.repetition_penalty);
    }
  }
  // A NaN logit (a broken model) is never picked, as the backends' argmax passes over it.
  const auto n = static_cast<std::size_t>(vocab);
  if (params_.temperature == 0.0f) {
    pending_draw_.reset();
    std::size_t at_best = 0;
    for (std::size_t i = 1; i < n; ++i)
      if (work_[i] > work_[at_best] || (std::isnan(work_[at_best]) && !std::isnan(work_[i])))
        at_best = i;
    return static_cast<std::int32_t>(at_best);
  }
  constexpr float never = -std::numeric_limits<float>::infinity();
  const float temperature = params_.temperature;
  weight_.resize(n);
  order_.resize(n);
  auto at = [this](std::size_t i) { return order_.begin() + static_cast<std::ptrdiff_t>(i); };

  // Scores (the logits over the temperature) of the tokens that can be drawn, the k most
  // likely under top-k, to the front of order_.
  std::size_t keep = n;
  float best = never;
  if (params_.top_k == 0 || static_cast<std::size_t>(params_.top_k) >= n) {
    for (auto& w : work_) best = std::max(best, w = sampling_score(w, temperature));
    for (std::size_t i = 0; i < n; ++i) order_[i] = static_cast<std::int32_t>(i);
  } else {
    keep = static_cast<std::size_t>(params_.top_k);
    // One pass that scores each token and keeps a heap of the k most likely so far, least
    // likely on top: most tokens are turned away by one comparison with it. Only the kept
    // tokens' scores are written back (what the selections below read).
    top_.clear();
    for (std::size_t i = 0; i < n; ++i) {
      const scored candidate{sampling_score(work_[i], temperature), static_cast<std::int32_t>(i)};
      if (top_.size() < keep) {
        top_.push_back(candidate);
        std::push_heap(top_.begin(), top_.end(), more_likely_scored);
      } else if (more_likely_scored(candidate, top_.front())) {
        std::pop_heap(top_.begin(), top_.end(), more_likely_scored);
        top_.back() = candidate;
        std::push_heap(top_.begin(), top_.end(), more_likely_scored);
      }
    }
    for (std::size_t i = 0; i < keep; ++i) {
      const auto [score, id] = top_[i];
      work_[static_cast<std::size_t>(id)] = score;
      order_[i] = id;
      best = std::max(best, score);
    }
  }
  if (best == never || best == -never) {
    // Nothing can be drawn (all -inf) or one score swamps the rest (+inf): the first best.
    pending_draw_.reset();
    return *std::min_element(at(0), at(keep),
                             [this](std::int32_t a, std::int32_t b) { return more_likely(a, b); });
  }

  double total = 0.0;  // only the kept tokens are weighed: top-k keeps few of many
  for (std::size_t i = 0; i < keep; ++i) {
    const auto t = static_cast<std::size_t>(order_[i]);
    total += weight_[t] = std::exp(static_cast<double>(work_[t]) - static_cast<double>(best));
  }
  // Top-p: the smallest most-likely set whose probability reaches top_p (at least one token).
  double mass = total;
  if (params_.top_p < 1.0f) {
    mass = 0.0;
    keep = take_until(0, keep, static_cast<double>(params_.top_p) * total, true, mass);
  }
  // The draw: the first token, most likely first, at which the running mass passes it.
  double reached = 0.0;
  const std::size_t end = take_until(0, keep, draw() * mass, false, reached);
  if (end < keep || end == 0) return order_[end == 0 ? 0 : end - 1];
  // Rounding left the draw just above the last boundary: the least likely kept token.
  return *std::min_element(at(0), at(keep),
                           [this](std::int32_t a, std::int32_t b) { return more_likely(b, a); });
}

}  // namespace bastion::kernels
