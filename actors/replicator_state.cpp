#include "actors/replicator_state.hpp"

#include "actors/replicator_errors.hpp"
#include "schemas/journal.capnp.h"

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <kj/exception.h>

#include <algorithm>
#include <cstring>
#include <utility>

namespace bastion::actors {

namespace schema_journal = bastion::schema::journal;

namespace {

// A flat Cap'n Proto message is a whole number of words; the bytes are copied into aligned
// words before they are read.
std::optional<kj::Array<capnp::word>> aligned_words(const std::uint8_t* data, std::size_t size) {
  if (size == 0 || size % sizeof(capnp::word) != 0) return std::nullopt;
  auto words = kj::heapArray<capnp::word>(size / sizeof(capnp::word));
  std::memcpy(words.begin(), data, size);
  return words;
}

capnp::ReaderOptions reader_options(std::size_t bytes) {
  capnp::ReaderOptions o;
  // Each word read at most a few times: bounds pointer amplification.
  o.traversalLimitInWords = bytes / sizeof(capnp::word) * 4 + 64;
  o.nestingLimit = 32;
  return o;
}

std::vector<std::uint8_t> to_bytes(kj::ArrayPtr<const capnp::word> words) {
  const auto* b = reinterpret_cast<const std::uint8_t*>(words.begin());
  return {b, b + words.size() * sizeof(capnp::word)};
}

std::vector<std::uint8_t> to_bytes(capnp::Data::Reader d) { return {d.begin(), d.end()}; }

std::string subject_of(schema_journal::ConfigurationChange::Reader c) {
  switch (c.which()) {
    case schema_journal::ConfigurationChange::MODEL_DEPLOYED:
      return "model:" + std::string{c.getModelDeployed().getModelId().cStr()};
    case schema_journal::ConfigurationChange::POLICY:
      return "policy:" + std::string{c.getPolicy().getName().cStr()};
    case schema_journal::ConfigurationChange::PRINCIPAL:
      return "principal:" + std::string{c.getPrincipal().getPrincipal().cStr()};
    case schema_journal::ConfigurationChange::APPROVAL:
      return "approval:" + std::string{c.getTicket().cStr()};
    case schema_journal::ConfigurationChange::LEADERSHIP:
      return "leadership";
  }
  return "unknown:";
}

journal_summary::error_outcome error_outcome_of(schema::Error::Reader e, capnp::Text::Reader param,
                                                std::size_t message_bytes_max) {
  journal_summary::error_outcome f;
  f.code = static_cast<std::uint16_t>(e.getCode());
  f.reason = static_cast<std::uint16_t>(e.getReason());
  f.message.assign(e.getMessage().cStr(), std::min(e.getMessage().size(), message_bytes_max));
  f.retry_after_ms = e.getRetryAfterMs();
  f.param.assign(param.cStr(), std::min(param.size(), message_bytes_max));
  return f;
}

void write_error_outcome(const journal_summary::error_outcome& f, schema::Error::Builder out) {
  out.setCode(static_cast<schema::ErrorCode>(f.code));
  out.setReason(static_cast<schema::ErrorReason>(f.reason));
  out.setMessage(f.message);
  out.setRetryAfterMs(f.retry_after_ms);
}

}  // namespace

journal_summary::journal_summary(journal_summary_limits limits) : limits_(limits) {}

void journal_summary::remember_completion(std::string request_id, completion c) {
  // The first completion of a request id is its journaled outcome; a later one (which the
  // retry rule should prevent) does not replace it.
  if (completions_.count(request_id) != 0) return;
  completion_order_.emplace(c.index, request_id);
  completions_.emplace(std::move(request_id), std::move(c));
  while (completions_.size() > limits_.completions_max) {
    auto oldest = completion_order_.begin();
    completions_.erase(oldest->second);
    completion_order_.erase(oldest);
  }
}

void journal_summary::apply(std::uint64_t index, const std::vector<std::uint8_t>& payload) {
  applied_index_ = index;
  if (payload.size() > limits_.record_bytes_max) {
    ++unreadable_;
    return;
  }
  auto words = aligned_words(payload.data(), payload.size());
  if (!words) {
    ++unreadable_;
    return;
  }
  // Committed entries are not trusted to be JournalRecords (any client of propose() writes
  // bytes); a record that does not read is counted, never fatal.
  auto failure = kj::runCatchingExceptions([&] {
    capnp::FlatArrayMessageReader reader{*words, reader_options(payload.size())};
    auto record = reader.getRoot<schema_journal::JournalRecord>();
    switch (record.which()) {
      case schema_journal::JournalRecord::EPOCH_START: {
        auto e = record.getEpochStart();
        epoch_ = epoch_start{index, e.getEpoch(), e.getSite().cStr(), e.getLeaderId(), e.getTerm()};
        break;
      }
      case schema_journal::JournalRecord::CONFIGURATION_CHANGE: {
        auto c = record.getConfigurationChange();
        capnp::MallocMessageBuilder copy;
        copy.setRoot(c);
        auto subject = subject_of(c);
        configuration_[subject] =
            configuration_change{index, to_bytes(capnp::messageToFlatArray(copy))};
        while (configuration_.size() > limits_.configuration_max) {
          auto oldest = configuration_.begin();
          for (auto it = configuration_.begin(); it != configuration_.end(); ++it)
            if (it->second.index < oldest->second.index) oldest = it;
          configuration_.erase(oldest);
          ++configurations_evicted_;
        }
        break;
      }
      case schema_journal::JournalRecord::COMPLETION: {
        auto c = record.getCompletion();
        completion done{index, to_bytes(c.getOutputDigest()),
                        static_cast<std::uint16_t>(c.getFinishReason()), std::nullopt};
        if (c.hasError())
          done.error =
              error_outcome_of(c.getError(), c.getErrorParam(), limits_.error_message_bytes_max);
        remember_completion(c.getRequestId().cStr(), std::move(done));
        break;
      }
      case schema_journal::JournalRecord::ADMISSION:
        break;  // admissions matter only until their completion commits
    }
  });
  if (failure != nullptr) ++unreadable_;
}

std::vector<std::vector<std::uint8_t>> journal_summary::covered_records() const {
  std::vector<std::pair<std::uint64_t, std::vector<std::uint8_t>>> changes;
  for (const auto& [subject, change] : configuration_) {
    auto words = aligned_words(change.record.data(), change.record.size());
    if (!words) continue;  // written by apply() or restore(): always whole words
    capnp::FlatArrayMessageReader reader{*words, reader_options(change.record.size())};
    capnp::MallocMessageBuilder msg;
    msg.initRoot<schema_journal::JournalRecord>().setConfigurationChange(
        reader.getRoot<schema_journal::ConfigurationChange>());
    changes.emplace_back(change.index, to_bytes(capnp::messageToFlatArray(msg)));
  }
  std::sort(changes.begin(), changes.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<std::vector<std::uint8_t>> out;
  out.reserve(changes.size() + completion_order_.size());
  for (auto& [index, bytes] : changes) out.push_back(std::move(bytes));
  for (const auto& [index, request_id] : completion_order_) {
    const auto& c = completions_.at(request_id);
    capnp::MallocMessageBuilder msg;
    auto done = msg.initRoot<schema_journal::JournalRecord>().initCompletion();
    done.setRequestId(request_id);
    done.setOutputDigest(capnp::Data::Reader{c.output_digest.data(), c.output_digest.size()});
    done.setFinishReason(static_cast<schema::FinishReason>(c.finish_reason));
    if (c.error) {
      write_error_outcome(*c.error, done.initError());
      done.setErrorParam(c.error->param);
    }
    out.push_back(to_bytes(capnp::messageToFlatArray(msg)));
  }
  return out;
}

const journal_summary::completion* journal_summary::find_completion(
    const std::string& request_id) const {
  auto it = completions_.find(request_id);
  return it == completions_.end() ? nullptr : &it->second;
}

std::vector<std::uint8_t> journal_summary::serialize() const {
  capnp::MallocMessageBuilder msg;
  auto root = msg.initRoot<schema_journal::JournalSummary>();
  root.setAppliedIndex(applied_index_);
  root.setUnreadableRecords(unreadable_);
  if (epoch_) {
    root.setEpochStartIndex(epoch_->index);
    auto e = root.initEpochStart();
    e.setEpoch(epoch_->epoch);
    e.setSite(epoch_->site);
    e.setLeaderId(epoch_->leader_id);
    e.setTerm(epoch_->term);
  }
  auto conf = root.initConfiguration(static_cast<unsigned>(configuration_.size()));
  unsigned i = 0;
  for (const auto& [subject, change] : configuration_) {
    auto out = conf[i++];
    out.setSubject(subject);
    out.setIndex(change.index);
    // Written by apply() from a record that read, so it reads again.
    auto words = aligned_words(change.record.data(), change.record.size());
    capnp::FlatArrayMessageReader reader{*words, reader_options(change.record.size())};
    out.setChange(reader.getRoot<schema_journal::ConfigurationChange>());
  }
  auto done = root.initCompletions(static_cast<unsigned>(completion_order_.size()));
  i = 0;
  for (const auto& [index, request_id] : completion_order_) {
    const auto& c = completions_.at(request_id);
    auto out = done[i++];
    out.setRequestId(request_id);
    out.setIndex(index);
    out.setOutputDigest(capnp::Data::Reader{c.output_digest.data(), c.output_digest.size()});
    out.setFinishReason(static_cast<schema::FinishReason>(c.finish_reason));
    if (c.error) {
      write_error_outcome(*c.error, out.initError());
      out.setErrorParam(c.error->param);
    }
  }
  return to_bytes(capnp::messageToFlatArray(msg));
}

caf::error journal_summary::restore(const std::vector<std::uint8_t>& bytes) {
  if (bytes.size() > limits_.serialized_bytes_max)
    return make_error(replicator_errc::bad_snapshot,
                      "journal summary of " + std::to_string(bytes.size()) +
                          " bytes exceeds serialized_bytes_max " +
                          std::to_string(limits_.serialized_bytes_max));
  auto words = aligned_words(bytes.data(), bytes.size());
  if (!words)
    return make_error(replicator_errc::bad_snapshot,
                      "journal summary of " + std::to_string(bytes.size()) +
                          " bytes is not a whole number of Cap'n Proto words");
  journal_summary fresh{limits_};
  auto failure = kj::runCatchingExceptions([&] {
    capnp::FlatArrayMessageReader reader{*words, reader_options(bytes.size())};
    auto root = reader.getRoot<schema_journal::JournalSummary>();
    fresh.applied_index_ = root.getAppliedIndex();
    fresh.unreadable_ = root.getUnreadableRecords();
    if (root.getEpochStartIndex() != 0) {
      auto e = root.getEpochStart();
      fresh.epoch_ = epoch_start{root.getEpochStartIndex(), e.getEpoch(), e.getSite().cStr(),
                                 e.getLeaderId(), e.getTerm()};
    }
    for (auto c : root.getConfiguration()) {
      capnp::MallocMessageBuilder copy;
      copy.setRoot(c.getChange());
      fresh.configuration_[c.getSubject().cStr()] =
          configuration_change{c.getIndex(), to_bytes(capnp::messageToFlatArray(copy))};
    }
    for (auto c : root.getCompletions()) {
      completion done{c.getIndex(), to_bytes(c.getOutputDigest()),
                      static_cast<std::uint16_t>(c.getFinishReason()), std::nullopt};
      if (c.hasError())
        done.error = error_outcome_of(c.getError(), c.getErrorParam(),
                                      fresh.limits_.error_message_bytes_max);
      fresh.remember_completion(c.getRequestId().cStr(), std::move(done));
    }
  });
  KJ_IF_MAYBE (e, failure) {
    return make_error(replicator_errc::bad_snapshot,
                      "journal summary does not read: " + std::string{e->getDescription().cStr()});
  }
  *this = std::move(fresh);
  return caf::none;
}

}  // namespace bastion::actors
