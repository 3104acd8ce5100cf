#include "actors/gateway/gateway_server.hpp"

#include "actors/gateway/api_keys.hpp"
#include "actors/gateway/gateway_context.hpp"
#include "actors/gateway/http_api.hpp"
#include "actors/gateway/openai_protocol.hpp"
#include "actors/gateway/rpc_connection.hpp"
#include "actors/gateway/rpc_service.hpp"

#include <kj/async-io.h>
#include <kj/compat/http.h>
#include <kj/debug.h>

#include <atomic>
#include <future>
#include <mutex>
#include <thread>
#include <utility>

namespace bastion::gateway {

namespace {

constexpr auto refuse_linger = 1 * kj::SECONDS;
constexpr std::size_t refuse_drain_bytes_max = 65536;

kj::Promise<void> drain_input(kj::AsyncIoStream& stream, std::size_t left) {
  if (left == 0) return kj::READY_NOW;
  auto buffer = kj::heapArray<kj::byte>(4096);
  auto& ref = buffer;
  return stream.tryRead(ref.begin(), 1, ref.size())
      .then([&stream, left](std::size_t n) -> kj::Promise<void> {
        if (n == 0) return kj::READY_NOW;
        return drain_input(stream, n >= left ? 0 : left - n);
      })
      .attach(kj::mv(buffer));
}

}  // namespace

// Everything that lives on the loop thread, declared in teardown order: connection tasks first
// (they use everything else), then accept loops, listeners, servers and the shared context.
class gateway_loop final : private kj::TaskSet::ErrorHandler {
 public:
  gateway_loop(const gateway_settings& settings, inference_port& port, metrics::registry& registry,
               const clock_source& clock, std::function<bool()> ready, id_source mint_id,
               const api_key_table& keys, kj::AsyncIoContext& io)
      : io_(io),
        metrics_(registry),
        ctx_{settings,
             port,
             keys,
             metrics_,
             registry,
             clock,
             std::move(ready),
             std::move(mint_id),
             io.provider->getTimer()},
        api_(ctx_, header_builder_),
        errors_(api_),
        table_(header_builder_.build()),
        http_server_(
            io.provider->getTimer(), *table_,
            [this](kj::AsyncIoStream& conn) -> kj::Own<kj::HttpService> {
              return kj::heap<http_connection_service>(api_, conn);
            },
            http_server_settings()),
        tasks_(*this) {}

  /// Binds the enabled listeners. Throws kj::Exception when a bind fails.
  void set_admin(admin_port* admin) { ctx_.admin = admin; }

  void listen() {
    auto& network = io_.provider->getNetwork();
    const auto& s = ctx_.settings;
    if (s.http_enabled) {
      auto addr = network.parseAddress(s.http_listen.host, s.http_listen.port).wait(io_.waitScope);
      http_listener_ = addr->listen();
      http_port = static_cast<std::uint16_t>(http_listener_->getPort());
      http_accepting_ = accept_http();
    }
    if (s.rpc_enabled) {
      auto addr = network.parseAddress(s.rpc_listen.host, s.rpc_listen.port).wait(io_.waitScope);
      rpc_listener_ = addr->listen();
      rpc_port = static_cast<std::uint16_t>(rpc_listener_->getPort());
      rpc_accepting_ = accept_rpc();
    }
  }

  /// Stop accepting, then wait (bounded) for in-flight requests to finish.
  void drain() {
    http_accepting_ = nullptr;
    rpc_accepting_ = nullptr;
    http_listener_ = nullptr;
    rpc_listener_ = nullptr;
    auto bound =
        io_.provider->getTimer().afterDelay(ctx_.settings.drain_timeout_ms * kj::MILLISECONDS);
    auto drained = http_server_.drain().then([this]() { return until_idle(); });
    drained.exclusiveJoin(kj::mv(bound)).wait(io_.waitScope);
  }

  std::uint16_t http_port = 0;
  std::uint16_t rpc_port = 0;

 private:
  kj::HttpServerSettings http_server_settings() {
    kj::HttpServerSettings s;
    s.headerTimeout = ctx_.settings.idle_timeout_ms * kj::MILLISECONDS;
    s.pipelineTimeout = ctx_.settings.idle_timeout_ms * kj::MILLISECONDS;
    s.errorHandler = errors_;
    return s;
  }

