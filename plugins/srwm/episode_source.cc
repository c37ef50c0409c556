#include "plugins/srwm/episode_source.h"

#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>
#include <torch/utils.h>

#include <cmath>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "glog/logging.h"
#include "ouroboros/api/data.h"
#include "ouroboros/base/errors.h"
#include "ouroboros/base/files.h"
#include "ouroboros/base/json.h"
#include "ouroboros/base/status_macros.h"
#include "ouroboros/config/config.h"
#include "ouroboros/config/config_checks.h"
#include "ouroboros/runs/checkpoint.h"
#include "ouroboros/runs/run_layout.h"
#include "plugins/srwm/episodes.h"
#include "plugins/srwm/fewshot_model.h"

namespace ouroboros::srwm {
namespace {

constexpr char kSection[] = "data_config.source_config";
constexpr char kFashion[] = "fashion_mnist";
constexpr char kSynthetic[] = "synthetic";
constexpr char kEpisodesLayout[] = "episodes";
constexpr char kFashionDomain[] = "fashion";
constexpr char kDigitsDomain[] = "digits";
// Episodes sampled (and, in evaluation, run through the model) at a time.
constexpr int64_t kEvalChunk = 100;
// Seeds of the fixed evaluation episodes, per pool.
constexpr uint64_t kValSeed = 1001, kTestSeed = 2002, kDigitsSeed = 3003;
// Offset of the seed that splits the digit classes (sequential streams).
constexpr uint64_t kDigitSplitSeedOffset = 7;

std::string Field(absl::string_view name) {
  return absl::StrCat(kSection, ".", name);
}

// The class pools a run's episodes come from; shared by the training
// generator and kept alive with it.
struct EpisodePools {
  MetaSplit split;
  std::optional<ClassPool> digits;
  // Sequential streams: the two domains' splits (first, second).
  MetaSplit domains[2];
};

bool IsSequential(const FewshotEpisodesConfig& config) {
  return config.layout() == kSequentialLayout;
}

// Each stream's direction: 0 first -> second; with both_directions, the
// first half of `count` streams 0 and the rest 1 (evaluation), or each at
// random (training, `rng` given).
std::vector<int> StreamDirections(const SequentialStreamConfig& stream,
                                  int64_t count, std::mt19937_64* rng) {
  std::vector<int> directions(count, 0);
  if (!stream.both_directions()) return directions;
  for (int64_t i = 0; i < count; ++i) {
    directions[i] = rng != nullptr
                        ? std::bernoulli_distribution(0.5)(*rng) ? 1 : 0
                        : (i >= count / 2 ? 1 : 0);
  }
  return directions;
}

StreamSampler MakeStreamSampler(const ClassPool& first, const ClassPool& second,
                                const FewshotEpisodesConfig& config) {
  const SequentialStreamConfig& stream = config.stream();
  return StreamSampler(&first, &second, config.ways(), stream.length(),
                       stream.switch_at(), stream.switch_jitter());
}

class StreamGenerator : public SampleGenerator {
 public:
  StreamGenerator(std::shared_ptr<const EpisodePools> pools,
                  const FewshotEpisodesConfig& config, uint64_t seed)
      : pools_(std::move(pools)),
        sampler_(MakeStreamSampler(pools_->domains[0].train,
                                   pools_->domains[1].train, config)),
        stream_(config.stream()),
        ways_(config.ways()),
        seed_(seed) {}

  absl::StatusOr<Batch> Draw(int64_t count, int64_t step, int rank) override {
    std::seed_seq step_seed{uint32_t(seed_), uint32_t(seed_ >> 32),
                            uint32_t(rank), uint32_t(step),
                            uint32_t(step >> 32)};
    std::mt19937_64 rng(step_seed);
    Batch streams;
    RETURN_IF_ERROR(CallTorch("sampling training streams", [&] {
      EpisodeBatch sampled =
          sampler_.Sample(StreamDirections(stream_, count, &rng), rng);
      streams = {PackEpisodeInputs(sampled, ways_), sampled.labels, {}};
    }));
    return streams;
  }

