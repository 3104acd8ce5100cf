// A Cap'n Proto request crosses two actor systems connected by CAF's middleman on loopback,
// inside a wire::frame, and the answer comes back the same way; a malformed frame sent over
// the same link gets the typed wire error, and the serving actor keeps serving.

#include "runtime/wire/announce.hpp"
#include "runtime/wire/frame.hpp"
#include "schemas/inference.capnp.h"

#include <catch2/catch.hpp>

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include <capnp/message.h>

using namespace bastion;
using wire::frame;
using wire::frame_kind;

namespace {

// An "echo model" service: reads an InferenceRequest frame, answers with a Result frame
// whose text is the prompt reversed. Frames it cannot read are answered with the wire error.
using frame_service = caf::typed_actor<caf::replies_to<frame>::with<frame>>;

// Takes the site it reports as an argument: CAF 0.17 spawning a function actor with no
// arguments binds a null shared_ptr inside its own headers, which UBSan reports.
frame_service::behavior_type echo_service(frame_service::pointer, std::string site) {
  return {
      [site](const frame& in) -> caf::result<frame> {
        auto view = wire::open_frame(in, frame_kind::inference_request);
        if (!view) return std::move(view.error());
        auto req = (*view)->root<schema::InferenceRequest>();
        std::string prompt = req.getInputData().getPrompt();
        capnp::MallocMessageBuilder msg;
        auto res = msg.initRoot<schema::Result>().initResponse();
        res.setRequestId(req.getParams().getRequestId());
        res.setModelId(req.getModelId());
        res.setText(std::string(prompt.rbegin(), prompt.rend()));
        res.setFinishReason(schema::FinishReason::STOP);
        res.initUsage().setPromptTokens(static_cast<std::uint32_t>(prompt.size()));
        res.setSite(site);
        return wire::make_frame(frame_kind::inference_result, msg, {0, in.epoch, in.sequence});
      },
  };
}

struct node_config : caf::actor_system_config {
  node_config() {
    wire::announce_wire_types(*this);
    load<caf::io::middleman>();
    set("logger.console-verbosity", caf::atom("quiet"));
    set("scheduler.max-threads", 2);
  }
};

frame request(const std::string& prompt, std::uint64_t seq) {
  capnp::MallocMessageBuilder msg;
  auto req = msg.initRoot<schema::InferenceRequest>();
  req.setModelId("echo");
  req.initInputData().setPrompt(prompt);
  req.initParams().setRequestId("req-" + std::to_string(seq));
  return wire::make_frame(frame_kind::inference_request, msg, {0, 1, seq});
}

}  // namespace

TEST_CASE("a Cap'n Proto request round-trips through wire::frame between two nodes") {
  node_config server_cfg, client_cfg;
  caf::actor_system server{server_cfg};
  caf::actor_system client{client_cfg};

  auto service = server.spawn(echo_service, std::string{"prod"});
  auto port = server.middleman().publish(service, 0, "127.0.0.1");
  REQUIRE(port);
  auto remote = client.middleman().remote_actor<frame_service>("127.0.0.1", *port);
  REQUIRE(remote);

  caf::scoped_actor self{client};
  for (std::uint64_t seq = 1; seq <= 3; ++seq) {
    std::string text;
    std::uint64_t echoed_seq = 0;
    self->request(*remote, std::chrono::seconds{10}, request("Paris" + std::to_string(seq), seq))
        .receive(
            [&](const frame& reply) {
              echoed_seq = reply.sequence;
              auto view = wire::open_frame(reply, frame_kind::inference_result);
              REQUIRE(view);
              auto result = (*view)->root<schema::Result>();
              REQUIRE(result.isResponse());
              text = result.getResponse().getText();
              CHECK(std::string{result.getResponse().getRequestId().cStr()} ==
                    "req-" + std::to_string(seq));
            },
            [&](const caf::error& err) { FAIL(client.render(err)); });
    CHECK(text == std::to_string(seq) + "siraP");
    CHECK(echoed_seq == seq);
  }

  // A frame whose payload is garbage crosses the link and comes back as the typed error.
  auto bad = request("x", 9);
  bad.payload.assign(24, 0xff);
  bool got_error = false;
  self->request(*remote, std::chrono::seconds{10}, bad)
      .receive([&](const frame&) { FAIL("garbage frame was accepted"); },
               [&](const caf::error& err) {
                 got_error = true;
                 CHECK(err.category() == wire::wire_category::value);
                 CHECK(err.code() == static_cast<std::uint8_t>(wire::wire_errc::malformed_message));
                 CHECK_THAT(client.render(err), Catch::Contains("malformed_message"));
               });
  CHECK(got_error);

  // And the service still answers.
  bool answered = false;
  self->request(*remote, std::chrono::seconds{10}, request("ok", 10))
      .receive([&](const frame&) { answered = true; },
               [&](const caf::error& err) { FAIL(client.render(err)); });
  CHECK(answered);

  self->send_exit(service, caf::exit_reason::user_shutdown);
}
