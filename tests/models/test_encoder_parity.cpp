// Parity of the BERT-family encoders with transformers: tiny random models
// with padding in the batch (fp32, |delta| <= 1e-5), the real
// all-MiniLM-L6-v2 on the 872 SST-2 dev sentences (|delta| <= 1e-4), and
// the properties the hook points promise. References are written by
// tests/fixtures/make_models.py.

#include <torch/torch.h>
#include <catch2/catch.hpp>

#include "models/checkpoint/state_dict.h"
#include "models/encoder/load_encoder.h"
#include "tests/test_paths.h"

using namespace peftcpp::models;
namespace fs = std::filesystem;

namespace {

fs::path case_dir(const std::string& name) {
  return peftcpp::testing::fixture_dir() / "models" / name;
}

StateDict io_of(const std::string& name) {
  return load_checkpoint(case_dir(name) / "io.safetensors");
}

double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  REQUIRE(a.sizes() == b.sizes());
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

EncoderInputs inputs_from(const StateDict& io) {
  EncoderInputs in;
  in.input_ids = io.at("input_ids");
  in.attention_mask = io.at("attention_mask");
  if (io.count("token_type_ids"))
    in.token_type_ids = io.at("token_type_ids");
  return in;
}

// Only the rows' real tokens: padding positions' hidden states are not
// defined by the model's contract (HF and SDPA may differ there).
at::Tensor masked(const at::Tensor& hidden, const at::Tensor& mask) {
  return hidden * mask.unsqueeze(-1).to(hidden.dtype());
}

}  // namespace

TEST_CASE("BertModel matches transformers on a padded batch in fp32",
          "[models][parity]") {
  torch::NoGradGuard no_grad;
  LoadedEncoder m = load_encoder(case_dir("bert_model"));
  REQUIRE_FALSE(m.has_classifier());
  REQUIRE(m.missing_keys.empty());
  REQUIRE(m.unexpected_keys.empty());
  const StateDict io = io_of("bert_model");
  const EncoderOutput out = m.encoder->forward(inputs_from(io));
  const at::Tensor mask = io.at("attention_mask");
  CHECK(max_abs_diff(masked(out.last_hidden_state, mask),
                     masked(io.at("last_hidden_state"), mask)) <= 1e-5);
  CHECK(max_abs_diff(out.pooler_output, io.at("pooler_output")) <= 1e-5);
}

TEST_CASE("BertForSequenceClassification logits match transformers in fp32",
          "[models][parity]") {
  torch::NoGradGuard no_grad;
  LoadedEncoder m = load_encoder(case_dir("bert_seqcls"));
  REQUIRE(m.has_classifier());
  REQUIRE(m.config.num_labels() == 3);
  REQUIRE(m.missing_keys.empty());
  const StateDict io = io_of("bert_seqcls");
  CHECK(max_abs_diff(m.classifier->forward(inputs_from(io)), io.at("logits")) <=
        1e-5);
}

TEST_CASE(
    "RobertaForSequenceClassification matches transformers for "
    "classification and regression, loss included",
    "[models][parity]") {
  torch::NoGradGuard no_grad;
  for (const std::string name : {"roberta_seqcls", "roberta_regression"}) {
    INFO(name);
    LoadedEncoder m = load_encoder(case_dir(name));
    REQUIRE(m.has_classifier());
    REQUIRE(m.missing_keys.empty());
    const StateDict io = io_of(name);
    const at::Tensor logits = m.classifier->forward(inputs_from(io));
    CHECK(max_abs_diff(logits, io.at("logits")) <= 1e-5);
    const at::Tensor loss = sequence_classification_loss(
        logits, io.at("labels"), m.config.problem_type);
    CHECK(std::abs(loss.item<double>() - io.at("loss").item<double>()) <= 1e-5);
  }
}

TEST_CASE(
    "The loss follows the labels as in transformers: int64 labels "
    "give cross-entropy, float label vectors give multi-label BCE",
    "[models][parity]") {
  torch::NoGradGuard no_grad;
  LoadedEncoder m = load_encoder(case_dir("bert_seqcls"));
  REQUIRE(m.config.problem_type == ProblemType::kUnset);
  const at::Tensor logits =
      m.classifier->forward(inputs_from(io_of("bert_seqcls")));
  const StateDict ref =
      load_checkpoint(case_dir("bert_seqcls") / "losses.safetensors");
  for (const std::string kind : {"single_label", "multi_label"}) {
    INFO(kind);
    const at::Tensor labels = ref.at(kind + "_labels");
    const at::Tensor loss =
        sequence_classification_loss(logits, labels, m.config.problem_type);
    CHECK(std::abs(loss.item<double>() -
                   ref.at(kind + "_loss").item<double>()) <= 1e-5);
  }
  CHECK(resolve_problem_type(ProblemType::kUnset, 3,
                             ref.at("multi_label_labels")) ==
        ProblemType::kMultiLabelClassification);
}