 private:
  std::shared_ptr<const EpisodePools> pools_;
  StreamSampler sampler_;
  SequentialStreamConfig stream_;
  int ways_;
  uint64_t seed_;
};

class EpisodeGenerator : public SampleGenerator {
 public:
  EpisodeGenerator(std::shared_ptr<const EpisodePools> pools,
                   const FewshotEpisodesConfig& config, uint64_t seed)
      : pools_(std::move(pools)), config_(config), seed_(seed) {}

  absl::StatusOr<Batch> Draw(int64_t count, int64_t step, int rank) override {
    std::seed_seq step_seed{uint32_t(seed_), uint32_t(seed_ >> 32),
                            uint32_t(rank), uint32_t(step),
                            uint32_t(step >> 32)};
    std::mt19937_64 rng(step_seed);
    // Under a curriculum, fewer ways in the label inputs of `ways` width.
    EpisodeSampler sampler(&pools_->split.train, WaysAtStep(config_, step),
                           config_.shots(), config_.queries_per_class());
    Batch episodes;
    RETURN_IF_ERROR(CallTorch("sampling training episodes", [&] {
      EpisodeBatch sampled = sampler.Sample(count, rng);
      episodes = {
          PackEpisodeInputs(sampled, config_.ways()), sampled.labels, {}};
    }));
    return episodes;
  }

