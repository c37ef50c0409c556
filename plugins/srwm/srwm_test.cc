#include "plugins/srwm/srwm.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/nn/module.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ouroboros/api/registry.h"
#include "ouroboros/base/json.h"
#include "ouroboros/base/status_macros.h"
#include "ouroboros/config/config.h"
#include "ouroboros/runs/checkpoint.h"
#include "ouroboros/train/resume_check.h"
#include "ouroboros/train/trainer.h"
#include "plugins/srwm/default_config.h"
#include "plugins/srwm/episodes.h"

namespace ouroboros::srwm {
namespace {

// `source_fields`: more fields of data_config.source_config ("\"ways\": 3").
RunConfig ConfigWith(const std::string& model_config,
                     const std::string& source_fields = "",
                     const std::string& images = "synthetic") {
  std::string json = R"({"model": "srwm", "seed": 1,
    "data_config": {"dataset": "fewshot_episodes",
                    "synthetic": {"num_samples": 100, "num_features": 256,
                                  "num_classes": 5},
                    "source_config": {"images": ")" +
                     images + "\"" +
                     (source_fields.empty() ? "" : ", " + source_fields) +
                     R"(}},
    "optim_config": {"name": "adam", "lr": 0.003},
    "run_config": {"epochs": 1, "batch_size": 4},
    "model_config": )" +
                     model_config + "}";
  absl::StatusOr<RunConfig> config = ParseRunConfig(json, "test.json");
  EXPECT_TRUE(config.ok()) << config.status();
  return *config;
}

// Episodes of 3 ways, 16 x 16 images.
DataSpec EpisodeSpec(int64_t steps) { return DataSpec{{steps, 256 + 3}, 3}; }

int64_t ParameterCount(Model& model) {
  int64_t count = 0;
  for (const at::Tensor& p : model.module().parameters()) count += p.numel();
  return count;
}

TEST(SrwmModelTest, EverySequenceModelGivesLogitsPerStepAndLearns) {
  for (const char* kind : {"srwm", "deltanet", "fake_sr", "lstm"}) {
    SCOPED_TRACE(kind);
    RunConfig config = ConfigWith(
        std::string(R"({"hidden_size": 24, "num_heads": 4, "num_layers": 2,
                        "encoder_channels": 4, "sequence_model": ")") +
        kind + "\"}");
    ModelContext context{&config, "test.json", EpisodeSpec(6)};
    absl::StatusOr<std::unique_ptr<Model>> model = MakeSrwm(context);
    ASSERT_TRUE(model.ok()) << model.status();
    at::Tensor inputs = at::rand({2, 6, 259});
    at::Tensor logits = (*model)->Forward(inputs);
    EXPECT_EQ(logits.sizes(), (at::IntArrayRef{2, 6, 3}));
    // Causal: changing the last step leaves the earlier outputs alone.
    at::Tensor changed = inputs.clone();
    changed.select(1, 5).uniform_();
    (*model)->module().eval();
    at::Tensor a = (*model)->Forward(inputs), b = (*model)->Forward(changed);
    EXPECT_TRUE(at::allclose(a.narrow(1, 0, 5), b.narrow(1, 0, 5), 1e-5, 1e-6));
    // The analytic parameter count is the module's.
    const ModelShape shape = ResolveModelShape(*ParseSrwmConfig(config), 3);
    EXPECT_EQ(CountParameters(shape, 3), ParameterCount(**model));
    // Every parameter gets a gradient (Fake-SR: W_0's y rows only).
    (*model)->module().train();
    (*model)
        ->Loss((*model)->Forward(inputs), at::randint(3, {2, 6}))
        .backward();
    for (const auto& p : (*model)->module().named_parameters()) {
      ASSERT_TRUE(p.value().grad().defined()) << p.key();
      EXPECT_GT(p.value().grad().abs().sum().item<double>(), 0) << p.key();
    }
  }
}

TEST(SrwmModelTest, BetaInitShiftsOnlyTheRateRowsOfW0) {
  RunConfig config = ConfigWith(R"({"hidden_size": 64, "num_heads": 4,
                                    "encoder_channels": 4, "beta_init": -3})");
  absl::StatusOr<std::unique_ptr<Model>> model =
      MakeSrwm({&config, "test.json", EpisodeSpec(4)});
  ASSERT_TRUE(model.ok()) << model.status();
  int found = 0;
  const int64_t d = 16;
  for (const auto& p : (*model)->module().named_parameters()) {
    if (p.key().find("w0") == std::string::npos) continue;
    ++found;
    // H x (3d + 4) x d, entries N(0, 1/d) (std 0.25): the means of 192
    // rate entries and of 3,072 others are within 0.1 of the target.
    at::Tensor w0 = p.value();
    EXPECT_NEAR(w0.narrow(1, 3 * d, 4).mean().item<double>(), -3, 0.1);
    EXPECT_NEAR(w0.narrow(1, 0, 3 * d).mean().item<double>(), 0, 0.1);
    EXPECT_NEAR(w0.narrow(1, 3 * d, 4).std().item<double>(), 0.25, 0.1);
  }
  EXPECT_EQ(found, 2);  // one per block
}

TEST(SrwmModelTest, KeyIdentityAddsToTheDiagonalOfTheKeyRows) {
  RunConfig config = ConfigWith(R"({"hidden_size": 64, "num_heads": 4,
                                    "encoder_channels": 4,
                                    "w0_key_identity": 2})");
  absl::StatusOr<std::unique_ptr<Model>> model =
      MakeSrwm({&config, "test.json", EpisodeSpec(4)});
  ASSERT_TRUE(model.ok()) << model.status();
  const int64_t d = 16;
  for (const auto& p : (*model)->module().named_parameters()) {
    if (p.key().find("w0") == std::string::npos) continue;
    at::Tensor keys = p.value().narrow(1, 2 * d, d);  // H x d x d
    at::Tensor diagonal = keys.diagonal(0, 1, 2);
    // 64 diagonal entries N(2, 1/16), 960 off it N(0, 1/16).
    EXPECT_NEAR(diagonal.mean().item<double>(), 2, 0.1);
    EXPECT_NEAR((keys.sum() - diagonal.sum()).item<double>() / (4 * 240), 0,
                0.05);
    EXPECT_NEAR(p.value().narrow(1, 0, 2 * d).mean().item<double>(), 0, 0.1);
  }
}

// srwm_input residual, the authors' layer, is the same parameters wired
// otherwise: LayerNorm(h) + Linear(SRWM(h)) instead of
// h + Linear(SRWM(LayerNorm(h))). It applies to the SRWM and Fake-SR only.
TEST(SrwmModelTest, ResidualSrwmInputRewiresTheSameParameters) {
  const std::string shape =
      R"("hidden_size": 24, "num_heads": 4, "encoder_channels": 4)";
  at::Tensor inputs = at::rand({2, 6, 259});
  for (const char* kind : {"srwm", "fake_sr", "deltanet"}) {
    SCOPED_TRACE(kind);
    RunConfig pre_norm = ConfigWith(
        absl::StrCat("{", shape, R"(, "sequence_model": ")", kind, "\"}"));
    RunConfig residual =
        ConfigWith(absl::StrCat("{", shape, R"(, "sequence_model": ")", kind,
                                R"(", "srwm_input": "residual"})"));
    at::manual_seed(5);
    auto a = MakeSrwm({&pre_norm, "test.json", EpisodeSpec(6)});
    at::manual_seed(5);
    auto b = MakeSrwm({&residual, "test.json", EpisodeSpec(6)});
    ASSERT_TRUE(a.ok() && b.ok());
    auto pa = (*a)->module().named_parameters();
    auto pb = (*b)->module().named_parameters();
    ASSERT_EQ(pa.size(), pb.size());
    for (const auto& p : pa) {
      ASSERT_TRUE(at::equal(p.value(), pb[p.key()])) << p.key();
    }
    (*a)->module().eval();
    (*b)->module().eval();
    at::Tensor ya = (*a)->Forward(inputs), yb = (*b)->Forward(inputs);
    const bool rewired = std::string(kind) != "deltanet";
    EXPECT_EQ(!at::allclose(ya, yb, 1e-4, 1e-5), rewired);
    // Still causal.
    at::Tensor changed = inputs.clone();
    changed.select(1, 5).uniform_();
    EXPECT_TRUE(at::allclose(yb.narrow(1, 0, 5),
                             (*b)->Forward(changed).narrow(1, 0, 5), 1e-5,
                             1e-6));
  }
}

