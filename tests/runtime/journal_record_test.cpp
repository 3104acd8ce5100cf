// schemas/journal.capnp: every record kind survives a round trip through its flat form read
// back under explicit limits, and the union says which kind it is.

#include "schemas/journal.capnp.h"

#include <catch2/catch.hpp>

#include <capnp/message.h>
#include <capnp/serialize.h>

#include <string>
#include <vector>

namespace journal = bastion::schema::journal;

namespace {

std::vector<capnp::byte> digest(capnp::byte seed) {
  std::vector<capnp::byte> d(32);
  for (std::size_t i = 0; i < d.size(); ++i) d[i] = static_cast<capnp::byte>(seed + i);
  return d;
}

kj::Array<capnp::word> flat(capnp::MallocMessageBuilder& msg) {
  return capnp::messageToFlatArray(msg);
}

capnp::ReaderOptions limits() {
  capnp::ReaderOptions o;
  o.traversalLimitInWords = 1 << 16;
  o.nestingLimit = 16;
  return o;
}

std::vector<capnp::byte> bytes(capnp::Data::Reader d) { return {d.begin(), d.end()}; }

}  // namespace

TEST_CASE("an admission record round-trips with digests, not text") {
  capnp::MallocMessageBuilder msg;
  auto rec = msg.initRoot<journal::JournalRecord>();
  rec.setProposedAtNs(1'700'000'000'000'000'000ULL);
  auto a = rec.initAdmission();
  a.setRequestId("req-42");
  a.setPrincipal("alice@bank");
  a.setSource("10.1.2.3");
  a.setLevel("confidential");
  a.setDecision(journal::Decision::ALLOW);
  a.setModelId("qwen2-7b");
  auto md = digest(1);
  a.setModelDigest(capnp::Data::Reader{md.data(), md.size()});
  auto p = a.initParams();
  p.setMaxTokens(128);
  p.setTemperature(0.5f);
  p.setSeed(99);
  auto pd = digest(7);
  a.setPromptDigest(capnp::Data::Reader{pd.data(), pd.size()});
  a.setPromptTokens(321);

  auto words = flat(msg);
  capnp::FlatArrayMessageReader reader{words, limits()};
  auto back = reader.getRoot<journal::JournalRecord>();
  REQUIRE(back.isAdmission());
  auto b = back.getAdmission();
  CHECK(back.getProposedAtNs() == 1'700'000'000'000'000'000ULL);
  CHECK(std::string{b.getRequestId().cStr()} == "req-42");
  CHECK(std::string{b.getPrincipal().cStr()} == "alice@bank");
  CHECK(b.getDecision() == journal::Decision::ALLOW);
  CHECK(bytes(b.getModelDigest()) == md);
  CHECK(bytes(b.getPromptDigest()) == pd);
  CHECK(b.getPromptTokens() == 321);
  CHECK(b.getParams().getSeed() == 99);
  CHECK(b.getParams().getTemperature() == 0.5f);
}

TEST_CASE("a completion record round-trips with usage and timings") {
  capnp::MallocMessageBuilder msg;
  auto c = msg.initRoot<journal::JournalRecord>().initCompletion();
  c.setRequestId("req-42");
  auto od = digest(3);
  c.setOutputDigest(capnp::Data::Reader{od.data(), od.size()});
  c.setFinishReason(bastion::schema::FinishReason::LENGTH);
  c.initUsage().setCompletionTokens(128);
  c.initTimings().setTotalNs(2'000'000);
  auto words = flat(msg);
  capnp::FlatArrayMessageReader reader{words, limits()};
  auto back = reader.getRoot<journal::JournalRecord>();
  REQUIRE(back.isCompletion());
  CHECK(back.getCompletion().getFinishReason() == bastion::schema::FinishReason::LENGTH);
  CHECK(back.getCompletion().getUsage().getCompletionTokens() == 128);
  CHECK(back.getCompletion().getTimings().getTotalNs() == 2'000'000);
  CHECK(bytes(back.getCompletion().getOutputDigest()) == od);
}

TEST_CASE("configuration changes carry exactly one kind of change") {
  capnp::MallocMessageBuilder msg;
  auto change = msg.initRoot<journal::JournalRecord>().initConfigurationChange();
  change.setChangedBy("ops-bob");
  change.setTicket("CHG-1");
  auto deployed = change.initModelDeployed();
  deployed.setModelId("llama-70b");
  auto sites = deployed.initSites(2);
  sites.set(0, "prod");
  sites.set(1, "dr-local");
  // Switching the union to an approval replaces the deployment.
  auto approval = change.initApproval();
  approval.setApprover("risk-carol");
  approval.setGranted(true);
  auto words = flat(msg);
  capnp::FlatArrayMessageReader reader{words, limits()};
  auto back = reader.getRoot<journal::JournalRecord>();
  REQUIRE(back.isConfigurationChange());
  auto c = back.getConfigurationChange();
  CHECK(c.isApproval());
  CHECK(!c.isModelDeployed());
  CHECK(std::string{c.getApproval().getApprover().cStr()} == "risk-carol");
  CHECK(c.getApproval().getGranted());
  CHECK(std::string{c.getTicket().cStr()} == "CHG-1");
}

TEST_CASE("an epoch start names the epoch, site and leader") {
  capnp::MallocMessageBuilder msg;
  auto e = msg.initRoot<journal::JournalRecord>().initEpochStart();
  e.setEpoch(12);
  e.setSite("dr-local");
  e.setLeaderId(2);
  e.setTerm(31);
  auto words = flat(msg);
  capnp::FlatArrayMessageReader reader{words, limits()};
  auto back = reader.getRoot<journal::JournalRecord>();
  REQUIRE(back.isEpochStart());
  CHECK(back.getEpochStart().getEpoch() == 12);
  CHECK(std::string{back.getEpochStart().getSite().cStr()} == "dr-local");
  CHECK(back.getEpochStart().getLeaderId() == 2);
  CHECK(back.getEpochStart().getTerm() == 31);
}

TEST_CASE("a truncated journal record is refused by the reader, not misread") {
  capnp::MallocMessageBuilder msg;
  msg.initRoot<journal::JournalRecord>().initAdmission().setRequestId(std::string(200, 'x'));
  auto words = flat(msg);
  auto cut = kj::arrayPtr(words.begin(), words.size() / 2);
  auto attempt = kj::runCatchingExceptions([&] {
    capnp::FlatArrayMessageReader reader{cut, limits()};
    (void)reader.getRoot<journal::JournalRecord>().getAdmission().getRequestId();
  });
  CHECK(attempt != nullptr);
}
