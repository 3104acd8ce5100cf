// Hugging Face folders: config.json + safetensors (single or sharded) load into the same model
// as the GGUF form of the same weights, with half-split RoPE, and every broken folder gives a
// status naming the file, the tensor or key, and the reason.

#include "kernels/model/hf/hf_loader.hpp"
#include "kernels/engine/decoder.hpp"
#include "kernels/model/gguf_loader.hpp"
#include "tests/kernels/tiny_model.hpp"

#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <unistd.h>
#include <cstdlib>
#include <fstream>

using namespace bastion::kernels;
using bastion::test::named_tensor;
using bastion::test::tiny_spec;

namespace {

std::string make_folder(const std::string& stem) {
  const std::string dir = "/tmp/bastion-hf-" + std::to_string(::getpid()) + "-" + stem;
  ::mkdir(dir.c_str(), 0700);
  return dir;
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::trunc) << text;
}

void remove_folder(const std::string& dir) {
  const std::string cmd = "rm -rf '" + dir + "'";
  REQUIRE(std::system(cmd.c_str()) == 0);
}

std::vector<const named_tensor*> pointers(const std::vector<named_tensor>& w) {
  std::vector<const named_tensor*> p;
  for (const auto& t : w) p.push_back(&t);
  return p;
}

std::vector<float> all_logits(const model& m, const std::vector<std::int32_t>& tokens) {
  auto be = make_cpu_backend();
  std::unique_ptr<kv_cache> kv;
  REQUIRE(kv_cache::create({m.config.n_layers, m.config.kv_dim(), 16, 8, 2}, kv));
  REQUIRE(kv->add_sequence(1));
  decoder d{m, *be, *kv};
  step_output out;
  const auto s = d.step({{1, tokens, true}}, out);
  INFO(s.message());
  REQUIRE(s);
  return out.logits;
}

const std::vector<std::int32_t> prompt = {4, 8, 15, 16, 23, 42, 7};

}  // namespace

TEST_CASE("a Hugging Face folder gives the reference logits, as its GGUF form does") {
  for (const std::string arch : {"llama", "qwen2"}) {
    tiny_spec s;
    s.arch = arch;
    s.tied = arch == "qwen2";
    const auto w = bastion::test::random_hf_weights(s, 21);
    const auto dir = make_folder(arch);
    write_text(dir + "/config.json", bastion::test::hf_config_json(s));
    bastion::test::write_safetensors(pointers(w), "F32", dir + "/model.safetensors");
    model hf;
    const auto st = load_hf_model(dir, hf);
    INFO(st.message());
    REQUIRE(st);
    CHECK(hf.config.rope.style == rope_style::half_split);
    CHECK(hf.config.qkv_bias == (arch == "qwen2"));
    CHECK(hf.config.tied_output == s.tied);
    CHECK(hf.end_of_generation_ids == std::vector<std::int32_t>{1, 3});
    const auto ref = bastion::test::reference_logits(s, w, prompt);
    const auto from_hf = all_logits(hf, prompt);
    const double err = bastion::test::normalised_error(from_hf.data(), ref);
    INFO(arch << " from safetensors F32: normalised max error " << err);
    CHECK(err < 1e-4);

    // The GGUF form (llama Q/K permuted, adjacent-pair RoPE) computes the same function.
    const std::string gguf_path = dir + "/model.gguf";
    REQUIRE(bastion::test::write_gguf(s, w, tensor_type::f32, gguf_path));
    model gg;
    REQUIRE(load_gguf_model(gguf_path, gg));
    const auto from_gguf = all_logits(gg, prompt);
    CHECK(bastion::test::normalised_error(
              from_gguf.data(), std::vector<double>(from_hf.begin(), from_hf.end())) < 1e-5);
    remove_folder(dir);
  }
}

