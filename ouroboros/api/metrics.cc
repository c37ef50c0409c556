#include "ouroboros/api/metrics.h"

#include <ATen/ATen.h>

#include <cmath>
#include <limits>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace ouroboros {

double ClassificationMetrics::Get(const std::string& name) const {
  if (name == "loss") return loss;
  if (name == "accuracy") return accuracy;
  if (name == "precision") return precision;
  if (name == "recall") return recall;
  if (name == "f1") return f1;
  if (name == "auroc") return auroc;
  return std::numeric_limits<double>::quiet_NaN();
}

std::string FormatMetrics(const std::map<std::string, double>& metrics) {
  std::vector<std::string> parts;
  for (const auto& [name, value] : metrics) {
    parts.push_back(absl::StrFormat("%s %.4f", name, value));
  }
  return absl::StrJoin(parts, ", ");
}

double BinaryAuroc(const at::Tensor& scores, const at::Tensor& labels) {
  at::Tensor s = scores.to(at::kDouble).contiguous();
  at::Tensor y = labels.to(at::kBool).contiguous();
  const int64_t n = s.numel();
  const int64_t positives = y.sum().item<int64_t>();
  const int64_t negatives = n - positives;
  if (positives == 0 || negatives == 0) {
    return std::numeric_limits<double>::quiet_NaN();
  }
  // Mann-Whitney U: the sum of the positives' ranks, ties sharing the
  // average rank of their group.
  at::Tensor order = s.argsort();
  const double* sorted_scores = nullptr;
  at::Tensor sorted = s.index_select(0, order);
  at::Tensor sorted_labels = y.index_select(0, order);
  sorted_scores = sorted.data_ptr<double>();
  const bool* is_positive = sorted_labels.data_ptr<bool>();
  double positive_rank_sum = 0;
  for (int64_t i = 0; i < n;) {
    int64_t j = i;
    while (j + 1 < n && sorted_scores[j + 1] == sorted_scores[i]) ++j;
    const double average_rank = (i + j) / 2.0 + 1;  // ranks are 1-based
    for (int64_t k = i; k <= j; ++k) {
      if (is_positive[k]) positive_rank_sum += average_rank;
    }
    i = j + 1;
  }
  const double u = positive_rank_sum - positives * (positives + 1) / 2.0;
  return u / (static_cast<double>(positives) * negatives);
}

ClassificationMetrics ComputeClassificationMetrics(const at::Tensor& logits,
                                                   const at::Tensor& targets) {
  ClassificationMetrics m;
  const int64_t n = targets.numel();
  if (n == 0) return m;
  const int64_t classes = logits.size(1);
  at::Tensor log_probs = logits.to(at::kDouble).log_softmax(1);
  m.loss = -log_probs.gather(1, targets.view({-1, 1})).mean().item<double>();
  at::Tensor predicted = logits.argmax(1);
  m.accuracy = predicted.eq(targets).to(at::kDouble).mean().item<double>();

  // Confusion counts per class.
  at::Tensor one_hot_true = at::one_hot(targets, classes).to(at::kDouble);
  at::Tensor one_hot_pred = at::one_hot(predicted, classes).to(at::kDouble);
  at::Tensor tp = (one_hot_true * one_hot_pred).sum(0);
  at::Tensor support = one_hot_true.sum(0);
  at::Tensor predicted_count = one_hot_pred.sum(0);
  auto tp_a = tp.accessor<double, 1>();
  auto support_a = support.accessor<double, 1>();
  auto pred_a = predicted_count.accessor<double, 1>();
  int counted = 0;
  for (int64_t c = 0; c < classes; ++c) {
    if (support_a[c] == 0 && pred_a[c] == 0) continue;
    ++counted;
    double p = pred_a[c] > 0 ? tp_a[c] / pred_a[c] : 0;
    double r = support_a[c] > 0 ? tp_a[c] / support_a[c] : 0;
    m.precision += p;
    m.recall += r;
    m.f1 += p + r > 0 ? 2 * p * r / (p + r) : 0;
  }
  if (counted > 0) {
    m.precision /= counted;
    m.recall /= counted;
    m.f1 /= counted;
  }

  at::Tensor probs = log_probs.exp();
  double auroc_sum = 0;
  int auroc_classes = 0;
  for (int64_t c = 0; c < classes; ++c) {
    double auc = BinaryAuroc(probs.select(1, c), targets.eq(c));
    if (std::isnan(auc)) continue;
    auroc_sum += auc;
    ++auroc_classes;
  }
  m.auroc = auroc_classes > 0 ? auroc_sum / auroc_classes
                              : std::numeric_limits<double>::quiet_NaN();
  return m;
}

}  // namespace ouroboros
