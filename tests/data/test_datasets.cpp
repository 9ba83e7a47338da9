// GLUE and user-table loading: the real GLUE files with the row counts of
// their README, the layouts of the tasks that are too big to ship (MNLI,
// QQP) from small files in their shape, user TSV/CSV/JSONL with column
// mappings and label inference, and the errors a user meets, by message.

#include <catch2/catch.hpp>

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "data/dataset/glue.h"
#include "data/dataset/table_file.h"
#include "tests/data/dataset_test_util.h"

namespace data = peftcpp::data;
namespace fs = std::filesystem;
using Catch::Contains;
using peftcpp::testing::glue_root;
using peftcpp::testing::message_of;
using peftcpp::testing::ScratchDir;
using peftcpp::testing::write_bytes;

namespace {

data::LabeledDataset load_glue(const std::string& task,
                               const std::string& split) {
  const auto& t = data::glue_task(task);
  return data::load_glue_split(t, glue_root() / t.folder, split);
}

std::vector<std::string> metric_names(const std::string& task) {
  std::vector<std::string> names;
  for (auto m : data::glue_task(task).metrics)
    names.push_back(data::metric_name(m));
  return names;
}

std::map<float, int> label_counts(const data::LabeledDataset& d) {
  std::map<float, int> counts;
  for (const auto& e : d.examples)
    ++counts[e.label];
  return counts;
}

}  // namespace

TEST_CASE(
    "every GLUE file in shared/data/glue loads with its README's row "
    "count",
    "[data][glue]") {
  struct Split {
    const char* task;
    const char* split;
    size_t rows;
    bool pairs;
  };
  const std::vector<Split> splits{
      {"cola", "train", 8551, false},  {"cola", "dev", 1043, false},
      {"sst2", "train", 67349, false}, {"sst2", "dev", 872, false},
      {"mrpc", "train", 3668, true},   {"mrpc", "dev", 408, true},
      {"mrpc", "test", 1725, true},    {"stsb", "train", 5749, true},
      {"stsb", "dev", 1500, true},     {"stsb", "test", 1379, true},
      {"rte", "train", 2490, true},    {"rte", "dev", 277, true},
      {"wnli", "train", 635, true},    {"wnli", "dev", 71, true},
      {"qnli", "dev", 5463, true},
  };
  for (const auto& s : splits) {
    INFO(s.task << " " << s.split);
    const auto d = load_glue(s.task, s.split);
    CHECK(d.size() == s.rows);
    CHECK(d.has_pairs() == s.pairs);
    CHECK(d.kind == data::glue_task(s.task).kind);
    CHECK(d.label_names == data::glue_task(s.task).label_names);
    const bool test = std::string(s.split) == "test";
    for (const auto& e : d.examples) {
      CHECK(e.text_pair.has_value() == s.pairs);
      if (test) {
        CHECK(std::isnan(e.label));
      } else if (d.kind == data::TaskKind::kRegression) {
        CHECK((e.label >= 0.0f && e.label <= 5.0f));
      } else {
        CHECK((e.label == 0.0f || e.label == 1.0f));
      }
    }
  }
}