// Stands in for the Trainer: keeps the batch a model's TrainStep hands to
// StandardTrainStep.
class RecordingContext : public TrainingContext {
 public:
  explicit RecordingContext(const RunConfig& config) : config_(config) {}
  const RunConfig& config() const override { return config_; }
  torch::optim::Optimizer& optimizer() override { std::abort(); }
  int64_t step() const override { return 0; }
  int64_t epoch() const override { return 0; }
  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  const std::string& run_dir() const override { return run_dir_; }
  const DataSplits& data() const override { return data_; }
  bool writes_outputs() const override { return false; }
  absl::StatusOr<double> StandardTrainStep(const Batch& batch) override {
    seen = batch;
    return 0.5;
  }
  absl::Status SynchronizeGradients() override { return absl::OkStatus(); }
  absl::StatusOr<std::map<std::string, double>> StandardEvaluate(
      const Dataset&) override {
    return std::map<std::string, double>{};
  }
  void LogScalar(const std::string&, double) override {}
  Batch seen;

 private:
  const RunConfig& config_;
  std::string run_dir_;
  DataSplits data_;
};

// query_loss_only: the support steps' targets become nll_loss's
// ignore_index, found from the packed inputs alone; the queries' are kept.
TEST(SrwmModelTest, QueryLossOnlyIgnoresExactlyTheSupportSteps) {
  ClassPool pool = SyntheticClassPool(6, 10, 16, 0.1, 3, 0);
  for (int shots : {1, 3}) {
    SCOPED_TRACE(shots);
    EpisodeSampler sampler(&pool, /*ways=*/3, shots, /*queries_per_class=*/2);
    std::mt19937_64 rng(7);
    EpisodeBatch episodes = sampler.Sample(5, rng);
    const Batch batch{PackEpisodeInputs(episodes, 3), episodes.labels, {}};
    for (bool query_only : {false, true}) {
      RunConfig config = ConfigWith(absl::StrCat(
          R"({"hidden_size": 16, "num_heads": 2, "encoder_channels": 4,
              "query_loss_only": )",
          query_only ? "true" : "false", "}"));
      auto model =
          MakeSrwm({&config, "test.json", EpisodeSpec(batch.inputs.size(1))});
      ASSERT_TRUE(model.ok()) << model.status();
      RecordingContext context(config);
      ASSERT_TRUE((*model)->TrainStep(batch, context).ok());
      at::Tensor expected =
          query_only
              ? batch.targets.masked_fill(episodes.is_query.logical_not(), -100)
              : batch.targets;
      EXPECT_TRUE(at::equal(context.seen.targets, expected));
      EXPECT_TRUE(at::equal(context.seen.inputs, batch.inputs));
    }
    // The masked loss is the queries' mean cross-entropy.
    at::Tensor logits = at::randn({5, batch.inputs.size(1), 3});
    RunConfig config = ConfigWith(R"({"query_loss_only": true})");
    auto model =
        MakeSrwm({&config, "test.json", EpisodeSpec(batch.inputs.size(1))});
    ASSERT_TRUE(model.ok());
    at::Tensor masked =
        batch.targets.masked_fill(episodes.is_query.logical_not(), -100);
    at::Tensor query_logits = logits.index({episodes.is_query});
    at::Tensor query_targets = batch.targets.index({episodes.is_query});
    EXPECT_NEAR(
        (*model)->Loss(logits, masked).item<double>(),
        at::cross_entropy_loss(query_logits, query_targets).item<double>(),
        1e-6);
  }
}