  kj::Promise<void> until_idle() {
    if (ctx_.in_flight == 0) return kj::READY_NOW;
    return io_.provider->getTimer().afterDelay(10 * kj::MILLISECONDS).then([this]() {
      return until_idle();
    });
  }

  kj::Promise<void> accept_http() {
    return http_listener_->accept().then([this](kj::Own<kj::AsyncIoStream> conn) {
      if (http_connections_ >= ctx_.settings.connections_max) {
        metrics_.http_rejected("connections_max");
        refuse(kj::mv(conn),
               "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
               "Connection: close\r\nRetry-After: 1\r\nContent-Length: ",
               render_error_body("Too many connections; retry later", "server_error", "",
                                 "connections_max"));
      } else {
        ++http_connections_;
        metrics_.http_connections.set(static_cast<double>(http_connections_));
        tasks_.add(http_server_.listenHttp(kj::mv(conn))
                       .catch_([](kj::Exception&&) {
                         // A broken or hostile connection ends here; the server keeps serving.
                       })
                       .attach(kj::defer([this]() {
                         --http_connections_;
                         metrics_.http_connections.set(static_cast<double>(http_connections_));
                       })));
      }
      return accept_http();
    });
  }

  kj::Promise<void> accept_rpc() {
    return rpc_listener_->accept().then([this](kj::Own<kj::AsyncIoStream> conn) {
      if (rpc_connections_ >= ctx_.settings.connections_max) {
        metrics_.rpc_rejected("connections_max");
        // No RPC message can say "go away" before the bootstrap; closing is the refusal.
        return accept_rpc();
      }
      ++rpc_connections_;
      metrics_.rpc_connections.set(static_cast<double>(rpc_connections_));
      capnp::ReaderOptions options;
      options.traversalLimitInWords = ctx_.settings.rpc_traversal_words_max;
      options.nestingLimit = ctx_.settings.rpc_nesting_max;
      auto connection = kj::heap<rpc_connection>(
          kj::mv(conn), ctx_, options,
          static_cast<std::size_t>(ctx_.settings.rpc_traversal_words_max) * 4,
          [this](std::shared_ptr<rpc_activity> activity) -> capnp::Capability::Client {
            return kj::heap<inference_rpc_service>(ctx_, std::move(activity));
          });
      auto closed = connection->until_closed();
      tasks_.add(closed.attach(kj::mv(connection), kj::defer([this]() {
                                 --rpc_connections_;
                                 metrics_.rpc_connections.set(
                                     static_cast<double>(rpc_connections_));
                               })));
      return accept_rpc();
    });
  }

  // Tells a refused HTTP client why (when it listens), then closes; bounded in time and bytes.
  void refuse(kj::Own<kj::AsyncIoStream> conn, const char* head, std::string body) {
    auto text =
        kj::heap<std::string>(std::string(head) + std::to_string(body.size()) + "\r\n\r\n" + body);
    auto& stream = *conn;
    auto& ref = *text;
    auto work = stream.write(ref.data(), ref.size())
                    .then([&stream]() {
                      stream.shutdownWrite();
                      return drain_input(stream, refuse_drain_bytes_max);
                    })
                    .exclusiveJoin(io_.provider->getTimer().afterDelay(refuse_linger))
                    .catch_([](kj::Exception&&) {});
    tasks_.add(work.attach(kj::mv(conn), kj::mv(text)));
  }

  void taskFailed(kj::Exception&& e) override {
    KJ_LOG(ERROR, "gateway: connection task failed", e);
  }

