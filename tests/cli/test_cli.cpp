// The `peftcpp` command as users call it: predict / tokenize / info give the
// numbers transformers gives, and every kind of bad input ends in a message
// naming the file or tensor, what was expected and what was found, exit
// code 1, and no output file.

#include <torch/torch.h>
#include <catch2/catch.hpp>

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <fstream>

#include "models/checkpoint/safetensors.h"
#include "models/checkpoint/state_dict.h"
#include "tests/test_paths.h"
#include "tests/test_tensors.h"

namespace fs = std::filesystem;
using peftcpp::models::load_checkpoint;
using peftcpp::models::StateDict;
using peftcpp::testing::max_abs_diff;

namespace {

struct Result {
  int code = -1;
  std::string output;  // stdout and stderr together
};

Result run_cli(const std::string& args) {
  const std::string cmd = std::string(PEFTCPP_CLI_PATH) + " " + args + " 2>&1";
  Result r;
  FILE* pipe = popen(cmd.c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::array<char, 4096> buf{};
  size_t n = 0;
  while ((n = fread(buf.data(), 1, buf.size(), pipe)) > 0)
    r.output.append(buf.data(), n);
  const int status = pclose(pipe);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

fs::path tiny(const std::string& name) {
  return peftcpp::testing::fixture_dir() / "models" / name;
}

// Copies a model folder so a test can break it.
fs::path copy_model(const std::string& name, const fs::path& into) {
  const fs::path dst = into / name;
  fs::create_directories(dst);
  for (const auto& e : fs::directory_iterator(tiny(name))) {
    fs::copy_file(e.path(), dst / e.path().filename());
  }
  return dst;
}

void write_text(const fs::path& p, const std::string& s) {
  std::ofstream(p, std::ios::binary) << s;
}

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Rewrites a model folder's config.json with the first `from` replaced by
// `to` (the test fails if `from` is not there).
void edit_config(const fs::path& model, const std::string& from,
                 const std::string& to) {
  std::string cfg = read_text(model / "config.json");
  const auto at = cfg.find(from);
  REQUIRE(at != std::string::npos);
  cfg.replace(at, from.size(), to);
  write_text(model / "config.json", cfg);
}

// One {"input_ids": [...]} line per row of the fixture's padded batch.
std::string ids_jsonl(const StateDict& io) {
  const at::Tensor ids = io.at("input_ids");
  const at::Tensor mask = io.at("attention_mask");
  std::string s;
  for (int64_t r = 0; r < ids.size(0); ++r) {
    s += "{\"input_ids\": [";
    const int64_t n = mask[r].sum().item<int64_t>();
    for (int64_t k = 0; k < n; ++k)
      s += (k ? ", " : "") + std::to_string(ids[r][k].item<int64_t>());
    s += "]";
    if (io.count("token_type_ids")) {
      s += ", \"token_type_ids\": [";
      for (int64_t k = 0; k < n; ++k)
        s += (k ? ", " : "") +
             std::to_string(io.at("token_type_ids")[r][k].item<int64_t>());
      s += "]";
    }
    s += "}\n";
  }
  return s;
}

}  // namespace

TEST_CASE("predict writes a classifier's logits equal to transformers'",
          "[cli]") {
  const peftcpp::testing::ScratchDir dir("cli-predict-logits");
  const StateDict io = load_checkpoint(tiny("bert_seqcls") / "io.safetensors");
  write_text(dir / "in.jsonl", ids_jsonl(io));
  const Result r =
      run_cli("predict --model " + tiny("bert_seqcls").string() + " --input " +
              (dir / "in.jsonl").string() + " --output " +
              (dir / "out.safetensors").string() + " --batch-size 2");
  INFO(r.output);
  REQUIRE(r.code == 0);
  const StateDict out = load_checkpoint(dir / "out.safetensors");
  CHECK(max_abs_diff(out.at("logits"), io.at("logits")) <= 1e-5);
}

TEST_CASE(
    "predict on a bare encoder writes embeddings, pooler output and "
    "hidden states with their mask",
    "[cli]") {
  const peftcpp::testing::ScratchDir dir("cli-predict-encoder");
  const StateDict io = load_checkpoint(tiny("bert_model") / "io.safetensors");
  write_text(dir / "in.jsonl", ids_jsonl(io));
  const Result r = run_cli("predict --model " + tiny("bert_model").string() +
                           " --input " + (dir / "in.jsonl").string() +
                           " --output " + (dir / "out.safetensors").string());
  INFO(r.output);
  REQUIRE(r.code == 0);
  const StateDict out = load_checkpoint(dir / "out.safetensors");
  const at::Tensor mask = io.at("attention_mask");
  CHECK(out.at("attention_mask").equal(mask));
  CHECK(max_abs_diff(out.at("last_hidden_state"),
                     io.at("last_hidden_state") * mask.unsqueeze(-1)) <= 1e-5);
  CHECK(max_abs_diff(out.at("pooler_output"), io.at("pooler_output")) <= 1e-5);
  const at::Tensor m = mask.unsqueeze(-1).to(at::kFloat);
  const at::Tensor mean = (io.at("last_hidden_state") * m).sum(1) / m.sum(1);
  CHECK(max_abs_diff(out.at("sentence_embedding"), mean) <= 1e-5);
}

TEST_CASE(
    "predict with the real MiniLM tokenizer and weights reproduces "
    "transformers' SST-2 dev embeddings end to end",
    "[cli][slow]") {
  const peftcpp::testing::ScratchDir dir("cli-predict-minilm");
  const fs::path sentences =
      peftcpp::testing::fixture_dir() / "models" / "sst2_dev_sentences.jsonl";
  const Result r =
      run_cli("predict --model " + peftcpp::testing::minilm_dir().string() +
              " --input " + sentences.string() + " --output " +
              (dir / "out.safetensors").string() + " --no-hidden-states");
  INFO(r.output);
  REQUIRE(r.code == 0);
  const StateDict out = load_checkpoint(dir / "out.safetensors");
  const StateDict ref = load_checkpoint(peftcpp::testing::fixture_dir() /
                                        "models" / "minilm_sst2.safetensors");
  CHECK(out.count("last_hidden_state") == 0);
  const double delta =
      max_abs_diff(out.at("sentence_embedding"), ref.at("sentence_embedding"));
  INFO("max |delta| = " << delta);
  CHECK(delta <= 1e-4);
}

TEST_CASE("info describes the architecture, parameter count and files",
          "[cli]") {
  const Result r =
      run_cli("info --model " + peftcpp::testing::minilm_dir().string());
  INFO(r.output);
  REQUIRE(r.code == 0);
  CHECK_THAT(r.output, Catch::Contains("BertModel"));
  CHECK_THAT(r.output, Catch::Contains("22.71M"));
  CHECK_THAT(r.output, Catch::Contains("model.safetensors"));
  CHECK_THAT(r.output, Catch::Contains("tokenizer.json"));
}

TEST_CASE("tokenize writes ids, type ids and mask per line", "[cli]") {
  const peftcpp::testing::ScratchDir dir("cli-tokenize");
  write_text(dir / "in.jsonl",
             "{\"text\": \"Hello, world!\"}\n"
             "{\"text\": \"A pair\", \"text_pair\": \"of sentences\"}\n");
  const Result r =
      run_cli("tokenize --model " + peftcpp::testing::minilm_dir().string() +
              " --input " + (dir / "in.jsonl").string() + " --output " +
              (dir / "out.jsonl").string());
  INFO(r.output);
  REQUIRE(r.code == 0);
  // Ids from HF's tokenizer for all-MiniLM-L6-v2 (bert-base-uncased vocab).
  CHECK(read_text(dir / "out.jsonl") ==
        "{\"attention_mask\":[1,1,1,1,1,1],\"input_ids\":[101,7592,1010,2088,"
        "999,102],"
        "\"token_type_ids\":[0,0,0,0,0,0]}\n"
        "{\"attention_mask\":[1,1,1,1,1,1,1],\"input_ids\":[101,1037,3940,102,"
        "1997,11746,102],"
        "\"token_type_ids\":[0,0,0,0,1,1,1]}\n");
}

// --- errors: message, exit code 1, no output file
// ------------------------------

namespace {
void check_fails(const std::string& args, const fs::path& output,
                 const std::vector<std::string>& needles) {
  const Result r = run_cli(args);
  INFO(r.output);
  CHECK(r.code == 1);
  for (const auto& n : needles)
    CHECK_THAT(r.output, Catch::Contains(n));
  CHECK_FALSE(fs::exists(output));
}
// Runs predict on dir/in.jsonl into dir/o.safetensors and checks that it
// fails with exit code 1, every needle in its message and no output file.
void check_predict_fails(const fs::path& model,
                         const peftcpp::testing::ScratchDir& dir,
                         const std::vector<std::string>& needles,
                         const std::string& extra_flags = "") {
  check_fails("predict --model " + model.string() + " --input " +
                  (dir / "in.jsonl").string() + " --output " +
                  (dir / "o.safetensors").string() + " " + extra_flags,
              dir / "o.safetensors", needles);
}
}  // namespace

TEST_CASE("A missing model folder names the file it looked for",
          "[cli][errors]") {
  const peftcpp::testing::ScratchDir dir("cli-err-missing");
  write_text(dir / "in.jsonl", "{\"input_ids\": [1, 2, 3]}\n");
  check_predict_fails(dir / "nope", dir,
                      {"config.json", (dir / "nope").string(), "expected"});
}

TEST_CASE(
    "A truncated safetensors file is named with the bytes expected and found",
    "[cli][errors]") {
  const peftcpp::testing::ScratchDir dir("cli-err-truncated");
  const fs::path model = copy_model("bert_seqcls", dir.path());
  const fs::path weights = model / "model.safetensors";
  fs::resize_file(weights, fs::file_size(weights) - 100);
  write_text(dir / "in.jsonl", "{\"input_ids\": [1, 2, 3]}\n");
  check_predict_fails(model, dir,
                      {"model.safetensors", "bytes of tensor data, got",
                       "classifier.weight", "the file is truncated"});
}

TEST_CASE("A corrupt safetensors header is named", "[cli][errors]") {
  const peftcpp::testing::ScratchDir dir("cli-err-corrupt");
  const fs::path model = copy_model("bert_seqcls", dir.path());
  {
    std::fstream f(model / "model.safetensors",
                   std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(8);
    f << "#garbage#";
  }
  write_text(dir / "in.jsonl", "{\"input_ids\": [1, 2, 3]}\n");
  check_predict_fails(
      model, dir,
      {"model.safetensors", "expected a JSON header, got invalid JSON",
       "the header is corrupt"});
}

TEST_CASE("A shape mismatch names the tensor and both shapes",
          "[cli][errors]") {
  const peftcpp::testing::ScratchDir dir("cli-err-shape");
  const fs::path model = copy_model("bert_seqcls", dir.path());
  // The config says 4 labels, the checkpoint's head has 3.
  std::string cfg = read_text(model / "config.json");
  const auto at = cfg.find("\"id2label\"");
  REQUIRE(at != std::string::npos);
  cfg.insert(at, "\"num_labels\": 4, ");
  cfg.erase(cfg.find("\"id2label\""), cfg.find('}', cfg.find("\"id2label\"")) -
                                          cfg.find("\"id2label\"") + 2);
  write_text(model / "config.json", cfg);
  write_text(dir / "in.jsonl", "{\"input_ids\": [1, 2, 3]}\n");
  check_predict_fails(model, dir, {"classifier.weight", "[4, 32]", "[3, 32]"});
}

TEST_CASE("A dtype mismatch (integer weights for a float parameter) is named",
          "[cli][errors]") {
  const peftcpp::testing::ScratchDir dir("cli-err-dtype");
  const fs::path model = copy_model("bert_seqcls", dir.path());
  StateDict sd = load_checkpoint(model / "model.safetensors");
  std::vector<std::pair<std::string, at::Tensor>> tensors(sd.begin(), sd.end());
  for (auto& [name, t] : tensors) {
    if (name == "classifier.bias")
      t = t.to(at::kLong);
  }
  peftcpp::models::save_safetensors(model / "model.safetensors", tensors);
  write_text(dir / "in.jsonl", "{\"input_ids\": [1, 2, 3]}\n");
  check_predict_fails(model, dir, {"classifier.bias", "expected", "Long"});
}

TEST_CASE("An unsupported architecture is refused by name", "[cli][errors]") {
  const peftcpp::testing::ScratchDir dir("cli-err-arch");
  const fs::path model = copy_model("bert_seqcls", dir.path());
  edit_config(model, "\"model_type\": \"bert\"", "\"model_type\": \"t5\"");
  write_text(dir / "in.jsonl", "{\"input_ids\": [1, 2, 3]}\n");
  check_predict_fails(
      model, dir,
      {"config.json", "model_type \"bert\" or \"roberta\"", "\"t5\""});
}

TEST_CASE(
    "An input longer than the model's positions is refused with a "
    "--max-length hint, and --max-length fixes it",
    "[cli][errors]") {
  const peftcpp::testing::ScratchDir dir("cli-err-long");
  std::string ids;
  for (int i = 0; i < 70; ++i)
    ids += (i ? "," : "") + std::to_string(5 + i % 50);
  write_text(dir / "in.jsonl",
             "{\"input_ids\": [1, 2]}\n{\"input_ids\": [" + ids + "]}\n");
  const std::string base = "predict --model " + tiny("bert_seqcls").string() +
                           " --input " + (dir / "in.jsonl").string() +
                           " --output " + (dir / "o.safetensors").string();
  check_fails(base, dir / "o.safetensors",
              {"input 1 with 70 tokens", "at most 64", "--max-length 64"});
  const Result ok = run_cli(base + " --max-length 64");
  INFO(ok.output);
  CHECK(ok.code == 0);
}

TEST_CASE("A malformed input line is named by file and line number",
          "[cli][errors]") {
  const peftcpp::testing::ScratchDir dir("cli-err-jsonl");
  write_text(dir / "in.jsonl", "{\"input_ids\": [1, 2]}\n\n{\"text\": oops}\n");
  check_predict_fails(tiny("bert_seqcls"), dir,
                      {"in.jsonl:3", "expected a JSON object", "invalid JSON"});
}

TEST_CASE("Asking for CUDA on a machine without it is a clear error",
          "[cli][errors]") {
  if (torch::cuda::is_available()) {
    WARN("CUDA present: nothing to refuse");
    return;
  }
  const peftcpp::testing::ScratchDir dir("cli-err-cuda");
  write_text(dir / "in.jsonl", "{\"input_ids\": [1, 2]}\n");
  check_predict_fails(tiny("bert_seqcls"), dir,
                      {"--device", "expected a CUDA device", "--device cpu"},
                      "--device cuda");
}

TEST_CASE("A bad command line exits with code 2 and usage help",
          "[cli][errors]") {
  const Result r = run_cli("predict --model x");
  CHECK(r.code == 2);
  CHECK_THAT(r.output, Catch::Contains("--input"));
}

TEST_CASE(
    "predict restores input order when it sorts rows by length, "
    "whatever the batch size",
    "[cli]") {
  const peftcpp::testing::ScratchDir dir("cli-order");
  const StateDict io = load_checkpoint(tiny("bert_model") / "io.safetensors");
  // The fixture's rows come longest first; reversed, the runner's sort is
  // a real permutation.
  std::string lines = ids_jsonl(io);
  std::vector<std::string> rows;
  for (size_t at = 0, next; (next = lines.find('\n', at)) != std::string::npos;
       at = next + 1) {
    rows.push_back(lines.substr(at, next - at + 1));
  }
  write_text(dir / "in.jsonl", rows[2] + rows[1] + rows[0]);
  const Result r = run_cli("predict --model " + tiny("bert_model").string() +
                           " --input " + (dir / "in.jsonl").string() +
                           " --output " + (dir / "out.safetensors").string() +
                           " --batch-size 2 --no-hidden-states");
  INFO(r.output);
  REQUIRE(r.code == 0);
  const StateDict out = load_checkpoint(dir / "out.safetensors");
  const at::Tensor expected = io.at("pooler_output").flip(0);
  CHECK(max_abs_diff(out.at("pooler_output"), expected) <= 1e-5);
}

TEST_CASE(
    "predict refuses a checkpoint that does not fit the config instead "
    "of running random weights",
    "[cli][errors]") {
  const peftcpp::testing::ScratchDir dir("cli-err-misfit");
  // A RoBERTa classifier's weights under a BERT config: every encoder key
  // lands under the wrong prefix.
  const fs::path model = copy_model("roberta_seqcls", dir.path());
  edit_config(model, "\"model_type\": \"roberta\"", "\"model_type\": \"bert\"");
  write_text(dir / "in.jsonl", "{\"input_ids\": [3, 4, 5]}\n");
  check_predict_fails(
      model, dir,
      {"expected every encoder weight in the checkpoint", "bert.embeddings",
       "unused checkpoint tensors", "does config.json's model_type match"});
}

TEST_CASE("Token ids outside the vocabulary are named by input and position",
          "[cli][errors]") {
  const peftcpp::testing::ScratchDir dir("cli-err-ids");
  write_text(dir / "in.jsonl",
             "{\"input_ids\": [1, 2]}\n{\"input_ids\": [5, 300]}\n");
  check_predict_fails(tiny("bert_seqcls"), dir,
                      {"expected token ids in [0, 99)",
                       "input 1 position 1 with 300", "vocab_size 99"});
}

TEST_CASE("Bad option values are usage errors (exit 2) caught before any work",
          "[cli][errors]") {
  for (const std::string flags :
       {"--dtype float64", "--device tpu", "--threads -3", "--max-length 0"}) {
    INFO(flags);
    const Result r = run_cli("predict --model m --input i --output o " + flags);
    CHECK(r.code == 2);
  }
}

TEST_CASE("An --output that is a folder fails at once, before inference",
          "[cli][errors]") {
  const peftcpp::testing::ScratchDir dir("cli-err-output");
  write_text(dir / "in.jsonl", "{\"input_ids\": [1, 2]}\n");
  fs::create_directories(dir / "o.safetensors");
  const Result r = run_cli("predict --model " + tiny("bert_seqcls").string() +
                           " --input " + (dir / "in.jsonl").string() +
                           " --output " + (dir / "o.safetensors").string());
  INFO(r.output);
  CHECK(r.code == 1);
  CHECK_THAT(r.output, Catch::Contains("[--output] expected a file path"));
  CHECK_THAT(r.output,
             !Catch::Contains("predict ["));  // no progress bar: no work done
}

TEST_CASE("Malformed config fields are named with the file", "[cli][errors]") {
  const peftcpp::testing::ScratchDir dir("cli-err-config");
  const fs::path model = copy_model("bert_seqcls", dir.path());
  const std::string original = read_text(model / "config.json");
  write_text(dir / "in.jsonl", "{\"input_ids\": [1, 2]}\n");
  // Each edit starts from the original config.
  const auto with = [&](const std::string& from, const std::string& to) {
    write_text(model / "config.json", original);
    edit_config(model, from, to);
  };
  with("\"0\": \"LABEL_0\"", "\"zero\": \"LABEL_0\"");
  check_predict_fails(
      model, dir,
      {"config.json", "id2label keys that are label ids", "key \"zero\""});
  with("\"model_type\": \"bert\"",
       "\"model_type\": \"bert\", \"is_decoder\": true");
  check_predict_fails(model, dir, {"config.json", "is_decoder true"});
}
