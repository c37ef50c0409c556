#include "plugins/srwm/episode_source.h"

#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>
#include <torch/utils.h>

#include <cmath>
#include <filesystem>
#include <memory>
#include <optional>
#include <random>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "glog/logging.h"
#include "ouroboros/checkpoint.h"
#include "ouroboros/config.h"
#include "ouroboros/data.h"
#include "ouroboros/errors.h"
#include "ouroboros/files.h"
#include "ouroboros/json.h"
#include "ouroboros/run_layout.h"
#include "ouroboros/status_macros.h"
#include "plugins/srwm/episodes.h"
#include "plugins/srwm/fewshot_model.h"

namespace ouroboros::srwm {
namespace {

constexpr char kSection[] = "data_config.source_config";
constexpr char kFashion[] = "fashion_mnist";
constexpr char kSynthetic[] = "synthetic";
// Episodes sampled (and, in evaluation, run through the model) at a time.
constexpr int64_t kEvalChunk = 100;
// Seeds of the fixed evaluation episodes, per pool.
constexpr uint64_t kValSeed = 1001, kTestSeed = 2002, kDigitsSeed = 3003;

std::string Field(absl::string_view name) {
  return absl::StrCat(kSection, ".", name);
}

// The class pools a run's episodes come from; shared by the training
// generator and kept alive with it.
struct EpisodePools {
  MetaSplit split;
  std::optional<ClassPool> digits;
};

class EpisodeGenerator : public SampleGenerator {
 public:
  EpisodeGenerator(std::shared_ptr<const EpisodePools> pools,
                   const FewshotEpisodesConfig& config, uint64_t seed)
      : pools_(std::move(pools)),
        sampler_(&pools_->split.train, config.ways(), config.shots(),
                 config.queries_per_class()),
        ways_(config.ways()),
        seed_(seed) {}

  absl::StatusOr<Batch> Draw(int64_t count, int64_t step, int rank) override {
    std::seed_seq step_seed{uint32_t(seed_), uint32_t(seed_ >> 32),
                            uint32_t(rank), uint32_t(step),
                            uint32_t(step >> 32)};
    std::mt19937_64 rng(step_seed);
    Batch episodes;
    RETURN_IF_ERROR(CallTorch("sampling training episodes", [&] {
      EpisodeBatch sampled = sampler_.Sample(count, rng);
      episodes = {PackEpisodeInputs(sampled, ways_), sampled.labels};
    }));
    return episodes;
  }

