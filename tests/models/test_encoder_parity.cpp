// Parity of the BERT-family encoders with transformers: tiny random models
// with padding in the batch (fp32, |delta| <= 1e-5), also with a key/value
// prefix passed as transformers' past_key_values, the real
// all-MiniLM-L6-v2 on the 872 SST-2 dev sentences (|delta| <= 1e-4), and
// the properties the hook points promise. References are written by
// tests/fixtures/make_models.py.

#include <torch/torch.h>
#include <catch2/catch.hpp>

#include "models/checkpoint/state_dict.h"
#include "models/encoder/load_encoder.h"
#include "tests/test_paths.h"
#include "tests/test_tensors.h"

using namespace peftcpp::models;
namespace fs = std::filesystem;
using peftcpp::testing::max_abs_diff;

namespace {

fs::path case_dir(const std::string& name) {
  return peftcpp::testing::fixture_dir() / "models" / name;
}

StateDict io_of(const std::string& name) {
  return load_checkpoint(case_dir(name) / "io.safetensors");
}

EncoderInputs inputs_from(const StateDict& io) {
  EncoderInputs in;
  in.input_ids = io.at("input_ids");
  in.attention_mask = io.at("attention_mask");
  if (io.count("token_type_ids"))
    in.token_type_ids = io.at("token_type_ids");
  return in;
}

// The per-layer prefix a fixture holds as prefix.<layer>.key / .value.
std::vector<KeyValuePrefix> prefix_from(const StateDict& io, int64_t layers) {
  std::vector<KeyValuePrefix> prefix;
  for (int64_t i = 0; i < layers; ++i) {
    const std::string at = "prefix." + std::to_string(i) + ".";
    prefix.push_back({io.at(at + "key"), io.at(at + "value")});
  }
  return prefix;
}

// A random prefix of length P for every layer of `c`, batch B.
std::vector<KeyValuePrefix> random_prefix(const EncoderConfig& c, int64_t B,
                                          int64_t P) {
  std::vector<KeyValuePrefix> prefix;
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    prefix.push_back(
        {torch::randn({B, c.num_attention_heads, P, c.head_dim()}),
         torch::randn({B, c.num_attention_heads, P, c.head_dim()})});
  }
  return prefix;
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

TEST_CASE(
    "A key/value prefix shifts positions as transformers' past_key_values "
    "do (BERT and RoBERTa)",
    "[models][parity][hooks]") {
  torch::NoGradGuard no_grad;
  const fs::path dir = case_dir("prefix");
  {
    // BERT: positions P .. P + T - 1, from ids and from embeddings alike.
    LoadedEncoder m = load_encoder(case_dir("bert_model"));
    const StateDict io = load_checkpoint(dir / "bert_model.safetensors");
    EncoderInputs in = inputs_from(io);
    in.prefix = prefix_from(io, m.config.num_hidden_layers);
    REQUIRE(in.prefix.front().key.size(2) == 4);
    const at::Tensor mask = io.at("attention_mask");
    const EncoderOutput out = m.encoder->forward(in);
    const double hidden_delta =
        max_abs_diff(masked(out.last_hidden_state, mask),
                     masked(io.at("last_hidden_state"), mask));
    const double pooler_delta =
        max_abs_diff(out.pooler_output, io.at("pooler_output"));
    INFO("BERT max |delta| last_hidden_state = "
         << hidden_delta << ", pooler_output = " << pooler_delta);
    CHECK(hidden_delta <= 1e-5);
    CHECK(pooler_delta <= 1e-5);

    EncoderInputs by_embeds = in;
    by_embeds.input_ids = at::Tensor();
    by_embeds.inputs_embeds =
        m.encoder->embeddings->word_embeddings(in.input_ids);
    CHECK(max_abs_diff(
              masked(m.encoder->forward(by_embeds).last_hidden_state, mask),
              masked(io.at("last_hidden_state"), mask)) <= 1e-5);
  }
  {
    // RoBERTa: real tokens from padding_idx + 1 + P; from embeddings,
    // transformers does not shift (padding_idx + 1 .. padding_idx + T).
    LoadedEncoder m = load_encoder(case_dir("roberta_seqcls"));
    const StateDict io = load_checkpoint(dir / "roberta_seqcls.safetensors");
    EncoderInputs in = inputs_from(io);
    in.prefix = prefix_from(io, m.config.num_hidden_layers);
    const double ids_delta =
        max_abs_diff(m.classifier->forward(in), io.at("logits"));
    EncoderInputs by_embeds = in;
    by_embeds.input_ids = at::Tensor();
    by_embeds.inputs_embeds =
        m.base()->embeddings->word_embeddings(in.input_ids);
    const double embeds_delta = max_abs_diff(m.classifier->forward(by_embeds),
                                             io.at("logits_from_embeds"));
    INFO("RoBERTa max |delta| logits = "
         << ids_delta << ", from inputs_embeds = " << embeds_delta);
    CHECK(ids_delta <= 1e-5);
    CHECK(embeds_delta <= 1e-5);
  }
}

TEST_CASE(
    "A malformed key/value prefix or a prefix-length mask is refused with "
    "a message naming the tensor",
    "[models][errors][hooks]") {
  torch::NoGradGuard no_grad;
  LoadedEncoder m = load_encoder(case_dir("bert_model"));
  const auto& c = m.config;  // 2 layers, 4 heads, head_dim 8
  REQUIRE(c.num_hidden_layers == 2);
  const EncoderInputs base = inputs_from(io_of("bert_model"));  // B = 3
  const int64_t B = 3, P = 4;
  auto with = [&](const std::vector<KeyValuePrefix>& prefix) {
    EncoderInputs in = base;
    in.prefix = prefix;
    return in;
  };
  const auto good = random_prefix(c, B, P);
  CHECK_NOTHROW(m.encoder->forward(with(good)));

  auto longer = good;
  longer[1].key = torch::randn({B, 4, P + 1, 8});
  CHECK_THROWS_WITH(
      m.encoder->forward(with(longer)),
      Catch::StartsWith("[EncoderModel] expected every prefix key and value "
                        "of shape [B, num_heads, P, head_dim] = [3, 4, 4, 8] "
                        "(P from prefix[0].key), got prefix[1].key of shape "
                        "[3, 4, 5, 8]") &&
          Catch::Contains("the same prefix length P"));

  auto value_longer = good;
  value_longer[0].value = torch::randn({B, 4, P + 2, 8});
  CHECK_THROWS_WITH(
      m.encoder->forward(with(value_longer)),
      Catch::Contains("got prefix[0].value of shape [3, 4, 6, 8]"));

  auto one_row = good;
  one_row[0].key = torch::randn({1, 4, P, 8});
  CHECK_THROWS_WITH(
      m.encoder->forward(with(one_row)),
      Catch::Contains("= [3, 4, P, 8], got prefix[0].key of shape [1, 4, 4, "
                      "8]") &&
          Catch::Contains("one prefix row per batch row"));

  auto wrong_heads = good;
  wrong_heads[1].value = torch::randn({B, 2, P, 16});
  CHECK_THROWS_WITH(
      m.encoder->forward(with(wrong_heads)),
      Catch::Contains("got prefix[1].value of shape [3, 2, 4, 16]") &&
          Catch::Contains("num_heads and head_dim are the model's"));

  auto unsplit = good;
  unsplit[0].key = torch::randn({B, P, c.hidden_size});
  CHECK_THROWS_WITH(m.encoder->forward(with(unsplit)),
                    Catch::Contains("got prefix[0].key of shape [3, 4, 32]") &&
                        Catch::Contains("split the heads"));

  auto missing = good;
  missing[1].value = at::Tensor();
  CHECK_THROWS_WITH(m.encoder->forward(with(missing)),
                    Catch::Contains("got prefix[1].value undefined"));

  // PEFT's [B, P + T] mask is transformers' convention, not ours.
  EncoderInputs peft_mask = with(good);
  peft_mask.attention_mask = torch::cat(
      {torch::ones({B, P}, base.attention_mask.options()), base.attention_mask},
      1);
  CHECK_THROWS_WITH(
      m.encoder->forward(peft_mask),
      Catch::Contains("expected attention_mask of shape [3, 11]") &&
          Catch::Contains("without the P ones PEFT prepends"));
}

TEST_CASE(
    "With a key/value prefix the token limit is what transformers' shifted "
    "positions allow",
    "[models][errors][hooks]") {
  torch::NoGradGuard no_grad;
  const int64_t P = 4;
  auto ids = [](int64_t T) { return torch::full({1, T}, 5, torch::kLong); };
  {
    // BERT: positions P .. P + T - 1 must fit 64 rows.
    LoadedEncoder m = load_encoder(case_dir("bert_model"));
    EncoderInputs in;
    in.prefix = random_prefix(m.config, 1, P);
    in.input_ids = ids(60);
    CHECK_NOTHROW(m.encoder->forward(in));
    in.input_ids = ids(61);
    CHECK_THROWS_WITH(
        m.encoder->forward(in),
        Catch::Contains("expected at most 60 tokens (max_position_embeddings "
                        "64 less the key/value prefix's 4 positions), got 61 "
                        "tokens") &&
            Catch::Contains("--max-length 60, or use a shorter prefix"));
    // Explicit positions are used as given: only the table bounds them.
    in.position_ids = torch::arange(61).unsqueeze(0);
    CHECK_NOTHROW(m.encoder->forward(in));
    in.position_ids = torch::arange(4, 65).unsqueeze(0);
    CHECK_THROWS_WITH(m.encoder->forward(in),
                      Catch::Contains("expected position_ids in [0, 64)") &&
                          Catch::Contains("got position_ids from 4 to 64"));
  }
  {
    // RoBERTa (66 rows, padding_idx 1): real tokens take padding_idx + 1 + P
    // onwards, so 60 of them fit with P = 4; padding takes no row.
    LoadedEncoder m = load_encoder(case_dir("roberta_seqcls"));
    EncoderInputs in;
    in.prefix = random_prefix(m.config, 1, P);
    in.input_ids = ids(60);
    CHECK_NOTHROW(m.classifier->forward(in));
    in.input_ids = torch::cat(
        {ids(60), torch::full({1, 10}, m.config.pad_token_id, torch::kLong)},
        1);
    CHECK_NOTHROW(m.classifier->forward(in));
    in.input_ids = ids(61);
    CHECK_THROWS_WITH(
        m.classifier->forward(in),
        Catch::Contains("expected at most 60 tokens (max_position_embeddings "
                        "66 less padding_idx + 1 = 2 unused rows less the "
                        "key/value prefix's 4 positions), got 61 tokens "
                        "(not padding) in a row"));
    // From embeddings transformers does not shift: 64 tokens still fit.
    in.input_ids = at::Tensor();
    in.inputs_embeds = torch::randn({1, 64, m.config.hidden_size});
    CHECK_NOTHROW(m.classifier->forward(in));
    in.inputs_embeds = torch::randn({1, 65, m.config.hidden_size});
    CHECK_THROWS_WITH(m.classifier->forward(in),
                      Catch::Contains("expected at most 64 tokens") &&
                          Catch::Contains("got 65 tokens"));
  }
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
