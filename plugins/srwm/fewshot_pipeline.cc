#include "plugins/srwm/fewshot_pipeline.h"

#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>
#include <torch/utils.h>

#include <cmath>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "glog/logging.h"
#include "ouroboros/checkpoint.h"
#include "ouroboros/config.h"
#include "ouroboros/data.h"
#include "ouroboros/errors.h"
#include "ouroboros/json.h"
#include "ouroboros/run_dir.h"
#include "ouroboros/run_layout.h"
#include "ouroboros/status_macros.h"
#include "plugins/srwm/fewshot_model.h"

namespace ouroboros::srwm {
namespace {

// Evaluation batches, in episodes.
constexpr int64_t kEvalChunk = 100;
// Seeds of the fixed evaluation episodes, per pool.
constexpr uint64_t kValSeed = 1001, kTestSeed = 2002, kDigitsSeed = 3003;

int OrDefault(int value, int fallback) { return value > 0 ? value : fallback; }

}  // namespace

absl::StatusOr<FewshotPipelineConfig> ParseFewshotConfig(
    const RunConfig& config) {
  ASSIGN_OR_RETURN(FewshotPipelineConfig c,
                   ParseSection<FewshotPipelineConfig>(config.pipeline_config(),
                                                       "pipeline_config"));
  RETURN_IF_ERROR(CheckSizesOrDefault(
      "pipeline_config",
      {{"ways", c.ways()},
       {"shots", c.shots()},
       {"queries_per_class", c.queries_per_class()},
       {"rotations", c.rotations()},
       {"meta_val_classes", c.meta_val_classes()},
       {"meta_test_classes", c.meta_test_classes()},
       {"train_episodes_per_epoch", c.train_episodes_per_epoch()},
       {"eval_episodes", c.eval_episodes()}}));
  c.set_ways(OrDefault(c.ways(), 5));
  c.set_shots(OrDefault(c.shots(), 1));
  c.set_queries_per_class(OrDefault(c.queries_per_class(), 1));
  c.set_rotations(OrDefault(c.rotations(), 4));
  c.set_meta_val_classes(OrDefault(c.meta_val_classes(), 8));
  c.set_meta_test_classes(OrDefault(c.meta_test_classes(), 8));
  c.set_train_episodes_per_epoch(OrDefault(c.train_episodes_per_epoch(), 3200));
  c.set_eval_episodes(OrDefault(c.eval_episodes(), 1000));
  if (c.ways() < 2) {
    return ConfigFieldError("pipeline_config.ways",
                            absl::StrCat("must be >= 2 (got ", c.ways(), ")"));
  }
  if (c.rotations() > 4) {
    return ConfigFieldError(
        "pipeline_config.rotations",
        absl::StrCat("must be 1 to 4 quarter turns (got ", c.rotations(), ")"));
  }
  for (const auto& [name, value] :
       {std::pair<const char*, int>{"meta_val_classes", c.meta_val_classes()},
        {"meta_test_classes", c.meta_test_classes()}}) {
    if (value < c.ways()) {
      return ConfigFieldError(
          absl::StrCat("pipeline_config.", name),
          absl::StrCat("must be >= ways (", c.ways(), ") for ", c.ways(),
                       "-way episodes (got ", value, ")"));
    }
  }
  const std::string& dataset = config.data_config().dataset();
  if (dataset != "fashion_mnist" && dataset != "synthetic") {
    return ConfigFieldError(
        "data_config.dataset",
        absl::StrCat("the fewshot pipeline reads fashion_mnist (rotated "
                     "classes) or synthetic (got '",
                     dataset, "')"));
  }
  if (dataset == "synthetic") {
    const int64_t pixels = config.data_config().synthetic().num_features();
    const int64_t side = std::lround(std::sqrt(double(pixels)));
    if (side * side != pixels || side < 16) {
      return ConfigFieldError(
          "data_config.synthetic.num_features",
          absl::StrCat("fewshot images are squares of side >= 16: must be "
                       "256, 289, 324, ... (got ",
                       pixels, ")"));
    }
    return c;
  }
  const int total_classes = 10 * c.rotations();
  if (total_classes - c.meta_val_classes() - c.meta_test_classes() < c.ways()) {
    return ConfigFieldError(
        "pipeline_config.meta_test_classes",
        absl::StrCat("meta-validation + meta-test classes (",
                     c.meta_val_classes() + c.meta_test_classes(),
                     ") leave fewer than ", c.ways(),
                     " meta-training classes out of ", total_classes));
  }
  return c;
}

absl::Status ValidateFewshotConfig(const RunConfig& config) {
  return ParseFewshotConfig(config).status();
}

FewShotTrainer::FewShotTrainer(PipelineContext context,
                               FewshotPipelineConfig config)
    : Trainer(std::move(context)), config_(std::move(config)) {}

absl::StatusOr<DataSplits> FewShotTrainer::LoadData() {
  const DataConfig& data = this->config().data_config();
  const uint64_t seed = this->config().seed();
  int side = 28;
  if (data.dataset() == "synthetic") {
    // Each of the three pools: num_classes classes of noisy prototypes,
    // num_samples images in all, images of num_features pixels (a square).
    const SyntheticData& synthetic = data.synthetic();
    const int classes = synthetic.num_classes();
    const int per_class = synthetic.num_samples() / classes;
    side = static_cast<int>(std::lround(std::sqrt(synthetic.num_features())));
    split_.train = SyntheticClassPool(classes, per_class, side,
                                      synthetic.noise(), seed, 0);
    split_.val = SyntheticClassPool(classes, per_class, side, synthetic.noise(),
                                    seed + 1, 100);
    split_.test = SyntheticClassPool(classes, per_class, side,
                                     synthetic.noise(), seed + 2, 200);
  } else {
    const std::string dir =
        data.path().empty() ? kFashionMnistDir : data.path();
    absl::StatusOr<MetaSplit> split = LoadRotatedFashionSplit(
        dir, config_.rotations(), config_.meta_val_classes(),
        config_.meta_test_classes(), seed);
    if (!split.ok()) return split.status();
    split_ = *std::move(split);
    if (!config_.skip_mnist_digits()) {
      absl::StatusOr<ClassPool> digits = LoadMnistDigitPool(
          config_.mnist_digits_path().empty() ? kMnistDigitsDir
                                              : config_.mnist_digits_path());
      if (!digits.ok()) return digits.status();
      digits_ = *std::move(digits);
    }
  }
  for (const ClassPool* pool : {&split_.train, &split_.val, &split_.test}) {
    EpisodeSampler sampler(pool, config_.ways(), config_.shots(),
                           config_.queries_per_class());
    RETURN_IF_ERROR(sampler.CheckPool());
  }
  LOG(INFO) << absl::StrFormat(
      "fewshot: %d-way %d-shot, %d queries per class; classes: %d "
      "meta-train, %d meta-validation, %d meta-test%s",
      config_.ways(), config_.shots(), config_.queries_per_class(),
      split_.train.classes.size(), split_.val.classes.size(),
      split_.test.classes.size(),
      digits_ ? "; + MNIST digits (cross-domain)" : "");
  train_sampler_ = std::make_unique<EpisodeSampler>(
      &split_.train, config_.ways(), config_.shots(),
      config_.queries_per_class());

  const int64_t steps = train_sampler_->steps();
  DataSpec spec{{steps, int64_t{side} * side + config_.ways()}, config_.ways()};
  auto slots = [&](int64_t n) {
    Dataset d;
    d.inputs = at::zeros({n, 1});
    d.targets = at::zeros({n}, at::kLong);
    d.spec = spec;
    return d;
  };
  DataSplits splits;
  splits.train = slots(config_.train_episodes_per_epoch());
  splits.val = slots(config_.eval_episodes());
  splits.test = slots(config_.eval_episodes());
  splits.spec = spec;
  return splits;
}

// The batch only says how many episodes; the Trainer's own step (forward,
// loss, backward, gradient averaging across ranks, clipping, optimizer) runs
// on freshly sampled ones. Each step's episodes come from a generator seeded
// by (seed, rank, step): a resumed run draws the very episodes the
// interrupted one would have, and ranks draw different ones.
absl::StatusOr<double> FewShotTrainer::TrainStep(const Batch& batch) {
  const uint64_t seed = config().seed(), step = position().step;
  std::seed_seq step_seed{uint32_t(seed), uint32_t(seed >> 32),
                          uint32_t(rank()), uint32_t(step),
                          uint32_t(step >> 32)};
  std::mt19937_64 rng(step_seed);
  Batch episodes;
  absl::Status status = CallTorch("sampling training episodes", [&] {
    EpisodeBatch sampled = train_sampler_->Sample(batch.inputs.size(0), rng);
    episodes = {PackEpisodeInputs(sampled, config_.ways()), sampled.labels};
  });
  if (!status.ok()) return status;
  return Trainer::TrainStep(episodes);
}

absl::StatusOr<EpisodeScore> FewShotTrainer::ScoreEpisodes(
    const ClassPool& pool, int64_t episodes, uint64_t seed) {
  EpisodeSampler sampler(&pool, config_.ways(), config_.shots(),
                         config_.queries_per_class());
  RETURN_IF_ERROR(sampler.CheckPool());
  std::mt19937_64 rng(seed);
  std::vector<at::Tensor> per_episode_accuracy, per_episode_loss;
  absl::Status status = CallTorch("fewshot evaluation", [&] {
    torch::NoGradGuard no_grad;
    model().module().eval();
    for (int64_t done = 0; done < episodes; done += kEvalChunk) {
      EpisodeBatch batch =
          sampler.Sample(std::min(kEvalChunk, episodes - done), rng);
      at::Tensor logits =
          model().Forward(PackEpisodeInputs(batch, config_.ways()));
      at::Tensor query = batch.is_query.to(at::kFloat);
      at::Tensor correct = (logits.argmax(-1) == batch.labels).to(at::kFloat);
      at::Tensor nll = -at::log_softmax(logits, -1)
                            .gather(-1, batch.labels.unsqueeze(-1))
                            .squeeze(-1);
      per_episode_accuracy.push_back((correct * query).sum(1) / query.sum(1));
      per_episode_loss.push_back((nll * query).sum(1) / query.sum(1));
    }
    model().module().train();
  });
  if (!status.ok()) return status;
  at::Tensor accuracy = at::cat(per_episode_accuracy).to(at::kDouble);
  EpisodeScore score;
  score.episodes = accuracy.numel();
  score.accuracy = accuracy.mean().item<double>();
  score.loss = at::cat(per_episode_loss).mean().item<double>();
  score.ci95 = score.episodes > 1 ? 1.96 * accuracy.std().item<double>() /
                                        std::sqrt(double(score.episodes))
                                  : 0.0;
  return score;
}

absl::StatusOr<std::map<std::string, double>> FewShotTrainer::Evaluate(
    Split split, const Dataset& data) {
  const bool is_val = split == Split::kValidation;
  absl::StatusOr<EpisodeScore> score =
      ScoreEpisodes(is_val ? split_.val : split_.test, data.size(),
                    is_val ? kValSeed : kTestSeed);
  if (!score.ok()) return score.status();
  return std::map<std::string, double>{{"accuracy", score->accuracy},
                                       {"loss", score->loss}};
}

absl::StatusOr<std::map<std::string, EpisodeScore>> FewShotTrainer::MetaTest() {
  const std::string best =
      CheckpointFile(context().run_dir, kBestCheckpointFile);
  if (std::filesystem::exists(best)) {
    absl::StatusOr<CheckpointState> state =
        LoadCheckpoint(best, model().module(), optimizer());
    if (!state.ok()) return state.status();
    LOG(INFO) << absl::StrFormat(
        "meta-testing the best checkpoint (step %d, validation accuracy %.4f)",
        state->position.step, state->best_metric);
  }
  std::map<std::string, EpisodeScore> scores;
  const int64_t episodes = config_.eval_episodes();
  absl::StatusOr<EpisodeScore> test =
      ScoreEpisodes(split_.test, episodes, kTestSeed);
  if (!test.ok()) return test.status();
  scores["meta_test"] = *test;
  if (digits_) {
    absl::StatusOr<EpisodeScore> digits =
        ScoreEpisodes(*digits_, episodes, kDigitsSeed);
    if (!digits.ok()) return digits.status();
    scores["mnist_digits"] = *digits;
  }
  return scores;
}

namespace {

class FewshotPipeline : public Pipeline {
 public:
  FewshotPipeline(PipelineContext context, FewshotPipelineConfig config)
      : run_dir_(context.run_dir),
        trainer_(std::move(context), std::move(config)) {}