 private:
  std::shared_ptr<const EpisodePools> pools_;
  EpisodeSampler sampler_;
  int ways_;
  uint64_t seed_;
};

// `count` episodes of `pool`, the same ones for a given `seed`.
absl::StatusOr<Dataset> FixedEpisodes(const ClassPool& pool,
                                      const FewshotEpisodesConfig& config,
                                      int64_t count, uint64_t seed,
                                      const DataSpec& spec) {
  EpisodeSampler sampler(&pool, config.ways(), config.shots(),
                         config.queries_per_class());
  RETURN_IF_ERROR(sampler.CheckPool());
  std::mt19937_64 rng(seed);
  Dataset episodes;
  RETURN_IF_ERROR(CallTorch("sampling evaluation episodes", [&] {
    std::vector<at::Tensor> inputs, labels, is_query;
    for (int64_t done = 0; done < count; done += kEvalChunk) {
      EpisodeBatch batch =
          sampler.Sample(std::min(kEvalChunk, count - done), rng);
      inputs.push_back(PackEpisodeInputs(batch, config.ways()));
      labels.push_back(batch.labels);
      is_query.push_back(batch.is_query);
    }
    episodes.inputs = at::cat(inputs);
    episodes.targets = at::cat(labels);
    episodes.extras[kIsQuery] = at::cat(is_query);
    episodes.spec = spec;
  }));
  return episodes;
}

}  // namespace

absl::StatusOr<FewshotEpisodesConfig> ParseEpisodesConfig(
    const RunConfig& config) {
  ASSIGN_OR_RETURN(FewshotEpisodesConfig c,
                   ParseSection<FewshotEpisodesConfig>(
                       config.data_config().source_config(), kSection));
  RETURN_IF_ERROR(CheckSizes(
      kSection, {{"ways", c.ways()},
                 {"shots", c.shots()},
                 {"queries_per_class", c.queries_per_class()},
                 {"rotations", c.rotations()},
                 {"meta_val_classes", c.meta_val_classes()},
                 {"meta_test_classes", c.meta_test_classes()},
                 {"train_episodes_per_epoch", c.train_episodes_per_epoch()},
                 {"eval_episodes", c.eval_episodes()}}));
  if (c.ways() < 2) {
    return ConfigFieldError(Field("ways"),
                            absl::StrCat("must be >= 2 (got ", c.ways(), ")"));
  }
  if (c.rotations() > 4) {
    return ConfigFieldError(
        Field("rotations"),
        absl::StrCat("must be 1 to 4 quarter turns (got ", c.rotations(), ")"));
  }
  for (const auto& [name, value] :
       {std::pair<const char*, int>{"meta_val_classes", c.meta_val_classes()},
        {"meta_test_classes", c.meta_test_classes()}}) {
    if (value < c.ways()) {
      return ConfigFieldError(
          Field(name),
          absl::StrCat("must be >= ways (", c.ways(), ") for ", c.ways(),
                       "-way episodes (got ", value, ")"));
    }
  }
  if (c.images() != kFashion && c.images() != kSynthetic) {
    return ConfigFieldError(
        Field("images"),
        absl::StrCat("episodes are made of fashion_mnist (rotated classes) "
                     "or synthetic images (got '",
                     c.images(), "')"));
  }
  if (c.images() == kSynthetic) {
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
        Field("meta_test_classes"),
        absl::StrCat("meta-validation + meta-test classes (",
                     c.meta_val_classes() + c.meta_test_classes(),
                     ") leave fewer than ", c.ways(),
                     " meta-training classes out of ", total_classes));
  }
  return c;
}

absl::Status ValidateEpisodeSource(const RunConfig& config) {
  return ParseEpisodesConfig(config).status();
}

absl::StatusOr<DataSplits> MakeEpisodeSplits(const DataSourceContext& context) {
  const RunConfig& run = *context.config;
  absl::StatusOr<FewshotEpisodesConfig> parsed = ParseEpisodesConfig(run);
  if (!parsed.ok()) return WithContext(parsed.status(), context.config_source);
  const FewshotEpisodesConfig& c = *parsed;
  const DataConfig& data = run.data_config();
  const uint64_t seed = run.seed();
  auto pools = std::make_shared<EpisodePools>();
  int side = 28;
  if (c.images() == kSynthetic) {
    // Each of the three pools: num_classes classes of noisy prototypes,
    // num_samples images in all, images of num_features pixels (a square).
    const SyntheticData& synthetic = data.synthetic();
    const int classes = synthetic.num_classes();
    const int per_class = synthetic.num_samples() / classes;
    side = static_cast<int>(std::lround(std::sqrt(synthetic.num_features())));
    pools->split.train = SyntheticClassPool(classes, per_class, side,
                                            synthetic.noise(), seed, 0);
    pools->split.val = SyntheticClassPool(classes, per_class, side,
                                          synthetic.noise(), seed + 1, 100);
    pools->split.test = SyntheticClassPool(classes, per_class, side,
                                           synthetic.noise(), seed + 2, 200);
  } else {
    const std::string dir =
        data.path().empty() ? kFashionMnistDir : data.path();
    ASSIGN_OR_RETURN(pools->split, LoadRotatedFashionSplit(
                                       dir, c.rotations(), c.meta_val_classes(),
                                       c.meta_test_classes(), seed));
    if (!c.skip_mnist_digits()) {
      ASSIGN_OR_RETURN(pools->digits,
                       LoadMnistDigitPool(c.mnist_digits_path()));
    }
  }
  for (const ClassPool* pool :
       {&pools->split.train, &pools->split.val, &pools->split.test}) {
    EpisodeSampler sampler(pool, c.ways(), c.shots(), c.queries_per_class());
    RETURN_IF_ERROR(sampler.CheckPool());
  }
  LOG(INFO) << absl::StrFormat(
      "fewshot: %d-way %d-shot, %d queries per class; classes: %d "
      "meta-train, %d meta-validation, %d meta-test%s",
      c.ways(), c.shots(), c.queries_per_class(),
      pools->split.train.classes.size(), pools->split.val.classes.size(),
      pools->split.test.classes.size(),
      pools->digits ? "; + MNIST digits (cross-domain)" : "");

  const int64_t steps = int64_t{c.ways()} * (c.shots() + c.queries_per_class());
  DataSplits splits;
  splits.spec = DataSpec{{steps, int64_t{side} * side + c.ways()}, c.ways()};
  splits.train.spec = splits.spec;
  splits.train.generator = std::make_shared<EpisodeGenerator>(pools, c, seed);
  splits.train.generated_size = c.train_episodes_per_epoch();
  ASSIGN_OR_RETURN(splits.val,
                   FixedEpisodes(pools->split.val, c, c.eval_episodes(),
                                 kValSeed, splits.spec));
  ASSIGN_OR_RETURN(splits.test,
                   FixedEpisodes(pools->split.test, c, c.eval_episodes(),
                                 kTestSeed, splits.spec));
  if (pools->digits) {
    ASSIGN_OR_RETURN(splits.more[kDigitsSplit],
                     FixedEpisodes(*pools->digits, c, c.eval_episodes(),
                                   kDigitsSeed, splits.spec));
  }
  return splits;
}