TEST(SrwmModelTest, BaselinesHaveTheSrwmParameterCount) {
  RunConfig srwm_config = ConfigWith(R"({})");
  const int64_t target =
      CountParameters(ResolveModelShape(*ParseSrwmConfig(srwm_config), 5), 5);
  for (const char* kind : {"deltanet", "fake_sr", "lstm"}) {
    RunConfig config =
        ConfigWith(std::string(R"({"sequence_model": ")") + kind + "\"}");
    const int64_t count =
        CountParameters(ResolveModelShape(*ParseSrwmConfig(config), 5), 5);
    EXPECT_NEAR(static_cast<double>(count) / target, 1.0, 0.02) << kind;
  }
}

TEST(SrwmModelTest, FusedAndNaiveKernelsGiveTheSameModel) {
  RunConfig fused = ConfigWith(R"({"hidden_size": 16, "num_heads": 2,
                                   "encoder_channels": 4})");
  RunConfig naive = ConfigWith(R"({"hidden_size": 16, "num_heads": 2,
                                   "encoder_channels": 4,
                                   "srwm_kernel": "naive"})");
  at::manual_seed(3);
  auto a = MakeSrwm({&fused, "test.json", EpisodeSpec(5)});
  at::manual_seed(3);
  auto b = MakeSrwm({&naive, "test.json", EpisodeSpec(5)});
  ASSERT_TRUE(a.ok() && b.ok());
  at::Tensor inputs = at::rand({3, 5, 259});
  EXPECT_TRUE(
      at::allclose((*a)->Forward(inputs), (*b)->Forward(inputs), 1e-4, 1e-5));
}

