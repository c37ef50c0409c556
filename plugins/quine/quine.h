// Neural network quines (Chang & Lipson 2018), registered as model `quine`:
// a network that learns to output its own weights.
//
// Vanilla: coordinate c -> row c of a fixed random projection -> bias-free
// SELU layers -> the predicted value of parameter c. Auxiliary: an image
// enters through its own fixed projection beside the coordinate's, and a
// class head on the last hidden layer classifies it.
//
// model_config: {"variant": "vanilla", "coordinate_embedding": 100,
//                "hidden_sizes": [100, 100], "regenerate_every_epochs": 1}
//
// All parameters live in ONE flat tensor theta (the layers are views of it),
// so coordinate c is simply theta[c], the self-replication target is an
// index_select and regeneration is one copy_ into the live parameter.
#ifndef PLUGINS_QUINE_QUINE_H_
#define PLUGINS_QUINE_QUINE_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "ouroboros/api/interfaces.h"
#include "plugins/quine/quine.pb.h"

namespace ouroboros::quine {

// The data source of the vanilla quine: its own coordinates.
inline constexpr char kCoordinatesDataSource[] = "quine_coordinates";

// Parses and validates model_config ("model_config.<field>: reason"), with
// the defaults filled in.
absl::StatusOr<QuineConfig> ParseQuineConfig(const RunConfig& config);
// The defaults that depend on the variant: coordinate_embedding (100
// vanilla, 50 auxiliary) and the auxiliary quine's image_embedding (50).
void FillDerivedQuineDefaults(QuineConfig* quine, const RunConfig& config);

bool IsAuxiliary(const QuineConfig& config);

// Where each weight matrix sits in theta, input side first.
struct QuineLayout {
  struct Matrix {
    int64_t rows = 0;  // output features
    int64_t cols = 0;  // input features
    int64_t offset = 0;
  };
  std::vector<Matrix> hidden;  // the SELU layers
  Matrix weight_head;          // last hidden -> 1 (the predicted weight)
  Matrix class_head;           // last hidden -> classes (auxiliary; else 0x0)
  int64_t num_parameters = 0;
};

// `num_classes` only matters for the auxiliary variant.
QuineLayout MakeQuineLayout(const QuineConfig& config, int64_t num_classes);

// The three numbers the paper watches.
struct ReplicationStats {
  double sr_loss = 0;    // L_SR = sum_c (f(c) - theta_c)^2 over all c
  double weight_sq = 0;  // sum(theta^2)
  double rho = 0;        // L_SR / sum(theta^2)
};

// The spectral radius of a linear map on R^size given by its products
// `apply(v)` = A v: power iteration from a random start drawn from `seed`,
// the geometric mean of the growth ||A v|| / ||v|| over the second half of
// `iterations` steps (the first half lets the start settle). The growth
// rate, not a Rayleigh quotient, so that a complex dominant pair (a
// rotation) gives its modulus too.
// With `direction`: the last iterate (unit norm, float64), the dominant
// direction found.
double SpectralRadiusByPowerIteration(
    const std::function<at::Tensor(const at::Tensor&)>& apply, int64_t size,
    int iterations, uint64_t seed, at::Tensor* direction = nullptr);

class QuineModel : public Model {
 public:
  // `data` gives the image size and classes (auxiliary only); `seed` draws
  // the fixed projections and the initial weights.
  QuineModel(const QuineConfig& config, const DataSpec& data, uint64_t seed);
  ~QuineModel() override;

  torch::nn::Module& module() override;
  // Auxiliary: class logits of the images (batch x image shape; the
  // coordinate half of the input is zero). Vanilla: the predicted weights
  // f(c) of a batch of int64 coordinates (batch x 1, from the
  // quine_coordinates data source).
  at::Tensor Forward(const at::Tensor& inputs) override;
  // The training loss of one step, from Forward's outputs. Vanilla: L_SR of
  // the coordinates in `targets`. Auxiliary: L_SR of the next
  // coordinates_per_step coordinates (0: all) + task_weight * L_task, or
  // L_task alone with task_only. Each call moves on to the next coordinates,
  // so call it once per training step.
  at::Tensor Loss(const at::Tensor& outputs,
                  const at::Tensor& targets) override;
  // L_SR, rho and sum(theta^2) on every split (the auxiliary quine adds the
  // task's score_config metrics on the images).
  absl::StatusOr<std::map<std::string, double>> Evaluate(
      Split split, const Dataset& data, TrainingContext& training) override;
  // OnEpochEnd below; after a regeneration, a fresh optimizer state.
  absl::Status OnEpochEnd(int64_t epoch, TrainingContext& training,
                          std::map<std::string, double>* metrics) override;
  // Pre-regeneration statistics into `metrics`, regeneration when due, then
  // the zero-quine guard (Aborted: exit code 1).
  absl::Status OnEpochEnd(int64_t epoch,
                          std::map<std::string, double>* metrics);
  // plots/quine.png: L_SR, rho and sum(theta^2) per epoch before
  // regeneration, the regenerations marked.
  std::vector<FigureSpec> Figures() const override;
  // The last epoch's self-replication: rho before and after its
  // regeneration, the regeneration map's spectral radius, and what the
  // train loss sums against sr_loss. Nothing when this process ended no
  // epoch (a resume after the last one).
  std::vector<std::string> SummaryLines() const override;
  // The auxiliary quine's coordinate order (its pass, cursor and the order
  // itself), so that a resumed run draws the coordinates an uninterrupted
  // one would; with contraction_weight, the direction the penalty uses.
  // Otherwise the vanilla quine has no state beyond its tensors.
  absl::Status SaveState(ComponentState* state) const override;
  absl::Status LoadState(const ComponentState& state) override;