TEST_CASE("Padding does not change a sentence's outputs", "[models]") {
  torch::NoGradGuard no_grad;
  LoadedEncoder m = load_encoder(case_dir("roberta_seqcls"));
  const StateDict io = io_of("roberta_seqcls");
  const at::Tensor full = m.classifier->forward(inputs_from(io));
  // Row 2 alone, cut to its real length: same logits as inside the batch.
  const int64_t n = io.at("attention_mask")[2].sum().item<int64_t>();
  EncoderInputs one;
  one.input_ids = io.at("input_ids").slice(0, 2, 3).slice(1, 0, n);
  one.attention_mask = io.at("attention_mask").slice(0, 2, 3).slice(1, 0, n);
  CHECK(max_abs_diff(m.classifier->forward(one), full.slice(0, 2, 3)) <= 1e-5);
}

TEST_CASE(
    "A base checkpoint loads under a classifier with a fresh head, "
    "and a classifier checkpoint loads as a bare encoder",
    "[models]") {
  LoadEncoderOptions with_head;
  with_head.head = EncoderHead::kSequenceClassification;
  LoadedEncoder up = load_encoder(case_dir("bert_model"), with_head);
  REQUIRE(up.has_classifier());
  CHECK(up.missing_keys ==
        std::vector<std::string>{"classifier.bias", "classifier.weight"});

  LoadEncoderOptions bare;
  bare.head = EncoderHead::kNone;
  LoadedEncoder down = load_encoder(case_dir("bert_seqcls"), bare);
  REQUIRE_FALSE(down.has_classifier());
  CHECK(down.missing_keys.empty());
  CHECK(down.unexpected_keys ==
        std::vector<std::string>{"classifier.bias", "classifier.weight"});
}

TEST_CASE(
    "Input embeddings give the same output as the ids they embed "
    "(the prompt-tuning hook)",
    "[models][hooks]") {
  torch::NoGradGuard no_grad;
  LoadedEncoder m = load_encoder(case_dir("bert_model"));
  const StateDict io = io_of("bert_model");
  EncoderInputs by_ids = inputs_from(io);
  EncoderInputs by_embeds = by_ids;
  by_embeds.input_ids = at::Tensor();
  by_embeds.inputs_embeds =
      m.encoder->embeddings->word_embeddings(by_ids.input_ids);
  CHECK(max_abs_diff(m.encoder->forward(by_ids).last_hidden_state,
                     m.encoder->forward(by_embeds).last_hidden_state) == 0.0);
}

TEST_CASE(
    "A key/value prefix is attended as extra keys and values "
    "(the prefix-tuning hook)",
    "[models][hooks]") {
  torch::NoGradGuard no_grad;
  LoadedEncoder m = load_encoder(case_dir("bert_model"));
  const auto& c = m.config;
  SelfAttention attn = m.encoder->layer(0)->attention->self;
  const int64_t B = 2, T = 5, P = 3, H = c.num_attention_heads,
                D = c.head_dim();
  const at::Tensor x = torch::randn({B, T, c.hidden_size});
  const KeyValuePrefix prefix{torch::randn({B, H, P, D}),
                              torch::randn({B, H, P, D})};
  // softmax(q [k_p; k]^T / sqrt(D)) [v_p; v], written out.
  auto heads = [&](const at::Tensor& t) {
    return t.view({B, T, H, D}).transpose(1, 2);
  };
  const at::Tensor q = heads(attn->query(x));
  const at::Tensor k = torch::cat({prefix.key, heads(attn->key(x))}, 2);
  const at::Tensor v = torch::cat({prefix.value, heads(attn->value(x))}, 2);
  const at::Tensor expected =
      torch::matmul(
          torch::softmax(
              torch::matmul(q, k.transpose(2, 3)) / std::sqrt(double(D)), -1),
          v)
          .transpose(1, 2)
          .reshape({B, T, H * D});
  CHECK(max_abs_diff(attn(x, at::Tensor(), &prefix), expected) <= 1e-5);

  // A padded row still sees the whole prefix: the mask grows by P ones.
  const at::Tensor mask = make_attention_mask(torch::tensor({{1, 1, 0}}), P);
  CHECK(mask.sizes() == at::IntArrayRef({1, 1, 1, P + 3}));
  CHECK(mask.flatten().to(at::kLong).equal(torch::tensor({1, 1, 1, 1, 1, 0})));

  EncoderInputs in = inputs_from(io_of("bert_model"));
  in.prefix.assign(c.num_hidden_layers - 1, prefix);
  CHECK_THROWS_WITH(m.encoder->forward(in),
                    Catch::Contains("one key/value prefix per layer"));
}

