// Classification metrics of score_config, computed from a model's logits.
//
//   ClassificationMetrics m = ComputeClassificationMetrics(logits, targets);
//   m.accuracy, m.f1  // macro averages over the classes
//
// Definitions (as scikit-learn's macro averages with zero_division=0):
// a class counts if it occurs in the targets or the predictions; precision of
// a class never predicted is 0, recall of a class never present is 0;
// f1 is the mean of the per-class F1 scores. auroc is one-vs-rest on the
// softmax probabilities, averaged over the classes that have both positive
// and negative samples (ties get the average rank); NaN if there is none.
#ifndef OUROBOROS_API_METRICS_H_
#define OUROBOROS_API_METRICS_H_

#include <ATen/core/Tensor.h>

#include <map>
#include <string>
#include <vector>

namespace ouroboros {

struct ClassificationMetrics {
  double loss = 0;  // mean cross-entropy
  double accuracy = 0;
  double precision = 0;
  double recall = 0;
  double f1 = 0;
  double auroc = 0;

  // The named metric ("loss", "accuracy", ..., "auroc").
  double Get(const std::string& name) const;
};

// logits: N x C (float), targets: N (int64).
ClassificationMetrics ComputeClassificationMetrics(const at::Tensor& logits,
                                                   const at::Tensor& targets);

// Area under the ROC curve of binary `labels` (0/1) ranked by `scores`.
// "accuracy 0.5938, loss 0.8835": the metrics by name, 4 decimals, as the
// console and log.txt show them.
std::string FormatMetrics(const std::map<std::string, double>& metrics);

double BinaryAuroc(const at::Tensor& scores, const at::Tensor& labels);

}  // namespace ouroboros

#endif  // OUROBOROS_API_METRICS_H_