  // f_theta(c) for int64 coordinates (the image half of the input is zero;
  // scaled with print_normalization).
  at::Tensor PredictWeights(const at::Tensor& coordinates);
  // f_theta for coordinates given by their projections (rows of
  // coordinate_projection(), batch x coordinate_embedding).
  at::Tensor PredictFromEmbedding(const at::Tensor& embedded);
  // sum over `coordinates` of (f(c) - theta_c)^2; the targets theta_c are
  // detached, so gradients reach theta only through f. Plus, with
  // two_step_weight w > 0, w * TwoStepError(coordinates).
  at::Tensor SelfReplicationLoss(const at::Tensor& coordinates);
  // The print's own error over `coordinates`: sum (f_theta'(c) -
  // theta'_c)^2 with theta' = f_theta(C), differentiable in theta through
  // both (with sr_loss "relative", over the coordinates' share of
  // sum(theta'^2)). What the next regeneration's network will miss.
  at::Tensor TwoStepError(const at::Tensor& coordinates);
  // |J^T e|^2 / N for e ~ N(0, I) drawn from the global generator (J: the
  // Jacobian of theta -> f_theta(C), scaled with print_normalization),
  // differentiable in theta: an unbiased estimate of |J|_F^2 / N. With
  // jacobian_at_print, J is taken at theta' = f_theta(C) (the graph
  // reaching theta through theta').
  at::Tensor JacobianPenalty();
  // L_SR, sum(theta^2) and rho over all coordinates, without gradients.
  ReplicationStats Stats();
  // theta <- f_theta(C) for all coordinates at once, written into the live
  // parameter (same tensor, so optimizers and views keep pointing at it).
  void Regenerate();
  // The spectral radius of the Jacobian of the regeneration map
  // theta -> (1 - a) theta + a f_theta(C) at the current theta (a: the
  // damping), from Jacobian-vector products (two backward passes each).
  // With contraction_weight, also the directions of ContractionPenalty:
  // the dominant one, or with contraction_directions k > 1 the k most
  // amplified (subspace iteration, `iterations` more rounds of k
  // products). Draws from its own generators, not the global one.
  double RegenerationSpectralRadius(int iterations);
  // The contraction penalty of the step's `coordinates` (contraction_weight;
  // 0 before the first regeneration found directions): w * sum over the
  // directions v of max(0, g_v - target)^2, g_v = sqrt(N / |S|) *
  // ||((1 - a) I + a J)_S v||, differentiable in theta.
  at::Tensor ContractionPenalty(const at::Tensor& coordinates);
  // The gains g_v of ContractionPenalty (float64, no gradient), or an
  // undefined tensor without directions.
  at::Tensor ContractionGains(const at::Tensor& coordinates);
  // The print's degree in the weights' scale, d log|f_{s theta}(C)| / d log s
  // at s = 1, that is <J theta, f> / |f|^2 (J: the Jacobian of theta ->
  // f_theta(C)). At a fixed point (f = theta) it is J's eigenvalue along
  // theta, and 1 - a + a * degree the damped map's. About 3 for the raw
  // print (three weight layers; SELU near 0 is piecewise linear), so no raw
  // fixed point attracts; 0 for a print scaled by print_normalization.
  double PrintScaleDegree();
  // f_theta(C) over all coordinates for the weights `theta` (the live ones
  // or a print), scaled with print_normalization; gradients as the grad
  // mode says.
  at::Tensor PrintOf(const at::Tensor& theta);
  // True with a print_normalization other than "none".
  bool normalizes_print() const;
  // True if the epoch-end hook of 0-based `epoch` regenerates.
  bool RegeneratesAfter(int64_t epoch) const;