  kj::AsyncIoContext& io_;
  gateway_metrics metrics_;
  gateway_context ctx_;
  kj::HttpHeaderTable::Builder header_builder_;
  http_api api_;
  http_error_handler errors_;
  kj::Own<kj::HttpHeaderTable> table_;
  kj::HttpServer http_server_;
  kj::Own<kj::ConnectionReceiver> http_listener_;
  kj::Own<kj::ConnectionReceiver> rpc_listener_;
  kj::Promise<void> http_accepting_ = nullptr;
  kj::Promise<void> rpc_accepting_ = nullptr;
  std::size_t http_connections_ = 0;
  std::size_t rpc_connections_ = 0;
  kj::TaskSet tasks_;
};

struct gateway_server::impl {
  impl(gateway_settings s, inference_port& p, metrics::registry& r, const clock_source& c,
       std::function<bool()> ready_check, id_source mint)
      : settings(std::move(s)),
        port(p),
        registry(r),
        clock(c),
        ready(std::move(ready_check)),
        mint_id(std::move(mint)) {}

  gateway_settings settings;
  inference_port& port;
  metrics::registry& registry;
  const clock_source& clock;
  std::function<bool()> ready;
  id_source mint_id;
  admin_port* admin = nullptr;

  std::thread thread;
  std::mutex mutex;
  kj::Own<kj::CrossThreadPromiseFulfiller<void>> stop_signal;  // guarded by mutex
  std::atomic<std::uint16_t> http_port{0};
  std::atomic<std::uint16_t> rpc_port{0};
  bool started = false;

  void run(std::promise<std::optional<std::string>>& started_promise) {
    bool reported = false;
    auto report = [&](std::optional<std::string> outcome) {
      if (!reported) started_promise.set_value(std::move(outcome));
      reported = true;
    };
    try {
      std::string key_error;
      auto keys = api_key_table::build(settings.api_keys, settings.allow_anonymous, key_error);
      if (!keys) {
        report("gateway: " + key_error);
        return;
      }
      auto io = kj::setupAsyncIo();
      auto stop = kj::newPromiseAndCrossThreadFulfiller<void>();
      {
        std::lock_guard<std::mutex> lock(mutex);
        stop_signal = kj::mv(stop.fulfiller);
      }
      {
        gateway_loop loop(settings, port, registry, clock, ready, mint_id, *keys, io);
        loop.set_admin(admin);
        KJ_IF_MAYBE (e, kj::runCatchingExceptions([&]() { loop.listen(); })) {
          report("gateway: cannot listen: " + std::string(e->getDescription().cStr()));
        } else {
          http_port = loop.http_port;
          rpc_port = loop.rpc_port;
          report(std::nullopt);
          stop.promise.wait(io.waitScope);
          loop.drain();
        }
        http_port = 0;
        rpc_port = 0;
      }
      // The loop is gone; nobody may fulfil into it any more.
      std::lock_guard<std::mutex> lock(mutex);
      stop_signal = nullptr;
    } catch (const kj::Exception& e) {
      KJ_LOG(ERROR, "gateway: event loop failed", e);
      report("gateway: " + std::string(e.getDescription().cStr()));
    } catch (const std::exception& e) {
      report(std::string("gateway: ") + e.what());
    }
  }
};

gateway_server::gateway_server(gateway_settings settings, inference_port& port,
                               metrics::registry& registry, const clock_source& clock,
                               std::function<bool()> ready, id_source mint_id)
    : impl_(std::make_unique<impl>(std::move(settings), port, registry, clock, std::move(ready),
                                   std::move(mint_id))) {}

gateway_server::~gateway_server() { stop(); }

void gateway_server::set_admin(admin_port* admin) {
  KJ_REQUIRE(!impl_->started, "gateway_server::set_admin() after start()");
  impl_->admin = admin;
}

std::optional<std::string> gateway_server::start() {
  KJ_REQUIRE(!impl_->started, "gateway_server::start() called twice");
  impl_->started = true;
  std::promise<std::optional<std::string>> started;
  auto outcome = started.get_future();
  impl_->thread = std::thread([this, &started]() { impl_->run(started); });
  auto result = outcome.get();
  if (result) {
    impl_->thread.join();
  }
  return result;
}

void gateway_server::stop() {
  {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    if (impl_->stop_signal.get() != nullptr) impl_->stop_signal->fulfill();
  }
  if (impl_->thread.joinable()) impl_->thread.join();
}

std::uint16_t gateway_server::http_port() const { return impl_->http_port; }
std::uint16_t gateway_server::rpc_port() const { return impl_->rpc_port; }

}  // namespace bastion::gateway
