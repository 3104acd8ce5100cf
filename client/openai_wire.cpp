#include "client/openai_wire.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdint>

namespace bastion::client_detail {

namespace {

using json = nlohmann::json;

// nlohmann::json 3.11 parses and destroys without recursion (an explicit stack in its parser and
// in basic_json's destroy), so deeply nested answers cost heap, bounded by the response limits,
// and never the stack. Nothing here copies, compares or dumps a parsed answer (those recurse).
std::optional<json> parse_json(std::string_view text) {
  auto parsed = json::parse(text.begin(), text.end(), nullptr, false);
  if (parsed.is_discarded()) return std::nullopt;
  return parsed;
}

std::string string_at(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) return {};
  return it->get<std::string>();
}

std::optional<finish_reason> reason_from(const std::string& s) {
  if (s == "stop") return finish_reason::stop;
  if (s == "length") return finish_reason::length;
  if (s == "cancelled") return finish_reason::cancelled;
  if (s == "deadline") return finish_reason::deadline;
  return std::nullopt;
}

const char* priority_name(priority p) {
  switch (p) {
    case priority::production:
      return "production";
    case priority::interactive:
      return "interactive";
    case priority::batch:
      return "batch";
    case priority::training:
      return "training";
  }
  return "interactive";
}

// Reads usage into `prompt` and `completion`; false when it is present but not the shape.
bool read_usage(const json& usage, std::uint32_t& prompt, std::uint32_t& completion) {
  if (!usage.is_object()) return false;
  auto p = usage.find("prompt_tokens");
  auto c = usage.find("completion_tokens");
  if (p == usage.end() || c == usage.end() || !p->is_number_unsigned() || !c->is_number_unsigned())
    return false;
  prompt = static_cast<std::uint32_t>(std::min<std::uint64_t>(p->get<std::uint64_t>(), UINT32_MAX));
  completion =
      static_cast<std::uint32_t>(std::min<std::uint64_t>(c->get<std::uint64_t>(), UINT32_MAX));
  return true;
}

}  // namespace

const char* path_for(const request& r) {
  return r.messages.empty() ? "/v1/completions" : "/v1/chat/completions";
}

std::optional<local_refusal> check_request(const request& r) {
  if (r.model.empty()) return local_refusal{"the request names no model", "model"};
  if (r.prompt.empty() && r.messages.empty())
    return local_refusal{"the request has neither a prompt nor messages", "prompt"};
  if (!r.prompt.empty() && !r.messages.empty())
    return local_refusal{"the request has both a prompt and messages; send one", "messages"};
  return std::nullopt;
}

std::string priority_header_value(priority p) { return priority_name(p); }

std::string render_request_body(const request& r, bool stream) {
  json body{{"model", r.model}, {"max_tokens", r.max_tokens}, {"stream", stream}};
  if (r.messages.empty()) {
    body["prompt"] = r.prompt;
  } else {
    json messages = json::array();
    for (const auto& m : r.messages) messages.push_back({{"role", m.role}, {"content", m.content}});
    body["messages"] = messages;
  }
  body["temperature"] = static_cast<double>(r.temperature);
  body["top_p"] = static_cast<double>(r.top_p);
  if (r.top_k != 0) body["top_k"] = r.top_k;
  if (r.repetition_penalty != 1.0F)
    body["repetition_penalty"] = static_cast<double>(r.repetition_penalty);
  if (r.seed != 0) body["seed"] = r.seed;
  if (!r.stop.empty()) body["stop"] = r.stop;
  // Invalid UTF-8 in the caller's strings is replaced, not thrown: the gateway sees U+FFFD.
  return body.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::optional<wire_error> parse_error_body(std::string_view body) {
  auto j = parse_json(body);
  if (!j || !j->is_object()) return std::nullopt;
  auto e = j->find("error");
  if (e == j->end() || !e->is_object()) return std::nullopt;
  wire_error out;
  out.message = string_at(*e, "message");
  out.type = string_at(*e, "type");
  out.code = string_at(*e, "code");
  out.param = string_at(*e, "param");
  return out;
}

bool read_fingerprint(std::string_view fingerprint, client_result& result) {
  constexpr std::string_view prefix = "bastion:";
  if (fingerprint.substr(0, prefix.size()) != prefix) return false;
  const auto rest = fingerprint.substr(prefix.size());
  const auto colon = rest.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 >= rest.size()) return false;
  const auto epoch = rest.substr(colon + 1);
  if (epoch.size() > 19 || epoch.find_first_not_of("0123456789") != std::string_view::npos)
    return false;
  result.site = std::string(rest.substr(0, colon));
  result.epoch = std::stoull(std::string(epoch));
  return true;
}