TEST_CASE("BF16 and sharded safetensors load; weights stay BF16") {
  tiny_spec s;
  const auto w = bastion::test::random_hf_weights(s, 22);
  const auto dir = make_folder("sharded");
  write_text(dir + "/config.json", bastion::test::hf_config_json(s));
  // Shard 1: embeddings and layer 0; shard 2: the rest.
  std::vector<const named_tensor*> one, two;
  std::string map;
  for (const auto& t : w) {
    const bool first =
        t.name.find("embed") != std::string::npos || t.name.find("layers.0.") != std::string::npos;
    (first ? one : two).push_back(&t);
    map += std::string{map.empty() ? "" : ","} + "\"" + t.name + "\":\"" +
           (first ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors") + "\"";
  }
  bastion::test::write_safetensors(one, "BF16", dir + "/model-00001-of-00002.safetensors");
  bastion::test::write_safetensors(two, "BF16", dir + "/model-00002-of-00002.safetensors");
  write_text(dir + "/model.safetensors.index.json",
             "{\"metadata\":{\"total_size\":0},\"weight_map\":{" + map + "}}");
  model m;
  const auto st = load_hf_model(dir, m);
  INFO(st.message());
  REQUIRE(st);
  CHECK(m.weights.layers[1].wq.type == tensor_type::bf16);
  CHECK(m.storage.size() == 2);
  const auto logits = all_logits(m, prompt);
  const double err =
      bastion::test::normalised_error(logits.data(), bastion::test::reference_logits(s, w, prompt));
  INFO("BF16 normalised max error " << err);
  CHECK(err < 5e-2);

  SECTION("an index naming a file outside the folder is refused") {
    write_text(dir + "/model.safetensors.index.json",
               R"({"weight_map":{"lm_head.weight":"../etc/passwd"}})");
    const auto s2 = load_hf_model(dir, m);
    CHECK_FALSE(s2);
    CHECK_THAT(s2.message(), Catch::Contains("invalid file name"));
  }
  SECTION("an index listing a tensor its shard lacks is refused") {
    write_text(
        dir + "/model.safetensors.index.json",
        "{\"weight_map\":{" + map + ",\"extra.weight\":\"model-00001-of-00002.safetensors\"}}");
    const auto s2 = load_hf_model(dir, m);
    CHECK_FALSE(s2);
    CHECK_THAT(s2.message(), Catch::Contains("'extra.weight'"));
    CHECK_THAT(s2.message(), Catch::Contains("model-00001-of-00002.safetensors"));
  }
  remove_folder(dir);
}

TEST_CASE("broken Hugging Face folders are refused with file, tensor and reason") {
  tiny_spec s;
  auto w = bastion::test::random_hf_weights(s, 23);
  const auto dir = make_folder("broken");
  auto expect = [&](const std::vector<std::string>& words,
                    status_code code = status_code::invalid_argument) {
    model m;
    m.source = "untouched";
    const auto st = load_hf_model(dir, m);
    INFO(st.message());
    CHECK(st.code() == code);
    for (const auto& word : words) CHECK_THAT(st.message(), Catch::Contains(word));
    CHECK(m.source == "untouched");
  };
  expect({"config.json", "cannot open"});
  write_text(dir + "/config.json", bastion::test::hf_config_json(s));
  expect({"model.safetensors", "cannot open"});

  SECTION("missing tensor") {
    auto partial = pointers(w);
    partial.erase(partial.begin() + 3);  // a layer-0 tensor
    bastion::test::write_safetensors(partial, "F32", dir + "/model.safetensors");
    expect({"tensor 'model.layers.0.self_attn.k_proj.weight' is missing"});
  }
  SECTION("shape that disagrees with the config") {
    std::string cfg = bastion::test::hf_config_json(s);
    cfg.replace(cfg.find("\"intermediate_size\":96"), 22, "\"intermediate_size\":128");
    write_text(dir + "/config.json", cfg);
    bastion::test::write_safetensors(pointers(w), "F32", dir + "/model.safetensors");
    expect({"model.safetensors", "mlp.gate_proj.weight", "[96, 64]", "[128, 64]"});
  }
  SECTION("dtype the engine cannot execute") {
    // Rewrite one tensor's dtype from F32 to I32 (same size, still valid safetensors).
    bastion::test::write_safetensors(pointers(w), "F32", dir + "/model.safetensors");
    std::fstream f(dir + "/model.safetensors", std::ios::in | std::ios::out | std::ios::binary);
    std::string head(4096, '\0');
    f.read(head.data(), 4096);
    const auto at = head.find("\"model.norm.weight\":{\"dtype\":\"F32\"");
    REQUIRE(at != std::string::npos);
    f.seekp(static_cast<std::streamoff>(at + 30));
    f.write("I32", 3);
    f.close();
    expect({"model.norm.weight", "dtype I32"});
  }
  SECTION("truncated weights file") {
    bastion::test::write_safetensors(pointers(w), "F32", dir + "/model.safetensors");
    REQUIRE(::truncate((dir + "/model.safetensors").c_str(), 5000) == 0);
    expect({"model.safetensors", "past the end"});
  }
  SECTION("config problems") {
    bastion::test::write_safetensors(pointers(w), "F32", dir + "/model.safetensors");
    write_text(dir + "/config.json", "{\"model_type\": \"llama\"");
    expect({"config.json", "not valid JSON"});
    write_text(dir + "/config.json", R"({"model_type":"mistral"})");
    expect({"config.json", "'mistral'"}, status_code::unsupported);
    std::string cfg = bastion::test::hf_config_json(s);
    write_text(dir + "/config.json",
               cfg.replace(cfg.find("\"rope_scaling\":null"), 19,
                           R"("rope_scaling":{"type":"linear","factor":2.0})"));
    expect({"rope_scaling"}, status_code::unsupported);
    cfg = bastion::test::hf_config_json(s);
    write_text(dir + "/config.json",
               cfg.replace(cfg.find("\"num_key_value_heads\":2"), 23, "\"num_key_value_heads\":3"));
    expect({"config.json", "n_heads", "n_kv_heads"});
    cfg = bastion::test::hf_config_json(s);
    write_text(dir + "/config.json",
               cfg.replace(cfg.find("\"hidden_size\":64"), 16, "\"hidden_size\":-64"));
    expect({"config.json", "'hidden_size'"});
    cfg = bastion::test::hf_config_json(s);
    write_text(dir + "/config.json", cfg.replace(cfg.find("\"num_hidden_layers\":2"), 21,
                                                 "\"num_hidden_layers\":99999999"));
    expect({"n_layers"});
  }
  remove_folder(dir);
}
