// Pipeline `fewshot`: meta-training of a sequence model on sequential N-way
// K-shot episodes (episodes.h), built on the core Trainer so that the
// schedule, clipping, checkpoints, best-model selection, logs and
// metrics.json work as for any model.
//
// The Trainer's "samples" are episodes: a training batch of episode slots is
// filled with freshly sampled meta-training episodes; validation and test
// are fixed sets of episodes (the same ones every epoch and for every model
// with the same seed) from the meta-validation and meta-test classes.
// Accuracy is over the query steps. At the end, the best checkpoint (by
// validation accuracy) is meta-tested on the held-out classes and on the
// MNIST digits (cross-domain), into <run_dir>/fewshot.json.
#ifndef PLUGINS_SRWM_FEWSHOT_PIPELINE_H_
#define PLUGINS_SRWM_FEWSHOT_PIPELINE_H_

#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>

#include "absl/status/statusor.h"
#include "ouroboros/interfaces.h"
#include "ouroboros/trainer.h"
#include "plugins/srwm/episodes.h"
#include "plugins/srwm/srwm.pb.h"

namespace ouroboros::srwm {

// Parses pipeline_config with the defaults filled in, and checks it against
// data_config ("pipeline_config.<field>: reason").
absl::StatusOr<FewshotPipelineConfig> ParseFewshotConfig(
    const RunConfig& config);

struct EpisodeScore {
  double loss = 0;      // cross-entropy on the query steps
  double accuracy = 0;  // on the query steps
  double ci95 = 0;      // 95% confidence half-width over episodes
  int64_t episodes = 0;
};

class FewShotTrainer : public Trainer {
 public:
  FewShotTrainer(PipelineContext context, FewshotPipelineConfig config);

  // After Run(): the best checkpoint's (else the last model's) scores on
  // the meta-test classes ("meta_test") and the digits ("mnist_digits").
  absl::StatusOr<std::map<std::string, EpisodeScore>> MetaTest();

  // The model's scores on `episodes` episodes of `pool`, the same ones for a
  // given `seed`.
  absl::StatusOr<EpisodeScore> ScoreEpisodes(const ClassPool& pool,
                                             int64_t episodes, uint64_t seed);

 protected:
  absl::StatusOr<DataSplits> LoadData() override;
  absl::StatusOr<double> TrainStep(const Batch& batch) override;
  absl::StatusOr<std::map<std::string, double>> Evaluate(
      Split split, const Dataset& data) override;

 private:
  FewshotPipelineConfig config_;
  MetaSplit split_;
  std::optional<ClassPool> digits_;
  std::unique_ptr<EpisodeSampler> train_sampler_;
};

absl::StatusOr<std::unique_ptr<Pipeline>> MakeFewshotPipeline(
    const PipelineContext& context);

absl::Status ValidateFewshotConfig(const RunConfig& config);

}  // namespace ouroboros::srwm

#endif  // PLUGINS_SRWM_FEWSHOT_PIPELINE_H_