TEST(SrwmModelTest, RefusesInputsThatAreNotEpisodes) {
  RunConfig config = ConfigWith("{}");
  absl::StatusOr<std::unique_ptr<Model>> model =
      MakeSrwm({&config, "test.json", DataSpec{{1, 28, 28}, 10}});
  ASSERT_FALSE(model.ok());
  EXPECT_NE(model.status().message().find("\"fewshot_episodes\""),
            std::string::npos)
      << model.status();
}

struct BadConfig {
  const char* model_config;
  const char* source_fields;
  const char* error;
};

class SrwmConfigErrorTest : public ::testing::TestWithParam<BadConfig> {};

TEST_P(SrwmConfigErrorTest, NamesFieldAndReason) {
  RunConfig config =
      ConfigWith(GetParam().model_config, GetParam().source_fields);
  absl::Status status = ValidateSrwmConfig(config);
  if (status.ok()) status = ValidateEpisodeSource(config);
  EXPECT_EQ(std::string(status.message()), GetParam().error);
}

INSTANTIATE_TEST_SUITE_P(
    Errors, SrwmConfigErrorTest,
    ::testing::Values(
        BadConfig{R"({"sequence_model": "gru"})", "",
                  "model_config.sequence_model: unknown sequence model "
                  "'gru'; known: srwm, deltanet, fake_sr, lstm"},
        BadConfig{R"({"hidden_size": 30, "num_heads": 8})", "",
                  "model_config.hidden_size: must be a multiple of "
                  "num_heads (got 30 and 8 heads)"},
        BadConfig{R"({"num_layers": -1})", "",
                  "model_config.num_layers: must be >= 1 (got -1)"},
        BadConfig{R"({"srwm_kernel": "cuda"})", "",
                  "model_config.srwm_kernel: unknown kernel 'cuda'; known: "
                  "fused, naive"},
        BadConfig{R"({"srwm_input": "post_norm"})", "",
                  "model_config.srwm_input: unknown input 'post_norm'; "
                  "known: layer_norm, residual"},
        BadConfig{"{}", R"("ways": 1)",
                  "data_config.source_config.ways: must be >= 2 (got 1)"},
        BadConfig{"{}", R"("ways": 10, "meta_test_classes": 8)",
                  "data_config.source_config.meta_val_classes: must be >= "
                  "ways (10) for 10-way episodes (got 8)"},
        BadConfig{"{}", R"("rotations": 5)",
                  "data_config.source_config.rotations: must be 1 to 4 "
                  "quarter turns (got 5)"},
        BadConfig{"{}", R"("shotz": 5)",
                  "data_config.source_config.shotz: unknown field; did you "
                  "mean 'shots'?"},
        BadConfig{"{}", R"("layout": "stream")",
                  "data_config.source_config.layout: unknown layout "
                  "'stream'; known: episodes, sequential"},
        BadConfig{"{}",
                  R"("layout": "sequential",
                     "stream": {"length": 60, "switch_at": 60})",
                  "data_config.source_config.stream.switch_at: the switch "
                  "(60 +- 0) must fall inside the stream, at 1 to length - 1 "
                  "= 59, so that both domains are shown"},
        BadConfig{"{}",
                  R"("layout": "sequential",
                     "stream": {"switch_at": 30, "switch_jitter": 30})",
                  "data_config.source_config.stream.switch_at: the switch "
                  "(30 +- 30) must fall inside the stream, at 1 to length - "
                  "1 = 59, so that both domains are shown"},
        BadConfig{"{}",
                  R"("layout": "sequential",
                     "stream": {"second_domain": "omniglot"})",
                  "data_config.source_config.stream.second_domain: a "
                  "stream's domains are fashion or digits (got 'omniglot')"},
        BadConfig{"{}", R"("layout": "sequential", "stream": {"lenght": 10})",
                  "data_config.source_config.stream.lenght: unknown field; "
                  "did you mean 'length'?"},
        BadConfig{"{}",
                  R"("curriculum_steps": 100, "curriculum_start_ways": 6)",
                  "data_config.source_config.curriculum_start_ways: must be 2 "
                  "to ways (5) (got 6)"},
        BadConfig{"{}", R"("curriculum_steps": -1)",
                  "data_config.source_config.curriculum_steps: must be >= 0 "
                  "(got -1)"},
        BadConfig{"{}", R"("curriculum_steps": 100, "layout": "sequential")",
                  "data_config.source_config.curriculum_steps: a curriculum "
                  "of ways is for episodes, not for sequential streams"},
        BadConfig{R"({"query_loss_only": true})", R"("layout": "sequential")",
                  "model_config.query_loss_only: a sequential stream shows "
                  "every step's label at the next step, so every step is a "
                  "query: leave it out"}));