TEST_CASE("GLUE quirks: text is kept as written, labels index the names",
          "[data][glue]") {
  SECTION("SST-2 keeps its trailing spaces and its label balance") {
    const auto train = load_glue("sst2", "train");
    CHECK(train.examples[0].text ==
          "hide new secretions from the parental units ");
    CHECK(train.examples[0].label == 0.0f);
    const auto dev = load_glue("SST-2", "dev");
    const auto counts = label_counts(dev);
    CHECK(counts.at(0.0f) == 428);
    CHECK(counts.at(1.0f) == 444);
  }
  SECTION("MRPC's header has a BOM; quotes are literal characters") {
    const auto dev = load_glue("mrpc", "dev");
    CHECK(dev.examples[0].text ==
          "He said the foodservice pie business doesn't fit the company's "
          "long-term growth strategy.");
    CHECK(*dev.examples[0].text_pair ==
          "\"The foodservice pie business does not fit our long-term growth "
          "strategy.");
    CHECK(dev.examples[0].label == 1.0f);
  }
  SECTION("CoLA has no header, and its dev file no final newline") {
    const auto train = load_glue("cola", "train");
    CHECK(train.examples[0].text ==
          "Our friends won't buy this analysis, let alone the next one we "
          "propose.");
    const auto dev = load_glue("cola", "dev");
    CHECK(dev.examples.back().text == "John talked to Bill about himself.");
    CHECK(dev.examples.back().label == 1.0f);
  }
  SECTION("STS-B scores are real values; its test file has none") {
    const auto train = load_glue("sts-b", "train");
    CHECK(train.kind == data::TaskKind::kRegression);
    CHECK(train.num_labels() == 1);
    CHECK(train.examples[0].text == "A plane is taking off.");
    CHECK(*train.examples[0].text_pair == "An air plane is taking off.");
    CHECK(train.examples[0].label == 5.0f);
    CHECK(train.examples[1].label == Approx(3.8f));
  }
  SECTION("RTE labels are words, indexed in the task's order") {
    const auto dev = load_glue("rte", "dev");
    CHECK(dev.label_names ==
          std::vector<std::string>{"entailment", "not_entailment"});
    CHECK(dev.examples[0].label == 1.0f);  // not_entailment
    const auto counts = label_counts(dev);
    CHECK(counts.at(0.0f) == 146);
    CHECK(counts.at(1.0f) == 131);
  }
  SECTION("the GLUE root is accepted in place of the task folder") {
    const auto& t = data::glue_task("wnli");
    CHECK(data::load_glue_split(t, glue_root(), "dev").size() == 71);
  }
}

TEST_CASE("GLUE tasks: names, metrics, lookup", "[data][glue]") {
  const auto& tasks = data::glue_tasks();
  REQUIRE(tasks.size() == 9);
  std::vector<std::string> names;
  for (const auto& t : tasks)
    names.push_back(t.name);
  CHECK(names == std::vector<std::string>{"cola", "sst2", "mrpc", "stsb", "qqp",
                                          "mnli", "qnli", "rte", "wnli"});
  CHECK(data::glue_task("CoLA").primary == data::Metric::kMatthews);
  CHECK(metric_names("mrpc") == std::vector<std::string>{"accuracy", "f1"});
  CHECK(data::glue_task("QQP").primary == data::Metric::kAccuracy);
  CHECK(metric_names("sts_b") ==
        std::vector<std::string>{"pearson", "spearmanr"});
  CHECK(metric_names("sst2") == std::vector<std::string>{"accuracy"});
  CHECK(data::glue_task("mnli").dev_split == "dev_matched");
  CHECK(data::glue_task("MNLI").label_names ==
        std::vector<std::string>{"entailment", "neutral", "contradiction"});
  CHECK(data::glue_task("stsb").label_names.empty());
  const auto msg =
      message_of<std::out_of_range>([] { data::glue_task("imdb"); });
  CHECK_THAT(msg, Contains("[glue_task] expected a GLUE task") &&
                      Contains("cola, sst2") && Contains("'imdb'"));
  for (auto m :
       {data::Metric::kAccuracy, data::Metric::kF1, data::Metric::kMatthews,
        data::Metric::kPearson, data::Metric::kSpearman})
    CHECK(data::parse_metric(data::metric_name(m)) == m);
  CHECK(data::metric_name(data::Metric::kSpearman) == "spearmanr");
  CHECK_THAT(
      message_of<std::invalid_argument>([] { data::parse_metric("auc"); }),
      Contains("[parse_metric] expected one of accuracy") &&
          Contains("got 'auc'"));
}