  absl::Status Run() override {
    absl::StatusOr<TrainResult> result = trainer_.Run();
    if (!result.ok()) return result.status();
    absl::StatusOr<std::map<std::string, EpisodeScore>> scores =
        trainer_.MetaTest();
    if (!scores.ok()) return scores.status();
    google::protobuf::Value root;
    auto* fields = root.mutable_struct_value()->mutable_fields();
    for (const auto& [name, score] : *scores) {
      LOG(INFO) << absl::StrFormat(
          "meta-test %s: accuracy %.2f%% +- %.2f (95%%, %d episodes), query "
          "loss %.4f",
          name, 100 * score.accuracy, 100 * score.ci95, score.episodes,
          score.loss);
      auto* out = (*fields)[name].mutable_struct_value()->mutable_fields();
      (*out)["accuracy"].set_number_value(score.accuracy);
      (*out)["ci95"].set_number_value(score.ci95);
      (*out)["loss"].set_number_value(score.loss);
      (*out)["episodes"].set_number_value(score.episodes);
    }
    (*fields)["steps"].set_number_value(result->position.step);
    return WriteFileAtomically(RunFile(run_dir_, "fewshot.json"),
                               FormatJson(root));
  }

 private:
  std::string run_dir_;
  FewShotTrainer trainer_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Pipeline>> MakeFewshotPipeline(
    const PipelineContext& context) {
  absl::StatusOr<FewshotPipelineConfig> config =
      ParseFewshotConfig(*context.config);
  if (!config.ok()) return WithContext(config.status(), context.config_source);
  return std::make_unique<FewshotPipeline>(context, *std::move(config));
}

}  // namespace ouroboros::srwm