TEST(SrwmConfigTest, ADomainWithTooFewClassesForTheWaysIsRefused) {
  RunConfig config = ConfigWith(
      "{}", R"("layout": "sequential", "stream": {"digit_rotations": 1})",
      "fashion_mnist");
  EXPECT_EQ(std::string(ValidateEpisodeSource(config).message()),
            "data_config.source_config.stream.digit_rotations: the digits "
            "domain has 10 classes; meta-validation + meta-test (16) leave "
            "fewer than 5 meta-training classes for 5-way streams: use more "
            "rotations");
  RunConfig fashion_only =
      ConfigWith("{}",
                 R"("layout": "sequential", "stream": {"digit_rotations": 1,
         "second_domain": "fashion"})",
                 "fashion_mnist");
  EXPECT_TRUE(ValidateEpisodeSource(fashion_only).ok());
}

TEST(SrwmConfigTest, DefaultConfigIsValid) {
  absl::StatusOr<RunConfig> config =
      ParseRunConfig(kDefaultConfigJson, "default_config.json");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_TRUE(ValidateSrwmConfig(*config).ok());
  EXPECT_TRUE(ValidateEpisodeSource(*config).ok());
  // Under the plain train pipeline, with episodes as its data.
  EXPECT_EQ(config->pipeline(), "train");
  EXPECT_EQ(config->data_config().dataset(), kEpisodeDataSource);
}

TEST(SrwmConfigTest, TheModelNeedsEpisodesAndEpisodesNeedImages) {
  RunConfig config = ConfigWith("{}");
  config.mutable_data_config()->set_dataset("mnist_digits");
  EXPECT_EQ(std::string(ValidateSrwmConfig(config).message()),
            "data_config.dataset: the srwm model learns from few-shot "
            "episodes: set \"fewshot_episodes\" (got 'mnist_digits')");
  RunConfig digits = ConfigWith("{}", "", "mnist_digits");
  EXPECT_EQ(std::string(ValidateEpisodeSource(digits).message()),
            "data_config.source_config.images: episodes are made of "
            "fashion_mnist (rotated classes) or synthetic images (got "
            "'mnist_digits')");
}

struct FewshotRun {
  TrainResult result;
  std::map<std::string, EpisodeScore> scores;  // from fewshot.json
  google::protobuf::Value fewshot;             // all of fewshot.json
};