TEST_CASE("MNLI and QQP load from files in their GLUE layouts",
          "[data][glue]") {
  ScratchDir dir("glue-layouts");
  const std::string mnli_header =
      "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\t"
      "sentence2_binary_parse\tsentence1_parse\tsentence2_parse\tsentence1\t"
      "sentence2";
  fs::create_directories(dir / "MNLI");
  write_bytes(dir / "MNLI" / "train.tsv",
              mnli_header + "\tlabel1\tgold_label\n" +
                  "0\t31193\t31193n\tgovernment\t( a )\t( b )\t(ROOT a)\t"
                  "(ROOT b)\tConceptually cream skimming has two basic "
                  "dimensions.\tProduct and geography are what make cream "
                  "skimming work. \tneutral\tneutral\n"
                  "1\t101457\t101457e\ttelephone\t( c )\t( d )\t(ROOT c)\t"
                  "(ROOT d)\tyou know \"during the season\" i guess\tYou lose "
                  "the things.\tentailment\tentailment\n"
                  "2\t134793\t134793e\tfiction\t( e )\t( f )\t(ROOT e)\t"
                  "(ROOT f)\tOne of our number.\tA member of my team.\t"
                  "contradiction\tcontradiction");
  write_bytes(dir / "MNLI" / "dev_matched.tsv",
              mnli_header + "\tlabel1\tlabel2\tlabel3\tlabel4\tlabel5\t" +
                  "gold_label\n" +
                  "0\t63735\t63735n\tslate\ta\tb\tc\td\tThe new rights are "
                  "nice enough\tEveryone really likes the newest benefits \t"
                  "neutral\tentailment\tneutral\tneutral\tneutral\tneutral\n");
  write_bytes(dir / "MNLI" / "test_matched.tsv",
              mnli_header + "\n0\t31349\t31349n\tgovernment\ta\tb\tc\td\t" +
                  "Hierbas, ans seco.\tHierbas is a name.\n");
  const auto& mnli = data::glue_task("mnli");
  const auto train = data::load_glue_split(mnli, dir / "MNLI", "train");
  REQUIRE(train.size() == 3);
  CHECK(train.examples[0].text ==
        "Conceptually cream skimming has two basic dimensions.");
  CHECK(*train.examples[0].text_pair ==
        "Product and geography are what make cream skimming work. ");
  CHECK(train.examples[1].text == "you know \"during the season\" i guess");
  // entailment 0, neutral 1, contradiction 2: HF's ClassLabel order.
  CHECK(train.examples[0].label == 1.0f);
  CHECK(train.examples[1].label == 0.0f);
  CHECK(train.examples[2].label == 2.0f);
  const auto dev = data::load_glue_split(mnli, dir.path(), mnli.dev_split);
  REQUIRE(dev.size() == 1);
  CHECK(dev.examples[0].label == 1.0f);  // gold_label, not label2
  const auto test = data::load_glue_split(mnli, dir / "MNLI", "test_matched");
  REQUIRE(test.size() == 1);
  CHECK(std::isnan(test.examples[0].label));
  CHECK(*test.examples[0].text_pair == "Hierbas is a name.");

  fs::create_directories(dir / "QQP");
  write_bytes(dir / "QQP" / "train.tsv",
              "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\r\n"
              "133273\t213221\t213222\tHow is the life of a math student? "
              "Could you describe your own experiences?\tWhich level of "
              "prepration is enough for the exam jlpt5?\t0\r\n"
              "402555\t536040\t536041\tHow do I control my horny emotions?\t"
              "How do you control your horniness?\t1\r\n");
  write_bytes(dir / "QQP" / "test.tsv",
              "id\tquestion1\tquestion2\n0\tWhy do rockets look white?\t"
              "Why are rockets and boosters painted white?\n");
  const auto& qqp = data::glue_task("qqp");
  const auto qtrain = data::load_glue_split(qqp, dir / "QQP", "train");
  REQUIRE(qtrain.size() == 2);
  CHECK(qtrain.examples[1].text == "How do I control my horny emotions?");
  CHECK(*qtrain.examples[1].text_pair == "How do you control your horniness?");
  CHECK(qtrain.examples[0].label == 0.0f);
  CHECK(qtrain.examples[1].label == 1.0f);
  const auto qtest = data::load_glue_split(qqp, dir / "QQP", "test");
  CHECK(std::isnan(qtest.examples[0].label));

  // CoLA's train and dev files have no header, its test file has one.
  fs::create_directories(dir / "CoLA");
  write_bytes(dir / "CoLA" / "test.tsv",
              "index\tsentence\n0\tBill whistled past the house.\n");
  const auto ctest =
      data::load_glue_split(data::glue_task("cola"), dir / "CoLA", "test");
  REQUIRE(ctest.size() == 1);
  CHECK(ctest.examples[0].text == "Bill whistled past the house.");
  CHECK(std::isnan(ctest.examples[0].label));
}

