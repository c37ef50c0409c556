#include "plugins/tune/search.h"

#include <algorithm>
#include <cmath>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "google/protobuf/util/json_util.h"
#include "ouroboros/base/errors.h"
#include "ouroboros/base/status_macros.h"
#include "ouroboros/config/config.h"
#include "ouroboros/config/config_checks.h"

namespace ouroboros::tune {
namespace {

std::string CompactJson(const google::protobuf::Value& value) {
  std::string text;
  (void)google::protobuf::util::MessageToJsonString(value, &text);
  return text;
}

// Drawn reals are rounded to 4 significant digits: readable in tables and
// file names, and finer steps do not matter to a search.
std::string NumberJson(double number) {
  google::protobuf::Value value;
  value.set_number_value(std::stod(absl::StrFormat("%.4g", number)));
  return CompactJson(value);
}

int KindsSet(const ParamSpace& space) {
  return space.has_grid() + space.has_choice() + !space.uniform().empty() +
         !space.log_uniform().empty() + !space.int_range().empty();
}

absl::Status CheckSpace(const std::string& path, const ParamSpace& space,
                        bool grid_search) {
  const std::string field = absl::StrCat("pipeline_config.space.", path);
  if (KindsSet(space) != 1) {
    return ConfigFieldError(
        field,
        "give exactly one of grid, choice, uniform, log_uniform, int_range");
  }
  if ((space.has_grid() && space.grid().values().empty()) ||
      (space.has_choice() && space.choice().values().empty())) {
    return ConfigFieldError(field, "needs at least one value");
  }
  const bool range = !space.uniform().empty() || !space.log_uniform().empty() ||
                     !space.int_range().empty();
  if (range && grid_search) {
    return ConfigFieldError(field,
                            "grid search needs grid or choice values, not a "
                            "range (or use \"search\": \"random\")");
  }
  auto check_pair = [&](const auto& values, const char* kind,
                        bool positive) -> absl::Status {
    if (values.empty()) return absl::OkStatus();
    if (values.size() != 2 || !(values[0] <= values[1]) ||
        (positive && !(values[0] > 0))) {
      return ConfigFieldError(
          absl::StrCat(field, ".", kind),
          absl::StrCat("must be [low, high] with low <= high",
                       positive ? " and low > 0" : ""));
    }
    return absl::OkStatus();
  };
  RETURN_IF_ERROR(check_pair(space.uniform(), "uniform", false));
  RETURN_IF_ERROR(check_pair(space.log_uniform(), "log_uniform", true));
  return check_pair(space.int_range(), "int_range", false);
}

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

// Linear interpolation between order statistics (numpy's default).
double Quantile(std::vector<double> values, double q) {
  std::sort(values.begin(), values.end());
  const double position = q * (values.size() - 1);
  const size_t below = static_cast<size_t>(std::floor(position));
  const size_t above = std::min(below + 1, values.size() - 1);
  return values[below] + (position - below) * (values[above] - values[below]);
}

}  // namespace

void FillDerivedTuneDefaults(TunePipelineConfig* tune,
                             const RunConfig& config) {
  if (!tune->has_metric()) {
    tune->set_metric(config.score_config().monitor().empty()
                         ? "loss"
                         : config.score_config().monitor());
  }
  if (!tune->has_mode())
    tune->set_mode(tune->metric() == "loss" ? "min" : "max");
  if (!tune->has_num_trials()) {
    tune->set_num_trials(tune->search() == "random" ? 8 : 0);
  }
}

absl::StatusOr<TunePipelineConfig> ParseTuneConfig(const RunConfig& config) {
  ASSIGN_OR_RETURN(TunePipelineConfig tune,
                   ParseSection<TunePipelineConfig>(config.pipeline_config(),
                                                    "pipeline_config"));
  FillDerivedTuneDefaults(&tune, config);
  RETURN_IF_ERROR(CheckOneOf("pipeline_config.search", tune.search(),
                             {"random", "grid"}, "search"));
  if (tune.space().empty()) {
    return ConfigFieldError("pipeline_config.space",
                            "give at least one field to search, e.g. "
                            "{\"optim_config.lr\": {\"log_uniform\": [1e-4, "
                            "1e-1]}}");
  }
  for (const auto& [path, space] : tune.space()) {
    RETURN_IF_ERROR(CheckSpace(path, space, tune.search() == "grid"));
  }
  RETURN_IF_ERROR(CheckOneOf(
      "pipeline_config.metric", tune.metric(),
      {"loss", "accuracy", "precision", "recall", "f1", "auroc"}, "metric"));
  RETURN_IF_ERROR(
      CheckOneOf("pipeline_config.mode", tune.mode(), {"max", "min"}, "mode"));
  struct NonNegative {
    const char* field;
    double value;
  };
  for (const NonNegative& f :
       {NonNegative{"num_trials", double(tune.num_trials())},
        {"max_concurrent", double(tune.max_concurrent())},
        {"trial_threads", double(tune.trial_threads())},
        {"trial_epochs", double(tune.trial_epochs())},
        {"trial_timeout_seconds", tune.trial_timeout_seconds()}}) {
    RETURN_IF_ERROR(
        CheckAtLeast(absl::StrCat("pipeline_config.", f.field), f.value, 0.0));
  }
  if (tune.search() == "random" && tune.num_trials() < 1) {
    return ConfigFieldError("pipeline_config.num_trials",
                            absl::StrCat("random search needs >= 1 trial (got ",
                                         tune.num_trials(), ")"));
  }
  const EarlyStopping& rule = tune.early_stopping();
  RETURN_IF_ERROR(CheckOneOf("pipeline_config.early_stopping.method",
                             rule.method(), {"none", "median", "asha"},
                             "early stopping method"));
  for (const auto& [field, value] :
       {std::pair<const char*, int>{"grace_epochs", rule.grace_epochs()},
        {"min_trials", rule.min_trials()}}) {
    RETURN_IF_ERROR(CheckAtLeast(
        absl::StrCat("pipeline_config.early_stopping.", field), value, 1));
  }
  RETURN_IF_ERROR(
      CheckAtLeast("pipeline_config.early_stopping.reduction_factor",
                   rule.reduction_factor(), 2));
  if (tune.trial_pipeline() == "tune") {
    return ConfigFieldError("pipeline_config.trial_pipeline",
                            "a trial cannot itself be a tune");
  }
  return tune;
}

std::vector<std::string> SearchedPaths(const TunePipelineConfig& tune) {
  std::vector<std::string> paths;
  for (const auto& [path, space] : tune.space()) paths.push_back(path);
  std::sort(paths.begin(), paths.end());
  return paths;
}

absl::StatusOr<std::vector<Trial>> MakeTrials(const TunePipelineConfig& tune,
                                              uint64_t seed) {
  std::vector<Trial> trials;
  if (tune.search() == "grid") {
    // Odometer over the fields (in path order): the last field turns fastest.
    std::vector<std::pair<std::string, const google::protobuf::ListValue*>>
        axes;
    for (const std::string& path : SearchedPaths(tune)) {
      const ParamSpace& space = tune.space().at(path);
      axes.emplace_back(path,
                        space.has_grid() ? &space.grid() : &space.choice());
    }
    std::vector<int> digit(axes.size(), 0);
    while (true) {
      Trial trial;
      trial.index = static_cast<int>(trials.size());
      for (size_t a = 0; a < axes.size(); ++a) {
        trial.params[axes[a].first] =
            CompactJson(axes[a].second->values(digit[a]));
      }
      trials.push_back(std::move(trial));
      if (tune.num_trials() > 0 &&
          static_cast<int>(trials.size()) >= tune.num_trials()) {
        break;
      }
      int a = static_cast<int>(axes.size()) - 1;
      for (; a >= 0; --a) {
        if (++digit[a] < axes[a].second->values_size()) break;
        digit[a] = 0;
      }
      if (a < 0) break;
    }
  } else {
    std::mt19937_64 random(seed);
    for (int i = 0; i < tune.num_trials(); ++i) {
      Trial trial;
      trial.index = i;
      for (const std::string& path : SearchedPaths(tune)) {
        const ParamSpace& space = tune.space().at(path);
        std::string value;
        const google::protobuf::ListValue* list =
            space.has_grid() ? &space.grid()
                             : (space.has_choice() ? &space.choice() : nullptr);
        if (list != nullptr) {
          std::uniform_int_distribution<int> pick(0, list->values_size() - 1);
          value = CompactJson(list->values(pick(random)));
        } else if (!space.uniform().empty()) {
          std::uniform_real_distribution<double> draw(space.uniform(0),
                                                      space.uniform(1));
          value = NumberJson(draw(random));
        } else if (!space.log_uniform().empty()) {
          std::uniform_real_distribution<double> draw(
              std::log(space.log_uniform(0)), std::log(space.log_uniform(1)));
          value = NumberJson(std::exp(draw(random)));
        } else {
          std::uniform_int_distribution<int64_t> draw(space.int_range(0),
                                                      space.int_range(1));
          value = absl::StrCat(draw(random));
        }
        trial.params[path] = value;
      }
      trials.push_back(std::move(trial));
    }
  }
  for (Trial& trial : trials) {
    for (const auto& [path, value] : trial.params) {
      trial.overrides.push_back(absl::StrCat(path, "=", value));
    }
  }
  return trials;
}

bool Better(double value, double other, const std::string& mode) {
  return mode == "min" ? value < other : value > other;
}

bool MedianRuleStops(const std::vector<double>& history,
                     const std::vector<std::vector<double>>& others,
                     const EarlyStopping& rule, const std::string& mode) {
  const size_t epoch = history.size();
  if (epoch == 0 || static_cast<int>(epoch) <= rule.grace_epochs()) {
    return false;
  }
  std::vector<double> running_averages;
  for (const std::vector<double>& other : others) {
    if (other.size() < epoch) continue;
    double sum = 0;
    for (size_t e = 0; e < epoch; ++e) sum += other[e];
    running_averages.push_back(sum / epoch);
  }
  if (static_cast<int>(running_averages.size()) < rule.min_trials()) {
    return false;
  }
  double best = history[0];
  for (double value : history) {
    if (Better(value, best, mode)) best = value;
  }
  return Better(Median(running_averages), best, mode);
}

bool AshaStops(const std::vector<double>& history,
               const std::vector<std::vector<double>>& others,
               const EarlyStopping& rule, const std::string& mode) {
  const int64_t epoch = static_cast<int64_t>(history.size());
  int64_t rung = rule.grace_epochs();
  while (rung < epoch) rung *= rule.reduction_factor();
  if (rung != epoch) return false;  // only judged on reaching a rung
  std::vector<double> recorded = {history[epoch - 1]};
  for (const std::vector<double>& other : others) {
    if (static_cast<int64_t>(other.size()) >= epoch) {
      recorded.push_back(other[epoch - 1]);
    }
  }
  const double keep = 1.0 / rule.reduction_factor();
  const double cutoff =
      mode == "min" ? Quantile(recorded, keep) : Quantile(recorded, 1 - keep);
  return Better(cutoff, history[epoch - 1], mode);
}

}  // namespace ouroboros::tune
