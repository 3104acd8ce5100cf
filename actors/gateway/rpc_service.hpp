#pragma once
// The Cap'n Proto RPC face of the gateway: schemas/inference.capnp's Inference interface on the
// same loop as the HTTP API, with the same keys, limits, port and metrics. One object per client
// connection (its bootstrap capability).
//
// Every outcome the client can act on comes back as a value: `inference` returns a Result whose
// union holds the Response or a typed Error; `inferenceStream` ends with sink.done(Result) and
// returns the request id once the stream is over. An RPC exception means only that the
// connection or the call itself broke.

#include "actors/gateway/gateway_context.hpp"
#include "actors/gateway/rpc_connection.hpp"
#include "schemas/inference.capnp.h"

#include <cstdint>
#include <memory>
#include <string>
#include <variant>

namespace bastion::gateway {

/// Reads, validates and admits one call's parameters: model, input, sampling ranges, request
/// id, API key and priority class. The bytes are untrusted: any malformed pointer becomes an
/// invalid_argument error, never an exception. On success the request is complete (id minted
/// when the client gave none, principal set).
std::variant<inference_request, inference_error> admit_rpc_request(gateway_context& ctx,
                                                                   capnp::Text::Reader model_id,
                                                                   schema::InputData::Reader input,
                                                                   schema::Params::Reader params,
                                                                   bool stream);

// KJ's and capnp's interface classes have protected or non-virtual destructors by design (KJ
// deletes through kj::Own's disposer), which -Wnon-virtual-dtor cannot tell apart from a bug.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnon-virtual-dtor"
class inference_rpc_service final : public schema::Inference::Server {
 public:
  /// `activity` is the connection's, for its idle watch to see the calls in flight; null
  /// counts nothing.
  explicit inference_rpc_service(gateway_context& ctx,
                                 std::shared_ptr<rpc_activity> activity = nullptr)
      : ctx_(ctx), activity_(std::move(activity)) {}

  /// capnp answers a call to an interface or method we do not implement with an
  /// "unimplemented" exception; counted as bastion_rpc_rejected_total{reason="unimplemented"}.
  /// Every call counts as in flight on its connection until it returns.
  DispatchCallResult dispatchCall(
      std::uint64_t interface_id, std::uint16_t method_id,
      capnp::CallContext<capnp::AnyPointer, capnp::AnyPointer> context) override;

 protected:
  kj::Promise<void> inference(InferenceContext context) override;
  kj::Promise<void> inferenceStream(InferenceStreamContext context) override;

 private:
  gateway_context& ctx_;
  std::shared_ptr<rpc_activity> activity_;
};
#pragma GCC diagnostic pop

}  // namespace bastion::gateway