TEST_CASE("bad GLUE files are refused with the file, line and a hint",
          "[data][glue][errors]") {
  ScratchDir dir("glue-errors");
  const auto& rte = data::glue_task("rte");
  const auto& sst2 = data::glue_task("sst2");
  SECTION("a label outside the task's set") {
    write_bytes(dir / "dev.tsv",
                "index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\n"
                "1\tc\td\tmaybe\n");
    const auto msg = message_of<std::runtime_error>(
        [&] { data::load_glue_split(rte, dir.path(), "dev"); });
    CHECK_THAT(msg, Contains("dev.tsv:3] expected a label in {entailment, "
                             "not_entailment} (GLUE RTE), got 'maybe'"));
  }
  SECTION("a missing column lists the columns found") {
    write_bytes(dir / "train.tsv", "text\tlabel\nfine\t1\n");
    const auto msg = message_of<std::runtime_error>(
        [&] { data::load_glue_split(sst2, dir.path(), "train"); });
    CHECK_THAT(msg, Contains("train.tsv:1] expected a column 'sentence'") &&
                        Contains("got the columns 'text', 'label'") &&
                        Contains("(hint: is this the SST-2 folder"));
  }
  SECTION("a training file without its label column") {
    write_bytes(dir / "train.tsv", "index\tsentence\n0\tfine\n");
    CHECK_THAT(message_of<std::runtime_error>(
                   [&] { data::load_glue_split(sst2, dir.path(), "train"); }),
               Contains("expected a column 'label'"));
  }
  SECTION("an empty file, a file with only a header, no file") {
    write_bytes(dir / "dev.tsv", "");
    CHECK_THAT(
        message_of<std::runtime_error>(
            [&] { data::load_glue_split(sst2, dir.path(), "dev"); }),
        Contains("dev.tsv:1] expected GLUE's SST-2 rows, got an empty file"));
    write_bytes(dir / "dev.tsv", "sentence\tlabel\n");
    CHECK_THAT(message_of<std::runtime_error>(
                   [&] { data::load_glue_split(sst2, dir.path(), "dev"); }),
               Contains("expected at least one example, got only a header"));
    CHECK_THAT(message_of<std::runtime_error>(
                   [&] { data::load_glue_split(sst2, dir.path(), "train"); }),
               Contains("[load_glue_split] expected the SST-2 file") &&
                   Contains("got no such file"));
  }
  SECTION("a line that is not UTF-8") {
    write_bytes(dir / "dev.tsv",
                "sentence\tlabel\nok\t1\ncaf\xe9 au lait\t0\n");
    CHECK_THAT(message_of<std::runtime_error>(
                   [&] { data::load_glue_split(sst2, dir.path(), "dev"); }),
               Contains("dev.tsv:3] expected UTF-8 text, got the byte 0xE9 "
                        "at column 4") &&
                   Contains("(hint: convert the file to UTF-8"));
  }
  SECTION("a row with a stray tab") {
    write_bytes(dir / "dev.tsv", "sentence\tlabel\nok\t1\nnot\tok\t0\n");
    CHECK_THAT(message_of<std::runtime_error>(
                   [&] { data::load_glue_split(sst2, dir.path(), "dev"); }),
               Contains("dev.tsv:3] expected 2 tab-separated fields as in the "
                        "header (line 1), got 3"));
  }
}