absl::StatusOr<EpisodeScore> ScoreEpisodes(Model& model,
                                           const Dataset& episodes) {
  auto query_mask = episodes.extras.find(kIsQuery);
  if (query_mask == episodes.extras.end()) {
    return absl::InvalidArgumentError(
        "few-shot scores need episodes with a query mask (data source "
        "fewshot_episodes)");
  }
  std::vector<at::Tensor> per_episode_accuracy, per_episode_loss;
  RETURN_IF_ERROR(CallTorch("fewshot evaluation", [&] {
    torch::NoGradGuard no_grad;
    model.module().eval();
    for (int64_t done = 0; done < episodes.size(); done += kEvalChunk) {
      const int64_t end = std::min(done + kEvalChunk, episodes.size());
      at::Tensor labels = episodes.targets.slice(0, done, end);
      at::Tensor logits = model.Forward(episodes.inputs.slice(0, done, end));
      at::Tensor query = query_mask->second.slice(0, done, end).to(at::kFloat);
      at::Tensor correct = (logits.argmax(-1) == labels).to(at::kFloat);
      at::Tensor nll = -at::log_softmax(logits, -1)
                            .gather(-1, labels.unsqueeze(-1))
                            .squeeze(-1);
      per_episode_accuracy.push_back((correct * query).sum(1) / query.sum(1));
      per_episode_loss.push_back((nll * query).sum(1) / query.sum(1));
    }
    model.module().train();
  }));
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

absl::Status MetaTest(Model& model, TrainingContext& training) {
  // Rank 0 writes fewshot.json; the other ranks would score the same
  // episodes for nothing.
  if (!training.writes_outputs()) return absl::OkStatus();
  const std::string best =
      CheckpointFile(training.run_dir(), kBestCheckpointFile);
  if (std::filesystem::exists(best)) {
    ASSIGN_OR_RETURN(
        CheckpointState state,
        LoadCheckpoint(best, model.module(), training.optimizer()));
    LOG(INFO) << absl::StrFormat(
        "meta-testing the best checkpoint (step %d, validation accuracy %.4f)",
        state.position.step, state.best_metric);
  }
  std::vector<std::pair<std::string, const Dataset*>> sets = {
      {"meta_test", &training.data().test}};
  auto digits = training.data().more.find(kDigitsSplit);
  if (digits != training.data().more.end()) {
    sets.push_back({kDigitsSplit, &digits->second});
  }
  google::protobuf::Value root;
  auto* fields = root.mutable_struct_value()->mutable_fields();
  for (const auto& [name, episodes] : sets) {
    ASSIGN_OR_RETURN(EpisodeScore score, ScoreEpisodes(model, *episodes));
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
  (*fields)["steps"].set_number_value(training.step());
  return WriteFileAtomically(RunFile(training.run_dir(), "fewshot.json"),
                             FormatJson(root));
}

}  // namespace ouroboros::srwm