// Meta-trains the config `json` with the plain Trainer (and a plain Adam
// standing in for the optimizers plugin); the model's OnRunEnd meta-tests
// it into fewshot.json.
absl::StatusOr<FewshotRun> RunFewshot(const std::string& json,
                                      const std::string& run_dir,
                                      bool resume = false) {
  at::set_num_threads(1);  // tests run side by side
  absl::StatusOr<RunConfig> config = ParseRunConfig(json, "test.json");
  if (!config.ok()) return config.status();
  PluginRegistry registry;
  RETURN_IF_ERROR(registry.Register(
      ModelEntry{"srwm", "", MakeSrwm, "", nullptr, nullptr, "test"}));
  RETURN_IF_ERROR(registry.Register(DataSourceEntry{
      kEpisodeDataSource, "", MakeEpisodeSplits, nullptr, nullptr, "test"}));
  if (absl::Status s = RegisterTrainerStandIns(registry); !s.ok()) return s;
  std::filesystem::create_directories(run_dir);
  PipelineContext context;
  context.config = &*config;
  context.config_source = "test.json";
  context.run_dir = run_dir;
  context.registry = &registry;
  context.resuming = resume;
  if (resume) {
    ASSIGN_OR_RETURN(context.resume_from, FindCheckpoint(run_dir));
  }
  Trainer trainer(context);
  ASSIGN_OR_RETURN(TrainResult result, trainer.Run());
  ASSIGN_OR_RETURN(google::protobuf::Value fewshot,
                   ReadJsonFile(run_dir + "/fewshot.json"));
  FewshotRun run{result, {}, fewshot};
  for (const auto& [name, value] : fewshot.struct_value().fields()) {
    if (!value.has_struct_value()) continue;
    const auto& fields = value.struct_value().fields();
    if (!fields.contains("accuracy")) continue;  // "sequential"
    EpisodeScore& score = run.scores[name];
    score.accuracy = fields.at("accuracy").number_value();
    score.ci95 = fields.at("ci95").number_value();
    score.loss = fields.at("loss").number_value();
    score.episodes = fields.at("episodes").number_value();
  }
  return run;
}

std::string TestDir(const std::string& name) {
  return std::string(std::getenv("TEST_TMPDIR")) + "/" + name;
}

// A short meta-training run (SRWM, synthetic classes): within 150 steps the
// model learns to use the label inputs (which labels an episode has shown
// already), so the training loss falls below chance, log 3. Leaving the
// plateau to match queries to supports takes 600-1200 steps on Fashion-MNIST:
// that is FewshotLearningTest below (target fewshot_learning_test, manual).
TEST(FewshotRunTest, ShortTrainingLearnsFromTheLabelInputs) {
  absl::StatusOr<FewshotRun> run = RunFewshot(
      R"({"model": "srwm", "seed": 2,
    "data_config": {"dataset": "fewshot_episodes",
                    "synthetic": {"num_samples": 200, "num_features": 256,
                                  "num_classes": 10, "noise": 0.3},
                    "source_config": {"images": "synthetic", "ways": 3,
                        "shots": 1, "queries_per_class": 2,
                        "train_episodes_per_epoch": 800,
                        "eval_episodes": 100}},
    "optim_config": {"name": "adam", "lr": 0.003, "grad_clip_norm": 1.0},
    "run_config": {"epochs": 3, "batch_size": 16},
    "model_config": {"hidden_size": 32, "num_heads": 4, "num_layers": 1,
                     "encoder_channels": 4},
    "score_config": {"monitor": "accuracy"}})",
      TestDir("short_run"));
  ASSERT_TRUE(run.ok()) << run.status();
  const EpisodeScore& test = run->scores.at("meta_test");
  EXPECT_EQ(test.episodes, 100);
  EXPECT_GE(test.accuracy, 0);
  EXPECT_LE(test.accuracy, 1);
  EXPECT_EQ(run->result.position.step, 150);
  EXPECT_LT(run->result.last_train_loss, std::log(3.0) - 0.08);
  EXPECT_TRUE(
      std::filesystem::exists(TestDir("short_run") + "/checkpoints/best.ckpt"));
  // The summary shows fewshot.json's meta-test, not only the last model's
  // score on the fixed test episodes.
  const std::vector<std::string>& lines = run->result.family_results;
  ASSERT_EQ(lines.size(), 2 + run->scores.size());
  EXPECT_THAT(lines.front(),
              testing::StartsWith("meta-test of the best checkpoint (step "));
  EXPECT_EQ(lines[1],
            absl::StrFormat("meta-test held-out classes: accuracy %.2f%% +- "
                            "%.2f (95%%, 100 episodes)",
                            100 * test.accuracy, 100 * test.ci95));
  if (run->scores.count("mnist_digits")) {
    const EpisodeScore& digits = run->scores.at("mnist_digits");
    EXPECT_EQ(lines[2],
              absl::StrFormat("meta-test MNIST digits (cross-domain): "
                              "accuracy %.2f%% +- %.2f (95%%, %d "
                              "episodes)",
                              100 * digits.accuracy, 100 * digits.ci95,
                              digits.episodes));
  }
  EXPECT_EQ(lines.back(), "chance 33.33% (3-way)");
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::string ResumeTestConfig(int epochs) {
  return absl::StrCat(
      R"({"model": "srwm", "seed": 3,
    "data_config": {"dataset": "fewshot_episodes",
                    "synthetic": {"num_samples": 100, "num_features": 256,
                                  "num_classes": 5, "noise": 0.3},
                    "source_config": {"images": "synthetic", "ways": 3,
                        "shots": 1, "queries_per_class": 1,
                        "train_episodes_per_epoch": 24, "eval_episodes": 10,
                        "skip_mnist_digits": true}},
    "optim_config": {"name": "adam", "lr": 0.003},
    "run_config": {"epochs": )",
      epochs, R"(, "batch_size": 4, "checkpoint_every_epochs": 1},
    "model_config": {"hidden_size": 16, "num_heads": 2, "num_layers": 1,
                     "encoder_channels": 4}})");
}