TEST_CASE("user TSV, CSV and JSONL tables load through a column mapping",
          "[data][table]") {
  ScratchDir dir("tables");
  SECTION("TSV pairs with integer labels inferred numerically") {
    write_bytes(dir / "train.tsv",
                "id\tpremise\thypothesis\tgold\n1\tA \"quoted\" cat.\tA cat."
                "\t10\n2\tB\tb\t2\n3\tC\tc\t-1\n4\tD\td\t2\n");
    data::ColumnMapping cols;
    cols.text = "premise";
    cols.text_pair = "hypothesis";
    cols.label = "gold";
    const auto d =
        data::load_table(dir / "train.tsv", data::TableFormat::kAuto, cols, {});
    REQUIRE(d.size() == 4);
    CHECK(d.has_pairs());
    CHECK(d.label_names == std::vector<std::string>{"-1", "2", "10"});
    CHECK(d.examples[0].text == "A \"quoted\" cat.");  // TSV: no quoting
    CHECK(*d.examples[0].text_pair == "A cat.");
    CHECK(d.examples[0].label == 2.0f);
    CHECK(d.examples[2].label == 0.0f);
    CHECK(d.source == dir / "train.tsv");
  }
  SECTION("TSV without a header names columns by index") {
    write_bytes(dir / "plain.tsv", "pos\tgreat film\nneg\tdull\nneu\tfine");
    data::ColumnMapping cols;
    cols.has_header = false;
    cols.text = "1";
    cols.label = "0";
    const auto d =
        data::load_table(dir / "plain.tsv", data::TableFormat::kTsv, cols, {});
    REQUIRE(d.size() == 3);
    CHECK(d.label_names == std::vector<std::string>{"neg", "neu", "pos"});
    CHECK(d.examples[2].text == "fine");
    CHECK(d.examples[2].label == 1.0f);
  }
  SECTION("CSV with RFC 4180 quoting, CRLF and a BOM; labels given") {
    write_bytes(dir / "data.csv",
                "\xEF\xBB\xBFsentence,label\r\n"
                "\"Hello, world\",positive\r\n"
                "\"She said \"\"hi\"\"\",negative\r\n"
                "\"two\nlines\",positive\r\n"
                "\r\n"
                "plain,negative\r\n"
                "\"\",positive");
    data::LabelSpec labels;
    labels.label_names = {"negative", "positive"};
    data::ColumnMapping cols;
    cols.text = "sentence";
    const auto d = data::load_table(dir / "data.csv", data::TableFormat::kAuto,
                                    cols, labels);
    REQUIRE(d.size() == 5);
    CHECK(d.examples[0].text == "Hello, world");
    CHECK(d.examples[0].label == 1.0f);
    CHECK(d.examples[1].text == "She said \"hi\"");
    CHECK(d.examples[2].text == "two\nlines");
    CHECK(d.examples[3].text == "plain");
    CHECK(d.examples[3].label == 0.0f);
    CHECK(d.examples[4].text.empty());
    CHECK(d.label_names == labels.label_names);
  }
  SECTION("JSONL with pairs and integer or string labels") {
    write_bytes(
        dir / "data.jsonl",
        "{\"q\": \"Is it?\", \"a\": \"Yes \\u00e9.\", \"y\": 1}\n"
        "\n"
        "{\"q\": \"No?\", \"a\": \"No.\", \"y\": \"0\", \"extra\": 3}\n");
    data::ColumnMapping cols;
    cols.text = "q";
    cols.text_pair = "a";
    cols.label = "y";
    const auto d = data::load_table(dir / "data.jsonl",
                                    data::TableFormat::kAuto, cols, {});
    REQUIRE(d.size() == 2);
    CHECK(d.label_names == std::vector<std::string>{"0", "1"});
    CHECK(*d.examples[0].text_pair == "Yes \xC3\xA9.");
    CHECK(d.examples[0].label == 1.0f);
    CHECK(d.examples[1].label == 0.0f);
  }
  SECTION("regression from JSONL numbers and from TSV text") {
    write_bytes(dir / "r.jsonl",
                "{\"text\": \"a\", \"label\": 4.25}\n"
                "{\"text\": \"b\", \"label\": 1}\n");
    data::LabelSpec reg;
    reg.kind = data::TaskKind::kRegression;
    const auto j =
        data::load_table(dir / "r.jsonl", data::TableFormat::kJsonl, {}, reg);
    CHECK(j.kind == data::TaskKind::kRegression);
    CHECK(j.num_labels() == 1);
    CHECK(j.label_names.empty());
    CHECK(j.examples[0].label == 4.25f);
    CHECK(j.examples[1].label == 1.0f);
    write_bytes(dir / "r.tsv", "text\tlabel\na\t3.800\nb\t-0.5\n");
    const auto t =
        data::load_table(dir / "r.tsv", data::TableFormat::kAuto, {}, reg);
    CHECK(t.examples[0].label == Approx(3.8f));
    CHECK(t.examples[1].label == -0.5f);
  }
  SECTION("labels that are not all integers sort as text") {
    CHECK(data::infer_label_names({"b", "10", "a", "2", "b"}) ==
          std::vector<std::string>{"10", "2", "a", "b"});
    CHECK(data::infer_label_names({"10", "2", "-3", "2"}) ==
          std::vector<std::string>{"-3", "2", "10"});
  }
  SECTION("keep_first keeps a prefix; n < 0 keeps all") {
    write_bytes(dir / "k.tsv", "text\tlabel\na\t0\nb\t1\nc\t0\n");
    auto d = data::load_table(dir / "k.tsv", data::TableFormat::kAuto, {}, {});
    data::keep_first(d, -1);
    CHECK(d.size() == 3);
    data::keep_first(d, 10);
    CHECK(d.size() == 3);
    data::keep_first(d, 2);
    REQUIRE(d.size() == 2);
    CHECK(d.examples[1].text == "b");
  }
}

