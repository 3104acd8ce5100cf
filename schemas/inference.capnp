@0xfdfd1b1fce65246a;
# The client-facing contract: the customer's `Inference(model_id, input_data, params) ->
# response` (REQUIREMENTS.md point 2.1), unary and streaming. Field numbers are forever: add
# fields at the end, never renumber, so sites on different Bastion versions interoperate.

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("bastion::schema");

enum Priority {
  # Scheduler classes, highest first (DESIGN.md §4). Production preempts the others.
  production @0;
  interactive @1;
  batch @2;
  training @3;
}

struct ChatMessage {
  role @0 :Text;      # "system", "user" or "assistant"
  content @1 :Text;
}

struct InputData {
  union {
    prompt @0 :Text;                 # raw completion prompt
    chat @1 :List(ChatMessage);      # rendered with the model's chat template
    tokens @2 :List(UInt32);         # pre-tokenized input
  }
}

struct Params {
  maxTokens @0 :UInt32 = 256;
  temperature @1 :Float32 = 0.0;     # 0 = greedy
  topK @2 :UInt32 = 0;               # 0 = off
  topP @3 :Float32 = 1.0;
  repetitionPenalty @4 :Float32 = 1.0;
  seed @5 :UInt64 = 0;
  stop @6 :List(Text);               # stop strings
  priority @7 :Priority = interactive;
  deadlineMs @8 :UInt32 = 0;         # 0 = the server's default deadline
  requestId @9 :Text;                # empty: the gateway mints one and returns it
  apiKey @10 :Text;                  # the client's API key (the server compares its SHA-256)
}

enum FinishReason {
  stop @0;        # EOS or a stop string
  length @1;      # maxTokens reached
  cancelled @2;
  deadline @3;
}

struct Usage {
  promptTokens @0 :UInt32;
  completionTokens @1 :UInt32;
}

struct Response {
  requestId @0 :Text;
  modelId @1 :Text;      # the model that answered (a configured fallback names itself here)
  text @2 :Text;
  finishReason @3 :FinishReason;
  usage @4 :Usage;
  site @5 :Text;         # the site that released the answer
  epoch @6 :UInt64;      # the primary's epoch when it was released
}

enum ErrorCode {
  invalidArgument @0;    # malformed or out-of-range input
  unknownModel @1;
  overloaded @2;         # retry after retryAfterMs
  deadlineExceeded @3;
  notPrimary @4;         # retryable: leaderAddress says where to go
  outcomeUnknown @5;     # retryable with the same requestId
  unauthenticated @6;
  permissionDenied @7;
  internal @8;
  cancelled @9;
}

enum ErrorReason {
  # A finer reason under an ErrorCode, for clients that act on it. A client that does not know a
  # newer value acts on the code alone.
  unspecified @0;
  promptTooLong @1;      # invalidArgument: the prompt (or chat) leaves no room in the model's
                         # context; OpenAI's "context_length_exceeded"
}

struct Error {
  code @0 :ErrorCode;
  message @1 :Text;
  requestId @2 :Text;
  retryAfterMs @3 :UInt32;
  leaderAddress @4 :Text;
  reason @5 :ErrorReason;
}

struct Result {
  union {
    response @0 :Response;
    error @1 :Error;
  }
}

# The same request as the RPC call's parameters, as one struct: this is what crosses a node
# boundary inside a wire::frame (gateway at one node, scheduler at another).
struct InferenceRequest {
  modelId @0 :Text;
  inputData @1 :InputData;
  params @2 :Params;
}

interface TokenSink {
  # Streaming receiver supplied by the client. `token` uses Cap'n Proto flow control, so a
  # client that stops reading slows its own stream only.
  token @0 (text :Text, tokenId :UInt32) -> stream;
  done @1 (result :Result) -> ();   # the final event: finish reason and usage, or the error
}

interface Inference {
  inference @0 (modelId :Text, inputData :InputData, params :Params) -> (result :Result);
  inferenceStream @1 (modelId :Text, inputData :InputData, params :Params, sink :TokenSink)
      -> (requestId :Text);
}