 private:
  std::shared_ptr<const EpisodePools> pools_;
  FewshotEpisodesConfig config_;
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

// `count` streams from `first` to `second` (and back, with
// both_directions), the same ones for a given `seed`.
absl::StatusOr<Dataset> FixedStreams(const ClassPool& first,
                                     const ClassPool& second,
                                     const FewshotEpisodesConfig& config,
                                     int64_t count, uint64_t seed,
                                     const DataSpec& spec) {
  StreamSampler sampler = MakeStreamSampler(first, second, config);
  RETURN_IF_ERROR(sampler.CheckPools());
  const std::vector<int> directions =
      StreamDirections(config.stream(), count, nullptr);
  std::mt19937_64 rng(seed);
  Dataset streams;
  RETURN_IF_ERROR(CallTorch("sampling evaluation streams", [&] {
    std::vector<at::Tensor> inputs, labels, is_query, switch_at, direction;
    for (int64_t done = 0; done < count; done += kEvalChunk) {
      const int64_t end = std::min(count, done + kEvalChunk);
      EpisodeBatch batch = sampler.Sample(
          std::vector<int>(directions.begin() + done, directions.begin() + end),
          rng);
      inputs.push_back(PackEpisodeInputs(batch, config.ways()));
      labels.push_back(batch.labels);
      is_query.push_back(batch.is_query);
      switch_at.push_back(batch.switch_at);
      direction.push_back(batch.direction);
    }
    streams.inputs = at::cat(inputs);
    streams.targets = at::cat(labels);
    streams.extras[kIsQuery] = at::cat(is_query);
    streams.extras[kSwitchAt] = at::cat(switch_at);
    streams.extras[kDirection] = at::cat(direction);
    streams.spec = spec;
  }));
  return streams;
}

// The stream fields of a sequential layout ("<section>.stream.<field>").
absl::Status CheckStreamConfig(const FewshotEpisodesConfig& c) {
  const SequentialStreamConfig& stream = c.stream();
  const std::string section = absl::StrCat(kSection, ".stream");
  for (const auto& [name, domain] :
       {std::pair<const char*, std::string>{"first_domain",
                                            stream.first_domain()},
        {"second_domain", stream.second_domain()}}) {
    if (domain != kFashionDomain && domain != kDigitsDomain) {
      return ConfigFieldError(
          absl::StrCat(section, ".", name),
          absl::StrCat("a stream's domains are fashion or digits (got '",
                       domain, "')"));
    }
  }
  RETURN_IF_ERROR(
      CheckSizes(section, {{"length", stream.length()},
                           {"switch_at", stream.switch_at()},
                           {"digit_rotations", stream.digit_rotations()}}));
  RETURN_IF_ERROR(CheckAtLeast(absl::StrCat(section, ".switch_jitter"),
                               stream.switch_jitter(), 0));
  const int64_t earliest = int64_t{stream.switch_at()} - stream.switch_jitter();
  const int64_t latest = int64_t{stream.switch_at()} + stream.switch_jitter();
  if (earliest < 1 || latest > int64_t{stream.length()} - 1) {
    return ConfigFieldError(
        absl::StrCat(section, ".switch_at"),
        absl::StrCat("the switch (", stream.switch_at(), " +- ",
                     stream.switch_jitter(),
                     ") must fall inside the stream, at 1 to length - 1 = ",
                     stream.length() - 1, ", so that both domains are shown"));
  }
  if (stream.digit_rotations() > 4) {
    return ConfigFieldError(absl::StrCat(section, ".digit_rotations"),
                            absl::StrCat("must be 1 to 4 quarter turns (got ",
                                         stream.digit_rotations(), ")"));
  }
  if (c.images() == kSynthetic) return absl::OkStatus();
  const bool uses_digits = stream.first_domain() == kDigitsDomain ||
                           stream.second_domain() == kDigitsDomain;
  const int digit_classes = 10 * stream.digit_rotations();
  if (uses_digits &&
      digit_classes - c.meta_val_classes() - c.meta_test_classes() < c.ways()) {
    return ConfigFieldError(
        absl::StrCat(section, ".digit_rotations"),
        absl::StrCat("the digits domain has ", digit_classes,
                     " classes; meta-validation + meta-test (",
                     c.meta_val_classes() + c.meta_test_classes(),
                     ") leave fewer than ", c.ways(),
                     " meta-training classes for ", c.ways(),
                     "-way streams: use more rotations"));
  }
  return absl::OkStatus();
}

// Three pools of data_config.synthetic's noisy prototypes (num_classes
// classes, num_samples images, num_features pixels, a square), seeded from
// seed + first and with ids from 100 * first: meta-train, -validation, -test.
MetaSplit SyntheticSplit(const SyntheticData& synthetic, uint64_t seed,
                         int first) {
  const int classes = synthetic.num_classes();
  const int per_class = synthetic.num_samples() / classes;
  const int side =
      static_cast<int>(std::lround(std::sqrt(synthetic.num_features())));
  MetaSplit split;
  ClassPool* pools[3] = {&split.train, &split.val, &split.test};
  for (int i = 0; i < 3; ++i) {
    *pools[i] = SyntheticClassPool(classes, per_class, side, synthetic.noise(),
                                   seed + first + i, 100 * (first + i));
  }
  return split;
}

// The three pools of one stream domain; the fashion domain is the
// episodes' split, `fashion` (rotated Fashion-MNIST, or synthetic).
absl::StatusOr<MetaSplit> LoadDomain(const std::string& domain,
                                     const FewshotEpisodesConfig& c,
                                     const DataConfig& data, uint64_t seed,
                                     const MetaSplit& fashion) {
  if (domain == kFashionDomain) return fashion;
  if (c.images() == kSynthetic)
    return SyntheticSplit(data.synthetic(), seed, 3);
  return LoadRotatedDigitSplit(
      c.mnist_digits_path(), c.stream().digit_rotations(), c.meta_val_classes(),
      c.meta_test_classes(), seed + kDigitSplitSeedOffset);
}

// The splits of a sequential layout: training streams drawn every step,
// fixed validation and test streams, from the two domains' pools.
absl::StatusOr<DataSplits> MakeStreamSplits(
    const FewshotEpisodesConfig& c, const DataConfig& data, uint64_t seed,
    int side, std::shared_ptr<EpisodePools> pools) {
  const SequentialStreamConfig& stream = c.stream();
  const std::string names[2] = {stream.first_domain(), stream.second_domain()};
  for (int i = 0; i < 2; ++i) {
    ASSIGN_OR_RETURN(pools->domains[i],
                     LoadDomain(names[i], c, data, seed, pools->split));
  }
  const MetaSplit& first = pools->domains[0];
  const MetaSplit& second = pools->domains[1];
  for (const auto& [a, b] : {std::pair{&first.train, &second.train},
                             {&first.val, &second.val},
                             {&first.test, &second.test}}) {
    RETURN_IF_ERROR(MakeStreamSampler(*a, *b, c).CheckPools());
  }
  LOG(INFO) << absl::StrFormat(
      "fewshot: sequential %d-way streams of %d steps, %s -> %s%s, switch at "
      "%d +- %d; classes (meta-train / -validation / -test): %s %d / %d / %d, "
      "%s %d / %d / %d",
      c.ways(), stream.length(), names[0], names[1],
      stream.both_directions() ? " and back" : "", stream.switch_at(),
      stream.switch_jitter(), names[0], first.train.classes.size(),
      first.val.classes.size(), first.test.classes.size(), names[1],
      second.train.classes.size(), second.val.classes.size(),
      second.test.classes.size());
  DataSplits splits;
  splits.spec =
      DataSpec{{stream.length(), int64_t{side} * side + c.ways()}, c.ways()};
  splits.train.spec = splits.spec;
  splits.train.generator = std::make_shared<StreamGenerator>(pools, c, seed);
  splits.train.generated_size = c.train_episodes_per_epoch();
  ASSIGN_OR_RETURN(splits.val,
                   FixedStreams(first.val, second.val, c, c.eval_episodes(),
                                kValSeed, splits.spec));
  ASSIGN_OR_RETURN(splits.test,
                   FixedStreams(first.test, second.test, c, c.eval_episodes(),
                                kTestSeed, splits.spec));
  return splits;
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
  RETURN_IF_ERROR(CheckAtLeast(Field("ways"), c.ways(), 2));
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
  RETURN_IF_ERROR(
      CheckAtLeast(Field("curriculum_steps"), c.curriculum_steps(), 0));
  if (c.curriculum_steps() > 0) {
    if (c.curriculum_start_ways() < 2 || c.curriculum_start_ways() > c.ways()) {
      return ConfigFieldError(
          Field("curriculum_start_ways"),
          absl::StrCat("must be 2 to ways (", c.ways(), ") (got ",
                       c.curriculum_start_ways(), ")"));
    }
    if (c.layout() == kSequentialLayout) {
      return ConfigFieldError(
          Field("curriculum_steps"),
          "a curriculum of ways is for episodes, not for sequential streams");
    }
  }
  RETURN_IF_ERROR(CheckOneOf(Field("layout"), c.layout(),
                             {kEpisodesLayout, kSequentialLayout}, "layout"));
  if (IsSequential(c)) RETURN_IF_ERROR(CheckStreamConfig(c));
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

int WaysAtStep(const FewshotEpisodesConfig& config, int64_t step) {
  const int64_t steps = config.curriculum_steps();
  if (steps <= 0 || step >= steps) return config.ways();
  const int64_t start = config.curriculum_start_ways();
  // Each of the (ways - start + 1) stages lasts steps / stages.
  const int64_t stages = config.ways() - start + 1;
  return static_cast<int>(start + step * stages / steps);
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
    side = static_cast<int>(
        std::lround(std::sqrt(data.synthetic().num_features())));
    pools->split = SyntheticSplit(data.synthetic(), seed, 0);
  } else {
    const std::string dir =
        data.path().empty() ? kFashionMnistDir : data.path();
    ASSIGN_OR_RETURN(pools->split, LoadRotatedFashionSplit(
                                       dir, c.rotations(), c.meta_val_classes(),
                                       c.meta_test_classes(), seed));
    if (!c.skip_mnist_digits() && !IsSequential(c)) {
      ASSIGN_OR_RETURN(pools->digits,
                       LoadMnistDigitPool(c.mnist_digits_path()));
    }
  }
  if (IsSequential(c)) return MakeStreamSplits(c, data, seed, side, pools);
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
  if (c.curriculum_steps() > 0) {
    LOG(INFO) << absl::StrFormat(
        "fewshot: curriculum of ways, %d-way training episodes at first, one "
        "way more every %.0f steps, %d-way from step %d",
        c.curriculum_start_ways(),
        double(c.curriculum_steps()) /
            (c.ways() - c.curriculum_start_ways() + 1),
        c.ways(), c.curriculum_steps());
  }

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

namespace {

// Runs `model` over `episodes` in chunks, in evaluation mode and without
// gradients: score(logits, labels, first, end) for each chunk.
absl::Status ForEachChunk(
    Model& model, const Dataset& episodes,
    const std::function<void(const at::Tensor&, const at::Tensor&, int64_t,
                             int64_t)>& score) {
  return CallTorch("fewshot evaluation", [&] {
    torch::NoGradGuard no_grad;
    model.module().eval();
    for (int64_t done = 0; done < episodes.size(); done += kEvalChunk) {
      const int64_t end = std::min(done + kEvalChunk, episodes.size());
      score(model.Forward(episodes.inputs.slice(0, done, end)),
            episodes.targets.slice(0, done, end), done, end);
    }
    model.module().train();
  });
}

}  // namespace

absl::StatusOr<at::Tensor> CorrectPredictions(Model& model,
                                              const Dataset& episodes) {
  std::vector<at::Tensor> correct;
  RETURN_IF_ERROR(ForEachChunk(
      model, episodes,
      [&](const at::Tensor& logits, const at::Tensor& labels, int64_t,
          int64_t) {
        correct.push_back((logits.argmax(-1) == labels).to(at::kFloat));
      }));
  return at::cat(correct);
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
  RETURN_IF_ERROR(ForEachChunk(
      model, episodes,
      [&](const at::Tensor& logits, const at::Tensor& labels, int64_t first,
          int64_t end) {
        at::Tensor query =
            query_mask->second.slice(0, first, end).to(at::kFloat);
        at::Tensor correct = (logits.argmax(-1) == labels).to(at::kFloat);
        at::Tensor nll = -at::log_softmax(logits, -1)
                              .gather(-1, labels.unsqueeze(-1))
                              .squeeze(-1);
        per_episode_accuracy.push_back((correct * query).sum(1) / query.sum(1));
        per_episode_loss.push_back((nll * query).sum(1) / query.sum(1));
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

std::map<int, SwitchCurve> SwitchCurves(const at::Tensor& correct,
                                        const at::Tensor& switch_at,
                                        const at::Tensor& direction) {
  at::Tensor hits = correct.to(at::kDouble).contiguous();
  at::Tensor switches = switch_at.to(at::kLong).contiguous();
  at::Tensor directions = direction.to(at::kLong).contiguous();
  const int64_t streams = hits.size(0), steps = hits.size(1);
  const double* hit = hits.data_ptr<double>();
  const int64_t* switch_of = switches.data_ptr<int64_t>();
  const int64_t* direction_of = directions.data_ptr<int64_t>();
  struct Sums {
    std::map<int64_t, std::pair<double, int64_t>> by_offset;
    double before = 0, after = 0, window = 0;
    int64_t before_n = 0, after_n = 0, window_n = 0;
  };
  std::map<int, Sums> sums;
  for (int64_t e = 0; e < streams; ++e) {
    Sums& s = sums[static_cast<int>(direction_of[e])];
    for (int64_t t = 0; t < steps; ++t) {
      const double h = hit[e * steps + t];
      const int64_t offset = t - switch_of[e];
      auto& [sum, n] = s.by_offset[offset];
      sum += h;
      ++n;
      if (offset < 0) {
        s.before += h;
        ++s.before_n;
      } else {
        s.after += h;
        ++s.after_n;
        if (offset < kRecoveryWindow) {
          s.window += h;
          ++s.window_n;
        }
      }
    }
  }
  auto mean = [](double sum, int64_t n) { return n > 0 ? sum / n : 0.0; };
  std::map<int, SwitchCurve> curves;
  for (const auto& [dir, s] : sums) {
    SwitchCurve& curve = curves[dir];
    for (const auto& [offset, sum_n] : s.by_offset) {
      curve.offsets.push_back(offset);
      curve.accuracy.push_back(mean(sum_n.first, sum_n.second));
      curve.streams.push_back(sum_n.second);
    }
    curve.before_switch = mean(s.before, s.before_n);
    curve.after_switch = mean(s.after, s.after_n);
    curve.first_after_switch = mean(s.window, s.window_n);
  }
  return curves;
}

absl::Status MetaTest(Model& model, TrainingContext& training,
                      std::vector<std::string>* summary_lines) {
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
        state.position.step, state.score.best);
    summary_lines->push_back(absl::StrFormat(
        "meta-test of the best checkpoint (step %d, validation accuracy "
        "%.4f), written to fewshot.json:",
        state.position.step, state.score.best));
  } else {
    summary_lines->push_back(
        "meta-test of the last model (no best checkpoint), written to "
        "fewshot.json:");
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
    summary_lines->push_back(absl::StrFormat(
        "meta-test %s: accuracy %.2f%% +- %.2f (95%%, %d episodes)",
        name == kDigitsSplit ? "MNIST digits (cross-domain)"
                             : "held-out classes",
        100 * score.accuracy, 100 * score.ci95, score.episodes));
    auto* out = (*fields)[name].mutable_struct_value()->mutable_fields();
    (*out)["accuracy"].set_number_value(score.accuracy);
    (*out)["ci95"].set_number_value(score.ci95);
    (*out)["loss"].set_number_value(score.loss);
    (*out)["episodes"].set_number_value(score.episodes);
  }
  const Dataset& test = training.data().test;
  auto switch_at = test.extras.find(kSwitchAt);
  auto direction = test.extras.find(kDirection);
  if (switch_at != test.extras.end() && direction != test.extras.end()) {
    ASSIGN_OR_RETURN(at::Tensor correct, CorrectPredictions(model, test));
    ASSIGN_OR_RETURN(FewshotEpisodesConfig episodes,
                     ParseEpisodesConfig(training.config()));
    const SequentialStreamConfig& stream = episodes.stream();
    auto* sequential =
        (*fields)["sequential"].mutable_struct_value()->mutable_fields();
    (*sequential)["recovery_window"].set_number_value(kRecoveryWindow);
    for (const auto& [dir, curve] :
         SwitchCurves(correct, switch_at->second, direction->second)) {
      const std::string name =
          dir == 0 ? absl::StrCat(stream.first_domain(), "_then_",
                                  stream.second_domain())
                   : absl::StrCat(stream.second_domain(), "_then_",
                                  stream.first_domain());
      LOG(INFO) << absl::StrFormat(
          "meta-test stream %s: accuracy %.2f%% before the switch, %.2f%% "
          "over the first %d examples after it, %.2f%% after it",
          name, 100 * curve.before_switch, 100 * curve.first_after_switch,
          kRecoveryWindow, 100 * curve.after_switch);
      summary_lines->push_back(
          absl::StrFormat("meta-test stream %s: %.2f%% before the switch, "
                          "%.2f%% over the first %d "
                          "examples after it",
                          name, 100 * curve.before_switch,
                          100 * curve.first_after_switch, kRecoveryWindow));
      auto* out = (*sequential)[name].mutable_struct_value()->mutable_fields();
      (*out)["accuracy_before_switch"].set_number_value(curve.before_switch);
      (*out)["accuracy_first_after_switch"].set_number_value(
          curve.first_after_switch);
      (*out)["accuracy_after_switch"].set_number_value(curve.after_switch);
      auto list = [&](const char* key) {
        return (*out)[key].mutable_list_value();
      };
      auto* offsets = list("offsets");
      auto* accuracy = list("accuracy");
      auto* counts = list("streams");
      for (size_t i = 0; i < curve.offsets.size(); ++i) {
        offsets->add_values()->set_number_value(curve.offsets[i]);
        accuracy->add_values()->set_number_value(curve.accuracy[i]);
        counts->add_values()->set_number_value(curve.streams[i]);
      }
    }
  }
  (*fields)["steps"].set_number_value(training.step());
  return WriteFileAtomically(RunFile(training.run_dir(), "fewshot.json"),
                             FormatJson(root));
}

}  // namespace ouroboros::srwm