  // The flat parameter vector theta.
  const at::Tensor& weights() const;
  // The fixed projection of the coordinates, num_parameters x embedding.
  const at::Tensor& coordinate_projection() const;
  int64_t num_parameters() const { return layout_.num_parameters; }
  const QuineConfig& config() const { return config_; }
  bool auxiliary() const { return IsAuxiliary(config_); }
  // The directions ContractionPenalty uses, contraction_directions x N
  // (undefined before the first RegenerationSpectralRadius, and without
  // contraction_weight).
  const at::Tensor& contraction_directions() const {
    return contraction_directions_;
  }
  // sum(theta^2) right after initialization (the zero-quine guard's scale).
  double initial_weight_sq() const { return initial_weight_sq_; }

 private:
  // The shared body with weights `theta` (the live ones, or a print of
  // them): the SELU layers, then `head`, giving (batch x head rows). `input` is
  // one half of the first layer's input (coordinate or image embedding),
  // starting at column `first_column`; the other half is 0.
  at::Tensor Body(const at::Tensor& input, int64_t first_column,
                  const QuineLayout::Matrix& head, const at::Tensor& theta);
  // f_theta(C) for every coordinate, without gradients.
  at::Tensor PredictAllWeights();
  // v -> ((1 - a) I + a J) v at the current theta for damping a (float32
  // in and out).
  std::function<at::Tensor(const at::Tensor&)> RegenerationMapProduct(
      double damping);
  // sum_c (predictions_c - theta_c)^2 with theta_c detached; with sr_loss
  // "relative", divided by sum_c theta_c^2 (not detached).
  at::Tensor ReplicationError(const at::Tensor& predictions,
                              const at::Tensor& coordinates);
  // ReplicationError, plus w * TwoStepError(coordinates) with
  // two_step_weight w > 0: a step's self-replication loss.
  at::Tensor ReplicationLoss(const at::Tensor& predictions,
                             const at::Tensor& coordinates);
  // sum (predictions - targets)^2; with sr_loss "relative", divided by the
  // targets' share of sum(weights^2) (not detached).
  at::Tensor SquaredError(const at::Tensor& predictions,
                          const at::Tensor& targets, const at::Tensor& weights);
  at::Tensor View(const at::Tensor& theta,
                  const QuineLayout::Matrix& matrix) const;
  // The auxiliary quine's next L_SR coordinates: all of them, or the next
  // coordinates_per_step of a shuffled order (reshuffled when used up).
  at::Tensor NextCoordinates();

  QuineConfig config_;
  QuineLayout layout_;
  struct Modules;
  std::unique_ptr<Modules> modules_;
  double initial_weight_sq_ = 0;
  // Each matrix's sum of squared deviations from its mean at
  // initialization, in Matrices() order (print_normalization per_matrix).
  std::vector<double> initial_centered_sq_;
  // The weight matrices in theta's order: the hidden layers, the weight
  // head, the auxiliary quine's class head.
  std::vector<const QuineLayout::Matrix*> Matrices() const;
  uint64_t seed_;
  at::Tensor coordinate_order_;
  int64_t coordinate_cursor_ = 0;
  int64_t coordinate_pass_ = 0;
  // The regeneration map's most amplified directions at the last
  // regeneration (k x N float32, orthonormal rows), for
  // ContractionPenalty; undefined before.
  at::Tensor contraction_directions_;
  // ((1 - a) I + a J)_S v over `coordinates` for each direction v (k x |S|),
  // with the graph in theta.
  at::Tensor MapProductOnRows(const at::Tensor& coordinates);
  // The gains g_v of ContractionPenalty, with the graph in theta.
  at::Tensor GainsOnRows(const at::Tensor& coordinates);
  // Stores the newest directions (k x N), with the previous
  // regeneration's k behind them under contraction_previous_directions.
  void KeepContractionDirections(const at::Tensor& newest);
  // contraction_weight, ramped over contraction_ramp_epochs.
  double ContractionWeightNow() const;
  // Epochs ended so far (OnEpochEnd), for the ramp; in the checkpoint when
  // a ramp is set.
  int64_t epochs_done_ = 0;
  // The metrics of the last OnEpochEnd in this process, for SummaryLines.
  std::map<std::string, double> last_epoch_metrics_;
  // With print_normalization, the whole print (with its graph) that this
  // step's PredictWeights made; TwoStepError reuses it instead of running
  // the same forward again, and ReplicationLoss drops it.
  at::Tensor step_print_;
  // Its own print (with print_normalization and the two-step loss), which
  // the Jacobian penalty at the print reuses.
  at::Tensor step_reprint_;
  // With print_task_weight, the image embeddings of this step's Forward,
  // for the print's task loss in Loss.
  at::Tensor step_images_;
};

absl::StatusOr<std::unique_ptr<Model>> MakeQuine(const ModelContext& context);

absl::Status ValidateQuineConfig(const RunConfig& config);

// The quine_coordinates data source: every split holds the N coordinates
// 0 .. N-1 (int64) of the quine model_config describes.
absl::StatusOr<DataSplits> MakeCoordinateSplits(
    const DataSourceContext& context);

}  // namespace ouroboros::quine

#endif  // PLUGINS_QUINE_QUINE_H_
