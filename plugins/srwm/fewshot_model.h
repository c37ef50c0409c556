// The few-shot sequence learner: a Conv-4 image encoder, then stacked
// blocks (layer norm -> sequence layer -> linear, + residual; layer norm ->
// feed-forward, + residual) whose sequence layer is an SRWM or one of the
// baselines (DeltaNet, Fake-SR, LSTM), then a linear read-out of the
// episode's N labels at every step.
//
// Input: B x T x (pixels + N), as PackEpisodeInputs() makes it (a square
// image and the previous step's one-hot label); output: B x T x N logits.
// The blocks run over 2T sub-steps: step t is read as the labelled pair
// (features of image t-1, label t-1), then (features of image t, no label),
// whose output is step t's prediction.
#ifndef PLUGINS_SRWM_FEWSHOT_MODEL_H_
#define PLUGINS_SRWM_FEWSHOT_MODEL_H_

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "ouroboros/api/interfaces.h"
#include "plugins/srwm/srwm.pb.h"

namespace ouroboros::srwm {

// model_config with the defaults filled in.
struct ModelShape {
  std::string sequence_model;  // srwm, deltanet, fake_sr, lstm
  int64_t width = 0;           // D of this model (baselines: matched)
  int64_t heads = 0;
  int64_t layers = 0;
  int64_t ff_size = 0;  // 0: 2 x width
  int64_t encoder_channels = 0;
  bool fused_kernel = true;
  double w0_init_std = 0;  // 0: 1/sqrt(d)
  bool input_softmax = false;
  double label_input_scale = 4;
  double w0_key_identity = 0;        // + s I in W_0's key rows (srwm, fake_sr)
  double beta_init = 0;              // mean of W_0's rate rows (srwm, fake_sr)
  bool srwm_reads_residual = false;  // srwm_input residual, srwm/fake_sr
  bool query_loss_only = false;
};

// "<section>.<name>: must be >= 1 (got v)" for the first (name, v) of
// `fields` with v < 1, else OK.
absl::Status CheckSizes(
    absl::string_view section,
    std::initializer_list<std::pair<const char*, int32_t>> fields);

// Parses and validates model_config ("model_config.<field>: reason").
absl::StatusOr<SrwmConfig> ParseSrwmConfig(const RunConfig& config);

// The default that depends on other fields: w0_init_std, the paper's
// 1/sqrt(d) with d = hidden_size / num_heads.
void FillDerivedSrwmDefaults(SrwmConfig* srwm, const RunConfig& config);

// The shape to build for `config` on episodes with `ways` labels: for a
// baseline, the width whose parameter count is closest to the srwm model of
// the same config.
ModelShape ResolveModelShape(const SrwmConfig& config, int64_t ways);

// Parameters of a model of `shape` for `ways` labels (the analytic count;
// tests check it against the built module).
int64_t CountParameters(const ModelShape& shape, int64_t ways);

absl::StatusOr<std::unique_ptr<Model>> MakeFewShotModel(
    const ModelContext& context);

}  // namespace ouroboros::srwm

#endif  // PLUGINS_SRWM_FEWSHOT_MODEL_H_