std::variant<client_result, std::string> parse_unary_answer(std::string_view body, bool chat) {
  auto j = parse_json(body);
  if (!j || !j->is_object()) return std::string("the answer is not a JSON object");
  auto choices = j->find("choices");
  if (choices == j->end() || !choices->is_array() || choices->empty() || !(*choices)[0].is_object())
    return std::string("the answer has no choices");
  const auto& choice = (*choices)[0];
  client_result out;
  if (chat) {
    auto m = choice.find("message");
    if (m == choice.end() || !m->is_object()) return std::string("the answer has no message");
    auto c = m->find("content");
    if (c == m->end() || !c->is_string()) return std::string("the answer's message has no content");
    out.text = c->get<std::string>();
  } else {
    auto t = choice.find("text");
    if (t == choice.end() || !t->is_string()) return std::string("the answer has no text");
    out.text = t->get<std::string>();
  }
  const auto reason = reason_from(string_at(choice, "finish_reason"));
  if (!reason) return std::string("the answer has no known finish_reason");
  out.reason = *reason;
  auto usage = j->find("usage");
  if (usage == j->end() || !read_usage(*usage, out.prompt_tokens, out.completion_tokens))
    return std::string("the answer has no usage");
  out.served_model = string_at(*j, "model");
  read_fingerprint(string_at(*j, "system_fingerprint"), out);
  return out;
}

std::variant<stream_chunk, std::string> parse_stream_chunk(std::string_view text, bool chat) {
  auto j = parse_json(text);
  if (!j || !j->is_object()) return std::string("a stream event is not a JSON object");
  stream_chunk out;
  if (auto e = j->find("error"); e != j->end()) {
    if (!e->is_object()) return std::string("a stream error event has no error object");
    out.error = wire_error{string_at(*e, "message"), string_at(*e, "type"), string_at(*e, "code"),
                           string_at(*e, "param")};
    return out;
  }
  out.model = string_at(*j, "model");
  out.fingerprint = string_at(*j, "system_fingerprint");
  if (auto usage = j->find("usage"); usage != j->end() && !usage->is_null()) {
    if (!read_usage(*usage, out.prompt_tokens, out.completion_tokens))
      return std::string("a stream event's usage is not the expected shape");
    out.has_usage = true;
  }
  auto choices = j->find("choices");
  if (choices == j->end() || !choices->is_array())
    return std::string("a stream event has no choices");
  if (choices->empty()) return out;  // the usage chunk of stream_options.include_usage
  const auto& choice = (*choices)[0];
  if (!choice.is_object()) return std::string("a stream event's choice is not an object");
  if (chat) {
    auto d = choice.find("delta");
    if (d == choice.end() || !d->is_object()) return std::string("a stream event has no delta");
    out.text = string_at(*d, "content");
  } else {
    out.text = string_at(choice, "text");
  }
  if (auto f = choice.find("finish_reason"); f != choice.end() && !f->is_null()) {
    const auto reason = reason_from(f->is_string() ? f->get<std::string>() : std::string());
    if (!reason) return std::string("a stream event has an unknown finish_reason");
    out.finish = *reason;
  }
  return out;
}

std::variant<std::vector<std::string>, std::string> sse_splitter::feed(std::string_view bytes) {
  std::vector<std::string> events;
  pending_.append(bytes.data(), bytes.size());
  std::size_t start = 0;
  while (true) {
    const auto eol = pending_.find('\n', start);
    if (eol == std::string::npos) break;
    std::string_view line(pending_.data() + start, eol - start);
    start = eol + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) {  // the blank line ends an event
      if (has_data_) events.push_back(std::move(data_));
      data_.clear();
      has_data_ = false;
      continue;
    }
    if (line.substr(0, 5) != "data:") continue;  // comments (":..."), event:, id:, retry:
    auto value = line.substr(5);
    if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    if (has_data_) data_ += '\n';
    data_.append(value.data(), value.size());
    has_data_ = true;
    if (data_.size() > event_bytes_max_) {
      return "a stream event is over the limit of " + std::to_string(event_bytes_max_) + " bytes";
    }
  }
  pending_.erase(0, start);
  if (pending_.size() > event_bytes_max_) {
    return "a stream line is over the limit of " + std::to_string(event_bytes_max_) + " bytes";
  }
  return events;
}

}  // namespace bastion::client_detail
