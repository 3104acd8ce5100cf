#include "actors/gateway/openai_protocol.hpp"

#include <nlohmann/json.hpp>

#include <cmath>
#include <limits>
#include <optional>
#include <utility>

namespace bastion::gateway {

using nlohmann::json;

namespace {

// Model output may end in the middle of a UTF-8 sequence (a token is not a character); replace
// invalid bytes instead of throwing while rendering.
std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

client_error invalid(std::string message, std::string param) {
  return client_error{error_code::invalid_argument, std::move(message), std::move(param)};
}

// A field that is absent or null means "the default", as in OpenAI's API.
const json* field(const json& body, const char* name) {
  const auto it = body.find(name);
  if (it == body.end() || it->is_null()) return nullptr;
  return &*it;
}

std::optional<client_error> read_number(const json& body, const char* name, double lo, bool lo_open,
                                        double hi, float& out) {
  const json* v = field(body, name);
  if (v == nullptr) return std::nullopt;
  if (!v->is_number()) return invalid(std::string("'") + name + "' must be a number", name);
  const double d = v->get<double>();
  const bool below = lo_open ? !(d > lo) : !(d >= lo);
  if (!std::isfinite(d) || below || d > hi) {
    return invalid(std::string("'") + name + "' must be in " + (lo_open ? "(" : "[") +
                       json(lo).dump() + ", " + json(hi).dump() + "], got " + v->dump(),
                   name);
  }
  out = static_cast<float>(d);
  return std::nullopt;
}

std::optional<client_error> read_bool(const json& body, const char* name, bool& out) {
  const json* v = field(body, name);
  if (v == nullptr) return std::nullopt;
  if (!v->is_boolean()) return invalid(std::string("'") + name + "' must be a boolean", name);
  out = v->get<bool>();
  return std::nullopt;
}

// Fields OpenAI defines whose non-default values Bastion cannot honour: refuse instead of
// silently answering something else.
std::optional<client_error> refuse_unsupported(const json& body, api_kind kind) {
  if (const json* n = field(body, "n")) {
    if (!n->is_number_integer() || n->get<std::int64_t>() != 1) {
      return invalid("'n' must be 1: Bastion returns one choice per request", "n");
    }
  }
  if (const json* b = field(body, "best_of")) {
    if (!b->is_number_integer() || b->get<std::int64_t>() != 1) {
      return invalid("'best_of' must be 1", "best_of");
    }
  }
  for (const char* name : {"frequency_penalty", "presence_penalty"}) {
    if (const json* p = field(body, name)) {
      if (!p->is_number()) return invalid(std::string("'") + name + "' must be a number", name);
      if (p->get<double>() != 0.0) {
        return invalid(std::string("'") + name +
                           "' is not supported (use repetition_penalty); only 0 is accepted",
                       name);
      }
    }
  }
  if (const json* lb = field(body, "logit_bias")) {
    if (!lb->is_object() || !lb->empty()) {
      return invalid("'logit_bias' is not supported", "logit_bias");
    }
  }
  if (const json* lp = field(body, "logprobs")) {
    const bool off = (lp->is_boolean() && !lp->get<bool>()) ||
                     (lp->is_number_integer() && lp->get<std::int64_t>() == 0);
    if (!off) return invalid("'logprobs' is not supported", "logprobs");
  }
  if (kind == api_kind::completions) {
    if (const json* e = field(body, "echo")) {
      if (!e->is_boolean() || e->get<bool>()) return invalid("'echo' is not supported", "echo");
    }
    if (const json* s = field(body, "suffix")) {
      if (!s->is_string() || !s->get<std::string>().empty()) {
        return invalid("'suffix' is not supported", "suffix");
      }
    }
  } else {
    for (const char* name : {"tools", "functions"}) {
      if (const json* t = field(body, name)) {
        if (!t->is_array() || !t->empty()) {
          return invalid(std::string("'") + name + "' (tool calling) is not supported", name);
        }
      }
    }
    if (const json* rf = field(body, "response_format")) {
      const json* type = rf->is_object() ? field(*rf, "type") : nullptr;
      if (type == nullptr || !type->is_string() || type->get<std::string>() != "text") {
        return invalid("'response_format' other than {\"type\": \"text\"} is not supported",
                       "response_format");
      }
    }
  }
  return std::nullopt;
}

std::optional<client_error> read_token_ids(const json& arr, const std::string& param,
                                           std::uint32_t context, std::vector<std::uint32_t>& out) {
  if (arr.empty()) return invalid("'" + param + "' must not be empty", param);
  if (arr.size() > context) {
    auto e = invalid("'" + param + "' has " + std::to_string(arr.size()) +
                         " tokens, more than the model's context of " + std::to_string(context),
                     param);
    e.reason = error_reason::prompt_too_long;
    return e;
  }
  out.reserve(arr.size());
  for (const auto& t : arr) {
    if (!t.is_number_unsigned() ||
        t.get<std::uint64_t>() > std::numeric_limits<std::uint32_t>::max()) {
      return invalid("'" + param + "' token ids must be integers in [0, 2^32)", param);
    }
    out.push_back(static_cast<std::uint32_t>(t.get<std::uint64_t>()));
  }
  return std::nullopt;
}

std::optional<client_error> read_prompt(const json& body, std::uint32_t context,
                                        inference_input& out) {
  const json* p = field(body, "prompt");
  if (p == nullptr) return invalid("'prompt' is required", "prompt");
  if (p->is_string()) {
    if (p->get_ref<const std::string&>().empty())
      return invalid("'prompt' must not be empty", "prompt");
    out = p->get<std::string>();
    return std::nullopt;
  }
  if (!p->is_array()) {
    return invalid(
        "'prompt' must be a string, an array of token ids, or an array holding one of those",
        "prompt");
  }
  if (p->empty()) return invalid("'prompt' must not be empty", "prompt");
  const json& first = p->front();
  if (first.is_number()) {
    std::vector<std::uint32_t> ids;
    if (auto e = read_token_ids(*p, "prompt", context, ids)) return e;
    out = std::move(ids);
    return std::nullopt;
  }
  // A batch of prompts: Bastion takes exactly one per request.
  if (p->size() != 1)
    return invalid("'prompt' holds more than one prompt; send one per request", "prompt");
  if (first.is_string()) {
    if (first.get_ref<const std::string&>().empty())
      return invalid("'prompt' must not be empty", "prompt");
    out = first.get<std::string>();
    return std::nullopt;
  }
  if (first.is_array()) {
    std::vector<std::uint32_t> ids;
    if (auto e = read_token_ids(first, "prompt[0]", context, ids)) return e;
    out = std::move(ids);
    return std::nullopt;
  }
  return invalid(
      "'prompt' must be a string, an array of token ids, or an array holding one of those",
      "prompt");
}

std::optional<client_error> read_messages(const json& body, const parse_limits& limits,
                                          inference_input& out) {
  const json* m = field(body, "messages");
  if (m == nullptr) return invalid("'messages' is required", "messages");
  if (!m->is_array()) return invalid("'messages' must be an array", "messages");
  if (m->empty()) return invalid("'messages' must not be empty", "messages");
  if (m->size() > limits.chat_messages_max) {
    return invalid(
        "'messages' has more than " + std::to_string(limits.chat_messages_max) + " entries",
        "messages");
  }
  std::vector<chat_message> messages;
  messages.reserve(m->size());
  for (std::size_t i = 0; i < m->size(); ++i) {
    const json& msg = (*m)[i];
    const std::string where = "messages[" + std::to_string(i) + "]";
    if (!msg.is_object()) return invalid("'" + where + "' must be an object", where);
    const json* role = field(msg, "role");
    if (role == nullptr || !role->is_string())
      return invalid("'" + where + ".role' is required", where + ".role");
    std::string r = role->get<std::string>();
    if (r == "developer") r = "system";  // OpenAI's newer name for system instructions
    if (r != "system" && r != "user" && r != "assistant") {
      return invalid("'" + where + ".role' must be system, user or assistant, got '" +
                         role->get<std::string>() + "'",
                     where + ".role");
    }
    const json* content = field(msg, "content");
    if (content == nullptr)
      return invalid("'" + where + ".content' is required", where + ".content");
    std::string text;
    if (content->is_string()) {
      text = content->get<std::string>();
    } else if (content->is_array()) {
      // Content parts: only text parts can be served by a text model.
      for (std::size_t k = 0; k < content->size(); ++k) {
        const json& part = (*content)[k];
        const std::string part_where = where + ".content[" + std::to_string(k) + "]";
        const json* type = part.is_object() ? field(part, "type") : nullptr;
        const json* part_text = part.is_object() ? field(part, "text") : nullptr;
        if (type == nullptr || !type->is_string() || type->get<std::string>() != "text" ||
            part_text == nullptr || !part_text->is_string()) {
          return invalid(
              "'" + part_where + "' must be a text part {\"type\": \"text\", \"text\": ...}",
              part_where);
        }
        text += part_text->get<std::string>();
      }
    } else {
      return invalid("'" + where + ".content' must be a string or an array of text parts",
                     where + ".content");
    }
    messages.push_back(chat_message{std::move(r), std::move(text)});
  }
  out = std::move(messages);
  return std::nullopt;
}

std::optional<client_error> read_stop(const json& body, const parse_limits& limits,
                                      std::vector<std::string>& out) {
  const json* s = field(body, "stop");
  if (s == nullptr) return std::nullopt;
  auto take = [&](const json& v) -> std::optional<client_error> {
    if (!v.is_string()) return invalid("'stop' must be a string or an array of strings", "stop");
    const auto& str = v.get_ref<const std::string&>();
    if (str.empty()) return invalid("'stop' strings must not be empty", "stop");
    if (str.size() > limits.stop_bytes_max) {
      return invalid(
          "'stop' strings must be at most " + std::to_string(limits.stop_bytes_max) + " bytes",
          "stop");
    }
    out.push_back(str);
    return std::nullopt;
  };
  if (s->is_string()) return take(*s);
  if (!s->is_array()) return invalid("'stop' must be a string or an array of strings", "stop");
  if (s->size() > limits.stop_strings_max) {
    return invalid(
        "'stop' may hold at most " + std::to_string(limits.stop_strings_max) + " strings", "stop");
  }
  for (const auto& v : *s) {
    if (auto e = take(v)) return e;
  }
  return std::nullopt;
}

std::variant<openai_request, client_error> parse_object(api_kind kind, const json& body,
                                                        const parse_limits& limits,
                                                        const std::vector<model_info>& models) {
  if (!body.is_object()) return invalid("the request body must be a JSON object", "");
  openai_request req;

  const json* model = field(body, "model");
  if (model == nullptr || !model->is_string() || model->get_ref<const std::string&>().empty()) {
    return invalid("'model' is required and must be a non-empty string", "model");
  }
  req.model = model->get<std::string>();
  const model_info* info = nullptr;
  for (const auto& m : models) {
    if (m.id == req.model) info = &m;
  }
  if (info == nullptr) {
    return client_error{error_code::unknown_model,
                        "The model '" + req.model + "' does not exist on this node", "model"};
  }
  const std::uint32_t context = info->context_tokens_max;

  if (auto e = refuse_unsupported(body, kind)) return *e;
  if (kind == api_kind::completions) {
    if (auto e = read_prompt(body, context, req.input)) return *e;
  } else {
    if (auto e = read_messages(body, limits, req.input)) return *e;
  }

  // max_tokens: OpenAI's default is 16 for completions and "up to the context" for chat.
  req.params.max_tokens =
      kind == api_kind::completions ? std::min<std::uint32_t>(16, context) : context;
  const char* max_name = "max_tokens";
  const json* max_tokens = field(body, "max_tokens");
  if (kind == api_kind::chat) {
    if (const json* mct = field(body, "max_completion_tokens")) {
      max_tokens = mct;
      max_name = "max_completion_tokens";
    }
  }
  if (max_tokens != nullptr) {
    if (!max_tokens->is_number_integer()) {
      return invalid(std::string("'") + max_name + "' must be an integer", max_name);
    }
    const auto v = max_tokens->get<std::int64_t>();
    if (v < 1 || v > static_cast<std::int64_t>(context)) {
      return invalid(std::string("'") + max_name + "' must be in [1, " + std::to_string(context) +
                         "] (the model's context), got " + std::to_string(v),
                     max_name);
    }
    req.params.max_tokens = static_cast<std::uint32_t>(v);
  }

  if (auto e = read_number(body, "temperature", 0.0, false, 2.0, req.params.temperature)) return *e;
  if (auto e = read_number(body, "top_p", 0.0, true, 1.0, req.params.top_p)) return *e;
  if (auto e =
          read_number(body, "repetition_penalty", 0.0, true, 10.0, req.params.repetition_penalty)) {
    return *e;
  }
  if (const json* top_k = field(body, "top_k")) {
    if (!top_k->is_number_integer() || top_k->get<std::int64_t>() < 0 ||
        top_k->get<std::int64_t>() > std::numeric_limits<std::uint32_t>::max()) {
      return invalid("'top_k' must be an integer >= 0 (0 = off)", "top_k");
    }
    req.params.top_k = static_cast<std::uint32_t>(top_k->get<std::int64_t>());
  }
  if (const json* seed = field(body, "seed")) {
    if (!seed->is_number_integer()) return invalid("'seed' must be an integer", "seed");
    // OpenAI seeds are signed 64-bit; the bits are what matter to the sampler.
    req.params.seed = seed->is_number_unsigned()
                          ? seed->get<std::uint64_t>()
                          : static_cast<std::uint64_t>(seed->get<std::int64_t>());
  }
  if (auto e = read_stop(body, limits, req.params.stop)) return *e;
  if (auto e = read_bool(body, "stream", req.stream)) return *e;
  if (const json* so = field(body, "stream_options")) {
    if (!so->is_object()) return invalid("'stream_options' must be an object", "stream_options");
    if (!req.stream)
      return invalid("'stream_options' is only allowed with 'stream': true", "stream_options");
    if (auto e = read_bool(*so, "include_usage", req.include_usage)) {
      e->param = "stream_options.include_usage";
      return *e;
    }
  }
  return req;
}

json usage_json(const usage_counts& u) {
  return json{{"prompt_tokens", u.prompt_tokens},
              {"completion_tokens", u.completion_tokens},
              {"total_tokens", u.prompt_tokens + u.completion_tokens}};
}

json chunk_base(api_kind kind, const response_meta& meta) {
  return json{{"id", meta.id},
              {"object", kind == api_kind::chat ? "chat.completion.chunk" : "text_completion"},
              {"created", meta.created_unix_s},
              {"model", meta.model}};
}

}  // namespace

std::variant<openai_request, client_error> parse_openai_request(
    api_kind kind, std::string_view body, const parse_limits& limits,
    const std::vector<model_info>& models) {
  json parsed;
  try {
    parsed = json::parse(body.begin(), body.end());
  } catch (const json::parse_error& e) {
    return invalid("the request body is not valid JSON: error at byte " + std::to_string(e.byte) +
                       ": " + e.what(),
                   "");
  }
  try {
    return parse_object(kind, parsed, limits, models);
  } catch (const json::exception& e) {
    // A type mismatch the checks above missed is still the client's bad input, not a crash.
    return invalid(std::string("the request body could not be read: ") + e.what(), "");
  }
}

const char* finish_reason_name(finish_reason reason) {
  switch (reason) {
    case finish_reason::stop:
      return "stop";
    case finish_reason::length:
      return "length";
    case finish_reason::cancelled:
      return "cancelled";
    case finish_reason::deadline:
      return "deadline";
  }
  return "stop";
}

std::string render_response(api_kind kind, const response_meta& meta, const final_result& result) {
  json choice;
  if (kind == api_kind::chat) {
    choice = json{{"index", 0},
                  {"message", {{"role", "assistant"}, {"content", result.text}}},
                  {"logprobs", nullptr},
                  {"finish_reason", finish_reason_name(result.reason)}};
  } else {
    choice = json{{"index", 0},
                  {"text", result.text},
                  {"logprobs", nullptr},
                  {"finish_reason", finish_reason_name(result.reason)}};
  }
  json body{{"id", meta.id},
            {"object", kind == api_kind::chat ? "chat.completion" : "text_completion"},
            {"created", meta.created_unix_s},
            {"model", meta.model},
            {"system_fingerprint", nullptr},
            {"choices", json::array({choice})},
            {"usage", usage_json(result.usage)}};
  // Which site released the answer, in which epoch (a field OpenAI defines for the serving
  // configuration): a retry answered from the journal names the original release.
  if (const auto fp = system_fingerprint_of(result); !fp.empty()) body["system_fingerprint"] = fp;
  return dump(body);
}

std::string render_text_chunk(api_kind kind, const response_meta& meta, std::string_view text,
                              bool with_role) {
  json chunk = chunk_base(kind, meta);
  json choice{{"index", 0}, {"logprobs", nullptr}, {"finish_reason", nullptr}};
  if (kind == api_kind::chat) {
    json delta{{"content", std::string(text)}};
    if (with_role) delta["role"] = "assistant";
    choice["delta"] = delta;
  } else {
    choice["text"] = std::string(text);
  }
  chunk["choices"] = json::array({choice});
  return dump(chunk);
}

std::string system_fingerprint_of(const final_result& result) {
  if (result.site.empty()) return {};
  return "bastion:" + result.site + ":" + std::to_string(result.epoch);
}

std::string render_finish_chunk(api_kind kind, const response_meta& meta, finish_reason reason,
                                const usage_counts* usage, std::string_view fingerprint) {
  json chunk = chunk_base(kind, meta);
  chunk["system_fingerprint"] =
      fingerprint.empty() ? json(nullptr) : json(std::string(fingerprint));
  json choice{{"index", 0}, {"logprobs", nullptr}, {"finish_reason", finish_reason_name(reason)}};
  if (kind == api_kind::chat) {
    choice["delta"] = json::object();
  } else {
    choice["text"] = "";
  }
  chunk["choices"] = json::array({choice});
  chunk["usage"] = usage != nullptr ? usage_json(*usage) : json(nullptr);
  return dump(chunk);
}

std::string render_usage_chunk(api_kind kind, const response_meta& meta, const usage_counts& usage,
                               std::string_view fingerprint) {
  json chunk = chunk_base(kind, meta);
  chunk["system_fingerprint"] =
      fingerprint.empty() ? json(nullptr) : json(std::string(fingerprint));
  chunk["choices"] = json::array();
  chunk["usage"] = usage_json(usage);
  return dump(chunk);
}

std::string render_models(const std::vector<model_info>& models) {
  json data = json::array();
  for (const auto& m : models) {
    data.push_back(json{{"id", m.id},
                        {"object", "model"},
                        {"created", m.created_unix_s},
                        {"owned_by", m.owned_by}});
  }
  return dump(json{{"object", "list"}, {"data", data}});
}

std::string render_error_body(std::string_view message, std::string_view type,
                              std::string_view param, std::string_view code) {
  json err{{"message", std::string(message)},
           {"type", std::string(type)},
           {"param", param.empty() ? json(nullptr) : json(std::string(param))},
           {"code", std::string(code)}};
  return dump(json{{"error", err}});
}

http_error_shape http_shape_for(error_code code, error_reason reason) {
  auto shape = http_shape_for(code);
  // OpenAI's own code for it, which its clients and SDKs look for.
  if (code == error_code::invalid_argument && reason == error_reason::prompt_too_long)
    shape.code = "context_length_exceeded";
  return shape;
}

http_error_shape http_shape_for(error_code code) {
  switch (code) {
    case error_code::invalid_argument:
      return {400, "Bad Request", "invalid_request_error", "invalid_argument"};
    case error_code::unknown_model:
      return {404, "Not Found", "invalid_request_error", "model_not_found"};
    case error_code::overloaded:
      return {429, "Too Many Requests", "rate_limit_error", "overloaded"};
    case error_code::deadline_exceeded:
      return {504, "Gateway Timeout", "timeout_error", "deadline_exceeded"};
    case error_code::not_primary:
      return {503, "Service Unavailable", "not_primary_error", "not_primary"};
    case error_code::outcome_unknown:
      return {503, "Service Unavailable", "server_error", "outcome_unknown"};
    case error_code::unauthenticated:
      return {401, "Unauthorized", "authentication_error", "invalid_api_key"};
    case error_code::permission_denied:
      return {403, "Forbidden", "permission_error", "permission_denied"};
    case error_code::internal:
      return {500, "Internal Server Error", "server_error", "internal"};
    case error_code::cancelled:
      return {503, "Service Unavailable", "server_error", "cancelled"};
  }
  return {};
}

}  // namespace bastion::gateway
