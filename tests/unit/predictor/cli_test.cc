// `ferry model train|eval|rank` end to end through the real binary (synthetic CPU data and
// two real days, so it stays fast). Skipped only when the ferry binary was not built.
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "test_util.h"

namespace ferry::predictor {
namespace {

std::string ferry_binary() {
  if (const char* cli = std::getenv("FERRY_CLI"); cli != nullptr) {
    return cli;
  }
  const char* bin = std::getenv("FERRY_BINARY_DIR");
  return bin == nullptr ? "" : std::string(bin) + "/tools/ferry";
}

struct Run {
  int status = -1;
  std::string out;
};

Run run(const std::string& args) {
  Run r;
  const std::string cmd = ferry_binary() + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) {
    return r;
  }
  char buf[4096];
  for (std::size_t n; (n = fread(buf, 1, sizeof buf, p)) > 0;) {
    r.out.append(buf, n);
  }
  const int st = pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

class ModelCli : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(ferry_binary())) {
      GTEST_SKIP() << "ferry binary not built at '" << ferry_binary() << "'";
    }
  }
};

TEST_F(ModelCli, EvalTrainRankOnSyntheticCpuData) {
  const auto dir = test::scratch_dir("cli");
  const auto svg = (dir / "e.svg").string(), model = (dir / "m.json").string();
  auto eval = run("model eval --cpu-synth --rounds 10 --no-classifier --svg " + svg);
  ASSERT_EQ(eval.status, 0) << eval.out;
  EXPECT_NE(eval.out.find("SYNTHETIC"), std::string::npos);
  EXPECT_NE(eval.out.find("| XGBoost rank:pairwise |"), std::string::npos);
  std::ifstream in(svg);
  std::stringstream ss;
  ss << in.rdbuf();
  EXPECT_EQ(ss.str().rfind("<svg", 0), 0u);
  EXPECT_NE(ss.str().find("polyline"), std::string::npos);
  auto train = run("model train --cpu-synth --rounds 10 --train-days 40 --out " + model);
  ASSERT_EQ(train.status, 0) << train.out;
  auto rank = run("model rank --cpu-synth --model " + model + " --day 45 --top 3 --guests host0001=4");
  ASSERT_EQ(rank.status, 0) << rank.out;
  EXPECT_NE(rank.out.find("evacuate"), std::string::npos);
  EXPECT_NE(rank.out.find(" 3. "), std::string::npos);
  auto bad_day = run("model rank --cpu-synth --model " + model + " --day x");
  EXPECT_EQ(bad_day.status, 1);
  EXPECT_NE(bad_day.out.find("bad --day"), std::string::npos) << bad_day.out;
  // The CPU model refuses disk telemetry with a clear message.
  auto wrong = run("model rank --model " + model + " --max-days 2");
  EXPECT_EQ(wrong.status, 1);
  EXPECT_NE(wrong.out.find("wrong feature set"), std::string::npos) << wrong.out;
}

TEST_F(ModelCli, BadInputsExitNonZeroWithAMessage) {
  const auto dir = test::scratch_dir("cli-bad");
  auto missing = run("model rank --model " + (dir / "none.json").string());
  EXPECT_EQ(missing.status, 1);
  EXPECT_NE(missing.out.find("cannot open model"), std::string::npos) << missing.out;
  std::ofstream(dir / "corrupt.json") << "{\"format\": \"ferry-risk-model\", \"version\": 1";
  auto corrupt = run("model rank --model " + (dir / "corrupt.json").string() + " --cpu-synth");
  EXPECT_EQ(corrupt.status, 1);
  EXPECT_NE(corrupt.out.find("corrupt model"), std::string::npos) << corrupt.out;
  auto no_data = run("model eval --data " + dir.string());
  EXPECT_EQ(no_data.status, 1);
  EXPECT_NE(no_data.out.find("no YYYY-MM-DD"), std::string::npos) << no_data.out;
  auto bad_split = run("model eval --cpu-synth --train-days 100");
  EXPECT_EQ(bad_split.status, 1);
  EXPECT_NE(bad_split.out.find("train days"), std::string::npos) << bad_split.out;
}

}  // namespace
}  // namespace ferry::predictor