// Each step's episodes depend on the step alone, so a run stopped after one
// epoch and resumed ends with the very weights of an uninterrupted run.
TEST(FewshotRunTest, ResumedRunDrawsTheSameEpisodes) {
  absl::StatusOr<FewshotRun> whole =
      RunFewshot(ResumeTestConfig(2), TestDir("resume_whole"));
  ASSERT_TRUE(whole.ok()) << whole.status();
  absl::StatusOr<FewshotRun> first =
      RunFewshot(ResumeTestConfig(1), TestDir("resume_cut"));
  ASSERT_TRUE(first.ok()) << first.status();
  absl::StatusOr<FewshotRun> resumed =
      RunFewshot(ResumeTestConfig(2), TestDir("resume_cut"), /*resume=*/true);
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  EXPECT_EQ(resumed->result.position.step, 12);
  EXPECT_EQ(first->result.position.step, 6);
  auto weights = [](const FewshotRun& run) {
    std::string path = run.result.final_checkpoint;
    return ReadFile(path.substr(0, path.size() - 5) + ".weights.pt");
  };
  ASSERT_FALSE(weights(*whole).empty());
  EXPECT_EQ(weights(*resumed), weights(*whole));
  EXPECT_EQ(resumed->result.last_train_loss, whole->result.last_train_loss);
}

// The curriculum: 2-way episodes first, one way more every 100 of the first
// 300 steps (labels within the step's ways, label inputs of the full
// width), 4-way from step 300; the same step draws the same episodes.
TEST(FewshotRunTest, ACurriculumOfWaysGrowsTheTrainingEpisodes) {
  RunConfig config = ConfigWith(
      "{}", R"("ways": 4, "curriculum_steps": 300, "curriculum_start_ways": 2,
               "queries_per_class": 2, "skip_mnist_digits": true)");
  absl::StatusOr<FewshotEpisodesConfig> episodes = ParseEpisodesConfig(config);
  ASSERT_TRUE(episodes.ok()) << episodes.status();
  EXPECT_EQ(WaysAtStep(*episodes, 0), 2);
  EXPECT_EQ(WaysAtStep(*episodes, 99), 2);
  EXPECT_EQ(WaysAtStep(*episodes, 100), 3);
  EXPECT_EQ(WaysAtStep(*episodes, 299), 4);
  EXPECT_EQ(WaysAtStep(*episodes, 300), 4);
  EXPECT_EQ(WaysAtStep(*episodes, 100000), 4);
  FewshotEpisodesConfig off = *episodes;
  off.set_curriculum_steps(0);
  EXPECT_EQ(WaysAtStep(off, 0), 4);

  DataSourceContext context;
  context.config = &config;
  context.config_source = "test.json";
  absl::StatusOr<DataSplits> splits = MakeEpisodeSplits(context);
  ASSERT_TRUE(splits.ok()) << splits.status();
  SampleGenerator& generator = *splits->train.generator;
  for (const auto& [step, ways] :
       {std::pair<int64_t, int>{0, 2}, {150, 3}, {299, 4}, {5000, 4}}) {
    absl::StatusOr<Batch> batch = generator.Draw(6, step, 0);
    ASSERT_TRUE(batch.ok()) << batch.status();
    EXPECT_EQ(batch->targets.size(1), ways * (1 + 2)) << "step " << step;
    EXPECT_EQ(batch->targets.max().item<int64_t>(), ways - 1);
    EXPECT_EQ(batch->inputs.size(2), 256 + 4);  // label inputs of all 4 ways
    absl::StatusOr<Batch> again = generator.Draw(6, step, 0);
    ASSERT_TRUE(again.ok());
    EXPECT_TRUE(at::equal(again->inputs, batch->inputs));
  }
  // Evaluation episodes have all the ways.
  EXPECT_EQ(splits->val.targets.size(1), 4 * (1 + 2));
}

