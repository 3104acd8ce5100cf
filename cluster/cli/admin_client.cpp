#include "cluster/cli/admin_client.hpp"

#include <kj/async-io.h>
#include <kj/compat/http.h>
#include <kj/debug.h>

namespace bastion::cli {

http_answer http_call(const std::string& host_port, const std::string& method,
                      const std::string& path, const std::string& key, const std::string& body,
                      std::chrono::milliseconds timeout) {
  http_answer out;
  auto caught = kj::runCatchingExceptions([&] {
    auto io = kj::setupAsyncIo();
    kj::HttpHeaderTable table;
    auto client =
        kj::newHttpClient(io.provider->getTimer(), table, io.provider->getNetwork(), nullptr);
    kj::HttpHeaders headers(table);
    headers.set(kj::HttpHeaderId::HOST, host_port.c_str());
    const std::string auth = "Bearer " + key;
    if (!key.empty()) headers.add("Authorization", auth.c_str());
    headers.set(kj::HttpHeaderId::CONTENT_TYPE, "application/json");
    kj::HttpMethod m = kj::HttpMethod::GET;
    KJ_IF_MAYBE (parsed, kj::tryParseHttpMethod(method.c_str())) {
      m = *parsed;
    }
    const std::string url = "http://" + host_port + path;
    // KJ refuses a body (even an empty one) on a request that has none, such as a GET.
    auto req = body.empty() ? client->request(m, url.c_str(), headers)
                            : client->request(m, url.c_str(), headers,
                                              static_cast<std::uint64_t>(body.size()));
    kj::Promise<void> write = kj::READY_NOW;
    if (!body.empty())
      write = req.body->write(body.data(), body.size()).attach(kj::mv(req.body));
    else
      req.body = nullptr;
    auto answer =
        write.then([response = kj::mv(req.response)]() mutable { return kj::mv(response); })
            .then([&out](kj::HttpClient::Response r) {
              out.status = r.statusCode;
              auto& stream = *r.body;
              return stream.readAllText().attach(kj::mv(r.body)).then([&out](kj::String text) {
                out.body = text.cStr();
              });
            });
    auto timed =
        io.provider->getTimer().afterDelay(timeout.count() * kj::MILLISECONDS).then([&out]() {
          out.error = "no answer in time";
        });
    answer.exclusiveJoin(kj::mv(timed)).wait(io.waitScope);
  });
  KJ_IF_MAYBE (e, caught) {
    out.status = 0;
    out.error = e->getDescription().cStr();
  }
  if (!out.error.empty()) out.status = 0;
  if (out.status == 0 && out.error.empty()) out.error = "no answer";
  return out;
}

}  // namespace bastion::cli