TEST_CASE("bad user tables are refused with the file, line and a hint",
          "[data][table][errors]") {
  ScratchDir dir("table-errors");
  auto load = [&](const std::string& name, const data::ColumnMapping& cols,
                  const data::LabelSpec& labels) {
    return data::load_table(dir / name, data::TableFormat::kAuto, cols, labels);
  };
  SECTION("a TSV without the mapped column lists the columns it has") {
    write_bytes(dir / "a.tsv", "sentence\tscore\nx\t1\n");
    data::ColumnMapping cols;
    cols.text = "sentence";
    const auto msg =
        message_of<std::runtime_error>([&] { load("a.tsv", cols, {}); });
    CHECK_THAT(msg, Contains("a.tsv:1] expected a column 'label' for the "
                             "label, got the columns 'sentence', 'score' "
                             "(hint: set the column mapping"));
  }
  SECTION("a label outside the given set") {
    write_bytes(dir / "b.csv", "text,label\nx,pos\ny,neutral\n");
    data::LabelSpec labels;
    labels.label_names = {"neg", "pos"};
    const auto msg =
        message_of<std::runtime_error>([&] { load("b.csv", {}, labels); });
    CHECK_THAT(msg, Contains("b.csv:3] expected a label in {neg, pos}, got "
                             "'neutral' (hint: labels are matched by name"));
  }
  SECTION("an empty file, and one with only a header") {
    write_bytes(dir / "c.jsonl", "\n  \n");
    CHECK_THAT(message_of<std::runtime_error>([&] { load("c.jsonl", {}, {}); }),
               Contains("c.jsonl:1] expected at least one JSON object, got an "
                        "empty file"));
    write_bytes(dir / "c.tsv", "");
    CHECK_THAT(message_of<std::runtime_error>([&] { load("c.tsv", {}, {}); }),
               Contains("c.tsv:1] expected a header and rows, got an empty "
                        "file"));
    write_bytes(dir / "d.csv", "text,label\n");
    CHECK_THAT(message_of<std::runtime_error>([&] { load("d.csv", {}, {}); }),
               Contains("expected at least one row after the header, got only "
                        "a header"));
  }
  SECTION("a line that is not UTF-8") {
    write_bytes(dir / "e.jsonl",
                "{\"text\": \"ok\", \"label\": 0}\n"
                "{\"text\": \"\xff\xfe\", \"label\": 1}\n");
    CHECK_THAT(message_of<std::runtime_error>([&] { load("e.jsonl", {}, {}); }),
               Contains("e.jsonl:2] expected UTF-8 text, got the byte 0xFF at "
                        "column 11"));
    // An overlong encoding of '/' is not UTF-8 either.
    write_bytes(dir / "e.tsv", "text\tlabel\n\xC0\xAF\t1\n");
    CHECK_THAT(message_of<std::runtime_error>([&] { load("e.tsv", {}, {}); }),
               Contains("e.tsv:2] expected UTF-8 text, got the byte 0xC0"));
  }
  SECTION("malformed JSONL") {
    write_bytes(dir / "f.jsonl",
                "{\"text\": \"ok\", \"label\": 0}\n"
                "{\"text\": \"cut off\", \"label\": \n");
    CHECK_THAT(message_of<std::runtime_error>([&] { load("f.jsonl", {}, {}); }),
               Contains("f.jsonl:2] expected one JSON object per line, got "
                        "invalid JSON") &&
                   Contains("hint: JSONL holds one complete object"));
    write_bytes(dir / "g.jsonl", "[\"text\", 1]\n");
    CHECK_THAT(message_of<std::runtime_error>([&] { load("g.jsonl", {}, {}); }),
               Contains("g.jsonl:1] expected a JSON object, got a JSON array"));
    write_bytes(dir / "h.jsonl", "{\"sentence\": \"x\", \"label\": 0}\n");
    CHECK_THAT(message_of<std::runtime_error>([&] { load("h.jsonl", {}, {}); }),
               Contains("h.jsonl:1] expected a key 'text' for the text, got "
                        "the keys 'label', 'sentence'"));
    write_bytes(dir / "i.jsonl", "{\"text\": 5, \"label\": 0}\n");
    CHECK_THAT(message_of<std::runtime_error>([&] { load("i.jsonl", {}, {}); }),
               Contains("i.jsonl:1] expected a string under 'text', got a "
                        "JSON number"));
    write_bytes(dir / "j.jsonl", "{\"text\": \"x\", \"label\": 0.5}\n");
    CHECK_THAT(message_of<std::runtime_error>([&] { load("j.jsonl", {}, {}); }),
               Contains("expected a string or an integer as the label, got "
                        "'0.5'"));
  }
  SECTION("broken CSV quoting") {
    write_bytes(dir / "k.csv", "text,label\n\"open,1\nmore,0\n");
    CHECK_THAT(message_of<std::runtime_error>([&] { load("k.csv", {}, {}); }),
               Contains("k.csv:2] expected a closing quote for a quoted field, "
                        "got the end of the file"));
    write_bytes(dir / "l.csv", "text,label\n\"a\"b,1\n");
    CHECK_THAT(message_of<std::runtime_error>([&] { load("l.csv", {}, {}); }),
               Contains("l.csv:2] expected a comma or the line's end after a "
                        "closing quote, got 'b,1' at column 4"));
    write_bytes(dir / "m.csv", "text,label\na,b,1\n");
    CHECK_THAT(message_of<std::runtime_error>([&] { load("m.csv", {}, {}); }),
               Contains("m.csv:2] expected 2 comma-separated fields as on "
                        "line 1, got 3 (hint: quote fields that hold commas)"));
  }
  SECTION("a regression label that is not a number; empty labels") {
    write_bytes(dir / "n.tsv", "text\tlabel\na\t0.5\nb\thigh\n");
    data::LabelSpec reg;
    reg.kind = data::TaskKind::kRegression;
    CHECK_THAT(message_of<std::runtime_error>([&] { load("n.tsv", {}, reg); }),
               Contains("n.tsv:3] expected a number as the regression label, "
                        "got 'high'"));
    write_bytes(dir / "o.tsv", "text\tlabel\na\t\n");
    CHECK_THAT(message_of<std::runtime_error>([&] { load("o.tsv", {}, {}); }),
               Contains("o.tsv:2] expected a label, got an empty field"));
  }
  SECTION("bad options and missing files") {
    CHECK_THAT(
        message_of<std::invalid_argument>([&] { load("data.txt", {}, {}); }),
        Contains("[load_table] expected a file ending in .tsv, .csv, "
                 ".jsonl or .json"));
    CHECK_THAT(message_of<std::invalid_argument>(
                   [] { data::parse_table_format("xlsx"); }),
               Contains("[parse_table_format] expected one of auto, tsv, csv, "
                        "jsonl, got 'xlsx'"));
    CHECK(data::parse_table_format("csv") == data::TableFormat::kCsv);
    CHECK_THAT(
        message_of<std::runtime_error>([&] { load("missing.tsv", {}, {}); }),
        Contains("[load_table] expected a readable file") &&
            Contains("(no such file)"));
    data::ColumnMapping cols;
    cols.has_header = false;
    cols.text = "text";
    write_bytes(dir / "p.tsv", "a\t1\n");
    CHECK_THAT(message_of<std::runtime_error>([&] { load("p.tsv", cols, {}); }),
               Contains("expected a 0-based column index below 2 for the text "
                        "(the file has no header), got 'text'"));
  }
}