// A short run on switching streams (synthetic domains): fewshot.json holds
// each direction's accuracy against the position from the switch.
TEST(FewshotRunTest, SequentialStreamsReportAccuracyAroundTheSwitch) {
  absl::StatusOr<FewshotRun> run = RunFewshot(
      R"({"model": "srwm", "seed": 4,
    "data_config": {"dataset": "fewshot_episodes",
                    "synthetic": {"num_samples": 100, "num_features": 256,
                                  "num_classes": 5, "noise": 0.3},
                    "source_config": {"images": "synthetic", "ways": 3,
                        "layout": "sequential",
                        "stream": {"length": 12, "switch_at": 6},
                        "train_episodes_per_epoch": 32, "eval_episodes": 10}},
    "optim_config": {"name": "adam", "lr": 0.003},
    "run_config": {"epochs": 1, "batch_size": 8},
    "model_config": {"hidden_size": 16, "num_heads": 2, "num_layers": 1,
                     "encoder_channels": 4}})",
      TestDir("sequential"));
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_EQ(run->result.position.step, 4);
  EXPECT_EQ(run->scores.at("meta_test").episodes, 10);
  const auto& sequential =
      run->fewshot.struct_value().fields().at("sequential").struct_value();
  EXPECT_EQ(sequential.fields().at("recovery_window").number_value(), 20);
  for (const char* direction : {"fashion_then_digits", "digits_then_fashion"}) {
    ASSERT_TRUE(sequential.fields().contains(direction)) << direction;
    const auto& curve = sequential.fields().at(direction).struct_value();
    const auto& offsets = curve.fields().at("offsets").list_value();
    const auto& accuracy = curve.fields().at("accuracy").list_value();
    const auto& streams = curve.fields().at("streams").list_value();
    ASSERT_EQ(offsets.values_size(), 12);
    EXPECT_EQ(offsets.values(0).number_value(), -6);
    EXPECT_EQ(offsets.values(11).number_value(), 5);
    for (int i = 0; i < 12; ++i) {
      EXPECT_EQ(streams.values(i).number_value(), 5);  // half of 10 each way
      EXPECT_GE(accuracy.values(i).number_value(), 0);
      EXPECT_LE(accuracy.values(i).number_value(), 1);
    }
    const double before =
        curve.fields().at("accuracy_before_switch").number_value();
    double sum = 0;
    for (int i = 0; i < 6; ++i) sum += accuracy.values(i).number_value();
    EXPECT_NEAR(before, sum / 6, 1e-12);  // every stream switches at 6
    EXPECT_THAT(run->result.family_results,
                testing::Contains(
                    absl::StrFormat("meta-test stream %s: %.2f%% before the "
                                    "switch, %.2f%% over the first 20 "
                                    "examples after it",
                                    direction, 100 * before,
                                    100 * curve.fields()
                                              .at("accuracy_first_after_switch")
                                              .number_value())));
  }
}

#ifdef SRWM_LEARNING_TEST
// 5-way 1-shot on rotated Fashion-MNIST (the default config: SRWM, 1200
// steps, minutes): meta-test accuracy on held-out classes well above chance
// (20%), and above chance on the MNIST digits.
TEST(FewshotLearningTest, MetaTestAccuracyIsWellAboveChance) {
  absl::StatusOr<FewshotRun> run =
      RunFewshot(kDefaultConfigJson, TestDir("learning"));
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_GT(run->scores.at("meta_test").accuracy, 0.3);
  // Cross-domain transfer is weak, but above chance with 95% confidence.
  const EpisodeScore& digits = run->scores.at("mnist_digits");
  EXPECT_GT(digits.accuracy - digits.ci95, 0.2);
}
#endif  // SRWM_LEARNING_TEST

}  // namespace
}  // namespace ouroboros::srwm