TEST_CASE("An input longer than the position table is refused with a hint",
          "[models][errors]") {
  LoadedEncoder m = load_encoder(case_dir("bert_model"));
  EncoderInputs in;
  in.input_ids =
      torch::ones({1, m.config.max_position_embeddings + 1}, torch::kLong);
  CHECK_THROWS_WITH(m.encoder->forward(in),
                    Catch::Contains("expected at most 64 tokens") &&
                        Catch::Contains("got 65 tokens") &&
                        Catch::Contains("--max-length"));
}

TEST_CASE("The model runs in bfloat16 and float16 close to fp32",
          "[models][dtype]") {
  torch::NoGradGuard no_grad;
  const StateDict io = io_of("bert_seqcls");
  for (auto dtype : {at::kBFloat16, at::kHalf}) {
    LoadEncoderOptions o;
    o.dtype = dtype;
    LoadedEncoder m = load_encoder(case_dir("bert_seqcls"), o);
    const at::Tensor logits = m.classifier->forward(inputs_from(io));
    CHECK(logits.scalar_type() == dtype);
    // Half precisions keep ~3 significant digits; logits here are O(0.1).
    CHECK(max_abs_diff(logits.to(at::kFloat), io.at("logits")) <= 2e-2);
  }
}

TEST_CASE("The model runs on CUDA and matches the CPU", "[models][cuda]") {
  if (!torch::cuda::is_available()) {
    WARN("no CUDA device: skipped");
    return;
  }
  torch::NoGradGuard no_grad;
  LoadEncoderOptions o;
  o.device = torch::kCUDA;
  LoadedEncoder m = load_encoder(case_dir("bert_seqcls"), o);
  StateDict io = io_of("bert_seqcls");
  EncoderInputs in = inputs_from(io);
  in.input_ids = in.input_ids.cuda();
  in.attention_mask = in.attention_mask.cuda();
  in.token_type_ids = in.token_type_ids.cuda();
  CHECK(max_abs_diff(m.classifier->forward(in).cpu(), io.at("logits")) <= 1e-4);
}

TEST_CASE(
    "all-MiniLM-L6-v2 sentence embeddings of SST-2 dev match "
    "transformers",
    "[models][parity][slow]") {
  torch::NoGradGuard no_grad;
  LoadedEncoder m = load_encoder(peftcpp::testing::minilm_dir());
  REQUIRE(m.config.num_hidden_layers == 6);
  const StateDict ref = load_checkpoint(peftcpp::testing::fixture_dir() /
                                        "models" / "minilm_sst2.safetensors");
  const at::Tensor ids = ref.at("input_ids");
  const at::Tensor mask = ref.at("attention_mask");
  REQUIRE(ids.size(0) == 872);
  std::vector<at::Tensor> parts;
  for (int64_t i = 0; i < ids.size(0); i += 64) {
    const int64_t j = std::min<int64_t>(i + 64, ids.size(0));
    // Cut each batch to its longest row, as a real caller pads.
    const int64_t t = mask.slice(0, i, j).sum(1).max().item<int64_t>();
    EncoderInputs in;
    in.input_ids = ids.slice(0, i, j).slice(1, 0, t);
    in.attention_mask = mask.slice(0, i, j).slice(1, 0, t);
    parts.push_back(
        mean_pool(m.encoder->forward(in).last_hidden_state, in.attention_mask));
  }
  const double delta =
      max_abs_diff(at::cat(parts), ref.at("sentence_embedding"));
  INFO("max |delta| = " << delta);
  CHECK(delta <= 1e-4);
}
