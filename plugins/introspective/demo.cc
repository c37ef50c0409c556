#include "plugins/introspective/demo.h"

#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "glog/logging.h"
#include "google/protobuf/util/json_util.h"
#include "ouroboros/api/plugin_api.h"
#include "ouroboros/api/registry.h"
#include "ouroboros/base/errors.h"
#include "ouroboros/base/files.h"
#include "ouroboros/base/json.h"
#include "ouroboros/base/progress.h"
#include "ouroboros/base/status_macros.h"
#include "ouroboros/base/stop_signal.h"
#include "ouroboros/config/config.h"
#include "ouroboros/config/config_checks.h"
#include "ouroboros/distributed/child_process.h"
#include "ouroboros/distributed/child_run.h"
#include "ouroboros/runs/plots.h"
#include "ouroboros/runs/run_layout.h"
#include "ouroboros/runs/run_metrics.h"
#include "ouroboros/runs/run_records.h"
#include "ouroboros/runs/run_spec.h"
#include "plugins/introspective/hooks.h"
#include "plugins/introspective/introspection_net.h"

namespace ouroboros::introspective {
namespace {

namespace fs = std::filesystem;

constexpr char kNetworkFile[] = "introspection_net.pt";
// What training I found (IntrospectionTrainResult), written after the
// network: a resumed demo that finds both skips the training.
constexpr char kNetworkResultFile[] = "introspection_net.json";

// The run config of a RunSpec, with `extra` overrides after the spec's own.
// "_plain", "_jumps" (I) or "_jumps_linear": the target run's name suffix.
std::string TargetRunSuffix(const std::string& predictor) {
  if (predictor.empty()) return "_plain";
  if (predictor == kNetworkPredictor) return "_jumps";
  return "_jumps_" + predictor;
}

// plain-seedS, jump-seedS (I) or jump_linear-seedS: the target run's
// directory under targets/.
std::string TargetRunName(const std::string& predictor, uint64_t seed) {
  std::string kind = predictor.empty()                ? "plain"
                     : predictor == kNetworkPredictor ? "jump"
                                                      : "jump_" + predictor;
  return absl::StrCat(kind, "-seed", seed);
}

absl::StatusOr<RunConfig> ResolveDemoRun(const RunSpec& spec,
                                         const std::string& field,
                                         std::vector<std::string> extra) {
  RunSpecSource source;
  source.where = field;
  source.config_file = spec.config();
  if (spec.has_inline_config()) source.inline_config = &spec.inline_config();
  std::vector<std::string> overrides(spec.set().begin(), spec.set().end());
  overrides.insert(overrides.end(), extra.begin(), extra.end());
  ASSIGN_OR_RETURN(ResolvedRunSpec resolved,
                   ResolveRunSpec(source, overrides, /*registry=*/nullptr));
  return std::move(resolved.config);
}

std::string MessageJson(const google::protobuf::Message& message) {
  std::string json;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(message, &json, options);
  return json;
}

// The record runs: `record`, then each of `more_records`; index 0 is
// `record`.
int RecordRunCount(const DemoPipelineConfig& demo) {
  return 1 + demo.more_records_size();
}
const RunSpec& RecordSpec(const DemoPipelineConfig& demo, int index) {
  return index == 0 ? demo.record() : demo.more_records(index - 1);
}
std::string RecordField(int index) {
  return index == 0
             ? "pipeline_config.record"
             : absl::StrCat("pipeline_config.more_records[", index - 1, "]");
}
// record/, record_2/, ...: the record run's directory under the demo's.
std::string RecordDirName(int index) {
  return index == 0 ? "record" : absl::StrCat("record_", index + 1);
}

// Record run `index`: its spec with the top level's data_config and seed.
absl::StatusOr<RunConfig> RecordConfig(const RunConfig& top,
                                       const DemoPipelineConfig& demo,
                                       int index = 0) {
  absl::StatusOr<RunConfig> config =
      ResolveDemoRun(RecordSpec(demo, index), RecordField(index),
                     {"data_config=" + MessageJson(top.data_config()),
                      absl::StrCat("seed=", top.seed())});
  if (!config.ok()) return config.status();
  HookConfig* hook = config->add_hooks();
  hook->set_name(kRecordHook);
  auto recorder = top.pipeline_config().fields().find("recorder");
  if (recorder != top.pipeline_config().fields().end()) {
    *hook->mutable_config() = recorder->second.struct_value();
  }
  config->set_run_name(top.run_name() + "_" + RecordDirName(index));
  return config;
}

// A target run of one seed, plain or with jumps.
// `predictor`: empty for the plain run, else the jump hook's predictor
// (`network` is I's file, for predictor "network").
absl::StatusOr<RunConfig> TargetConfig(const DemoPipelineConfig& demo,
                                       uint64_t seed,
                                       const std::string& predictor,
                                       const std::string& network) {
  const bool jumps = !predictor.empty();
  absl::StatusOr<RunConfig> config = ResolveDemoRun(
      demo.target(), "pipeline_config.target",
      {absl::StrCat("seed=", seed),
       absl::StrCat("run_config.eval_every_steps=", demo.eval_every_steps())});
  if (!config.ok()) return config.status();
  ScoreConfig& score = *config->mutable_score_config();
  if (score.metrics().empty()) {
    score.add_metrics("loss");
    score.add_metrics("accuracy");
  }
  if (std::find(score.metrics().begin(), score.metrics().end(),
                demo.metric()) == score.metrics().end()) {
    score.add_metrics(demo.metric());
  }
  if (jumps) {
    HookConfig* hook = config->add_hooks();
    hook->set_name(kJumpHook);
    auto& fields = *hook->mutable_config()->mutable_fields();
    fields["predictor"].set_string_value(predictor);
    if (predictor == kNetworkPredictor) {
      fields["network"].set_string_value(network);
    }
    auto* steps = fields["jump_steps"].mutable_list_value();
    for (int32_t t : demo.jump_steps()) {
      steps->add_values()->set_number_value(t);
    }
    fields["optimizer_state"].set_string_value(demo.optimizer_state());
  }
  config->set_run_name(
      absl::StrCat(config->run_name(), TargetRunSuffix(predictor)));
  return config;
}

// The steps to target are decided on validation: the target runs need a
// validation split.
absl::Status CheckTargetValidates(const RunConfig& target) {
  const SplitConfig& split = target.data_config().split();
  if (split.method() == "holdout" && split.val_fraction() <= 0) {
    return ConfigFieldError(
        "pipeline_config.target: data_config.split.val_fraction",
        absl::StrCat("the steps to the plain run's best validation ",
                     "metric need a validation split: hold out a fraction "
                     "in (0, 1) (got ",
                     split.val_fraction(), ")"));
  }
  return absl::OkStatus();
}

absl::Status ValidateDemoConfig(const RunConfig& config) {
  return ParseDemoConfig(config).status();
}

// A test metric from a finished run's metrics.json, or NaN.
double FinalTestMetric(const std::string& run_dir, const std::string& metric) {
  absl::StatusOr<RunMetrics> metrics = ReadRunMetrics(run_dir);
  return metrics.ok() ? metrics->TestMetric(metric) : std::nan("");
}

double MetricOr(const std::map<std::string, double>& metrics,
                const std::string& name) {
  auto it = metrics.find(name);
  return it == metrics.end() ? std::nan("") : it->second;
}

// One run with jumps against its seed's plain run.
struct JumpResult {
  std::string predictor;
  TargetCrossing crossing;  // step -1: never reached the plain run's best
  double test_at_end = std::nan("");
  double speedup_steps = 0;  // 0: not reached
  double speedup_wall = 0;   // every cost counted
  // Without I's record run and training (an I trained once, reused).
  double speedup_wall_reused = 0;
};

struct SeedResult {
  uint64_t seed = 0;
  TargetCrossing plain;  // where the plain run reached its best
  double plain_test_at_end = std::nan("");
  std::vector<JumpResult> jumps;  // in the order of pipeline_config.predictors
};

double GeometricMean(const std::vector<double>& values) {
  double log_sum = 0;
  for (double v : values) {
    if (!(v > 0)) return std::nan("");
    log_sum += std::log(v);
  }
  return values.empty() ? std::nan("") : std::exp(log_sum / values.size());
}

std::string Times(double speedup) {
  return speedup > 0 ? absl::StrFormat("%.2fx", speedup) : "not reached";
}

class DemoPipeline : public Pipeline {
 public:
  DemoPipeline(PipelineContext context, DemoPipelineConfig demo)
      : context_(std::move(context)), demo_(std::move(demo)) {}

  absl::Status Run() override {
    const ChildRunBudget budget = PlanChildRuns(
        demo_.workers(), demo_.threads_per_run(), context_.num_threads);
    workers_ = budget.concurrent;
    threads_ = budget.threads;
    const std::string network = context_.run_dir + "/" + kNetworkFile;
    if (UsesNetwork()) {
      RETURN_IF_ERROR(RecordHistories());
      RETURN_IF_ERROR(TrainNetwork(network));
    } else {
      LOG(INFO) << "[1/3], [2/3] skipped: no predictor of "
                   "pipeline_config.predictors needs the introspection "
                   "network";
    }
    return RunTargets(network);
  }

 private:
  bool UsesNetwork() const {
    return std::find(demo_.predictors().begin(), demo_.predictors().end(),
                     kNetworkPredictor) != demo_.predictors().end();
  }

  // Step 1: the record runs with the recorder, one after the other.
  absl::Status RecordHistories() {
    record_seconds_ = 0;
    for (int index = 0; index < RecordRunCount(demo_); ++index) {
      absl::StatusOr<RunConfig> config =
          RecordConfig(*context_.config, demo_, index);
      if (!config.ok())
        return WithContext(config.status(), context_.config_source);
      if (absl::Status s = context_.registry->CheckConfig(*config); !s.ok()) {
        return WithContext(s, RecordField(index));
      }
      const std::string name = RecordDirName(index);
      const std::string dir = context_.run_dir + "/" + name;
      LOG(INFO) << absl::StrFormat(
          "[1/3] recording weight histories%s: model %s (%s) on %s, t = %s "
          "-> %s",
          RecordRunCount(demo_) > 1
              ? absl::StrFormat(" (%d of %d)", index + 1, RecordRunCount(demo_))
              : "",
          config->model(), config->optim_config().name(),
          config->data_config().dataset(),
          absl::StrJoin(demo_.recorder().t_steps(), ", "), dir);
      ChildPool pool(1);
      // The record run is alone: all the threads the demo has.
      RETURN_IF_ERROR(
          AddRun(pool, name, *config, dir,
                 PlanChildRuns(1, 0, context_.num_threads).threads));
      ProgressBar bar(name + " run (epochs)", config->run_config().epochs());
      pool.Run([&](ChildPool&) {
        bar.Update(static_cast<int64_t>(ReadEpochRecords(dir).size()), "");
      });
      bar.Finish();
      if (pool.interrupted()) {
        return StoppedBySignal(absl::StrCat(
            "during the record run; continue the demo with --resume=",
            context_.run_dir));
      }
      if (pool.status(0).state != ChildState::kSucceeded) {
        return absl::InternalError(absl::StrCat(
            "the record run ", name, " failed (",
            ChildStateName(pool.status(0).state), "); see ", dir, ".out"));
      }
      histories_.push_back(dir + "/" + demo_.recorder().output());
      record_seconds_ += pool.status(0).seconds;
    }
    return absl::OkStatus();
  }

  // Step 2: I, trained here with the top level's optimizer and run_config.
  absl::Status TrainNetwork(const std::string& network) {
    const std::string result_file = context_.run_dir + "/" + kNetworkResultFile;
    if (context_.resuming && fs::exists(network) && fs::exists(result_file)) {
      ASSIGN_OR_RETURN(train_result_, ReadTrainResult(result_file));
      LOG(INFO) << "[2/3] the introspection network was trained before the "
                   "stop: "
                << network;
      return absl::OkStatus();
    }
    // Every record run's rows, in the order of the runs.
    std::vector<HistoryDataset> parts;
    for (const std::string& histories : histories_) {
      ASSIGN_OR_RETURN(HistoryDataset part, LoadHistoryDataset(histories));
      parts.push_back(std::move(part));
    }
    absl::StatusOr<HistoryDataset> dataset = ConcatDatasets(parts);
    const RunConfig& config = *context_.config;
    absl::StatusOr<IntrospectionNetConfig> net_config =
        ParseIntrospectionNetConfig(config);
    if (!net_config.ok()) return net_config.status();
    absl::StatusOr<const ModelEntry*> model_entry =
        context_.registry->FindModel(config.model());
    if (!model_entry.ok()) return model_entry.status();
    torch::manual_seed(config.seed());
    absl::StatusOr<std::unique_ptr<Model>> model =
        (*model_entry)
            ->factory(ModelContext{&config, context_.config_source,
                                   DataSpec{{dataset->inputs.size(1)}, 0}});
    if (!model.ok()) return model.status();
    IntrospectionNet* net = IntrospectionNetOf(**model);
    if (net == nullptr) {
      return ConfigFieldError("model",
                              "pipeline introspective_demo trains "
                              "model introspective");
    }
    absl::StatusOr<const OptimizerEntry*> optimizer_entry =
        context_.registry->FindOptimizer(config.optim_config().name());
    if (!optimizer_entry.ok()) return optimizer_entry.status();
    absl::StatusOr<std::unique_ptr<torch::optim::Optimizer>> optimizer =
        (*optimizer_entry)
            ->factory(OptimizerContext{net->module().parameters(),
                                       &config.optim_config(),
                                       context_.config_source});
    if (!optimizer.ok()) return optimizer.status();
    IntrospectionTrainOptions options;
    options.epochs = config.run_config().epochs();
    options.batch_size = config.run_config().batch_size();
    options.loss = net_config->loss();
    options.val_fraction = net_config->val_fraction();
    options.seed = config.seed();
    LOG(INFO) << absl::StrFormat(
        "[2/3] training the introspection network (4 -> %d -> 1, %s loss, "
        "%s) on %d history rows, %d epochs",
        net->hidden_size(), options.loss, config.optim_config().name(),
        dataset->size(), options.epochs);
    ProgressBar bar("introspection network (epochs)", options.epochs);
    const auto start = std::chrono::steady_clock::now();
    absl::StatusOr<IntrospectionTrainResult> result = TrainIntrospectionNet(
        *dataset, options, **optimizer, net,
        [&](int64_t epoch, double loss, double val_error) {
          bar.Update(epoch + 1,
                     absl::StrFormat("loss %.4f val %.4f", loss, val_error));
        });
    bar.Finish();
    if (!result.ok()) return result.status();
    LOG(INFO) << absl::StrFormat(
        "introspection network: held-out mean |error| of the normalised move "
        "%.4f (predicting no move %.4f, linear extrapolation %.4f); %d rows, "
        "%d steps",
        result->val_error, result->no_move_error, result->linear_error,
        result->train_rows, result->steps);
    train_result_ = *result;
    record_and_training_seconds_ =
        record_seconds_ +
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
            .count();
    RETURN_IF_ERROR(net->Save(network));
    RETURN_IF_ERROR(WriteTrainResult(result_file));
    LOG(INFO) << "introspection network: " << network;
    return absl::OkStatus();
  }

  absl::Status WriteTrainResult(const std::string& path) const {
    google::protobuf::Value root;
    auto& fields = *root.mutable_struct_value()->mutable_fields();
    const IntrospectionTrainResult& r = train_result_;
    fields["train_rows"].set_number_value(r.train_rows);
    fields["val_rows"].set_number_value(r.val_rows);
    fields["steps"].set_number_value(r.steps);
    fields["val_error"].set_number_value(r.val_error);
    fields["no_move_error"].set_number_value(r.no_move_error);
    fields["linear_error"].set_number_value(r.linear_error);
    fields["last_train_loss"].set_number_value(r.last_train_loss);
    // The record run's wall time (this process's part of it, when the demo
    // was resumed during it) and I's training: the cost the jump runs share.
    fields["record_and_training_seconds"].set_number_value(
        record_and_training_seconds_);
    return WriteFileAtomically(path, FormatJson(root));
  }

  absl::StatusOr<IntrospectionTrainResult> ReadTrainResult(
      const std::string& path) {
    ASSIGN_OR_RETURN(google::protobuf::Value root, ReadJsonFile(path));
    const auto& fields = root.struct_value().fields();
    const auto number = [&](const char* key) -> absl::StatusOr<double> {
      auto it = fields.find(key);
      if (it == fields.end() || !it->second.has_number_value()) {
        return absl::DataLossError(
            absl::StrCat(path, ": no number '", key, "'"));
      }
      return it->second.number_value();
    };
    IntrospectionTrainResult r;
    ASSIGN_OR_RETURN(const double train_rows, number("train_rows"));
    ASSIGN_OR_RETURN(const double val_rows, number("val_rows"));
    ASSIGN_OR_RETURN(const double steps, number("steps"));
    r.train_rows = static_cast<int64_t>(train_rows);
    r.val_rows = static_cast<int64_t>(val_rows);
    r.steps = static_cast<int64_t>(steps);
    ASSIGN_OR_RETURN(r.val_error, number("val_error"));
    ASSIGN_OR_RETURN(r.no_move_error, number("no_move_error"));
    ASSIGN_OR_RETURN(r.linear_error, number("linear_error"));
    ASSIGN_OR_RETURN(r.last_train_loss, number("last_train_loss"));
    // Written before the cost was counted: unknown, so not counted.
    record_and_training_seconds_ =
        number("record_and_training_seconds").value_or(0.0);
    return r;
  }

  // Step 3: the target runs, plain and with jumps, every seed.
  absl::Status RunTargets(const std::string& network) {
    const std::string dir = context_.run_dir + "/targets";
    RETURN_IF_ERROR(MakeDirectories(dir));
    ChildPool pool(workers_);
    std::vector<std::string> dirs;
    std::vector<int64_t> epochs;
    int64_t total_epochs = 0;
    // Per seed: the plain run, then one run with jumps per predictor.
    std::vector<std::string> kinds = {""};
    kinds.insert(kinds.end(), demo_.predictors().begin(),
                 demo_.predictors().end());
    for (uint64_t seed : demo_.seeds()) {
      for (const std::string& predictor : kinds) {
        absl::StatusOr<RunConfig> config =
            TargetConfig(demo_, seed, predictor, network);
        if (!config.ok()) return config.status();
        if (absl::Status s = context_.registry->CheckConfig(*config); !s.ok()) {
          return WithContext(s, "pipeline_config.target");
        }
        if (dirs.empty()) {
          LOG(INFO) << absl::StrFormat(
              "[3/3] target runs: model %s on %s, seeds %s, plain and with "
              "jumps at %s (predictors %s), %d at once -> %s",
              config->model(), config->data_config().dataset(),
              absl::StrJoin(demo_.seeds(), ", "),
              absl::StrJoin(demo_.jump_steps(), ", "),
              absl::StrJoin(demo_.predictors(), ", "), workers_, dir);
        }
        const std::string name = TargetRunName(predictor, seed);
        dirs.push_back(dir + "/" + name);
        epochs.push_back(config->run_config().epochs());
        total_epochs += epochs.back();
        RETURN_IF_ERROR(AddRun(pool, name, *config, dirs.back(), threads_));
      }
    }
    // Progress: the epochs finished by all runs, and the latest test metric
    // of each running one.
    ProgressBar bar("target runs (epochs)", total_epochs);
    pool.Run([&](ChildPool& p) {
      int64_t done = 0;
      std::string status;
      for (int i = 0; i < p.size(); ++i) {
        done += std::min<int64_t>(ReadEpochRecords(dirs[i]).size(), epochs[i]);
        std::vector<StepEvalRecord> records = ReadStepEvalRecords(dirs[i]);
        if (p.status(i).state != ChildState::kRunning || records.empty()) {
          continue;
        }
        absl::StrAppendFormat(&status, "%s step %d val %s %.3f; ",
                              p.job(i).name, records.back().step,
                              demo_.metric(),
                              MetricOr(records.back().val, demo_.metric()));
      }
      bar.Update(done, status);
    });
    bar.Finish();
    if (pool.interrupted()) {
      return StoppedBySignal(absl::StrCat(
          "during the target runs; continue the demo with --resume=",
          context_.run_dir));
    }
    for (int i = 0; i < pool.size(); ++i) {
      if (pool.status(i).state != ChildState::kSucceeded) {
        return absl::InternalError(absl::StrCat(
            "target run ", pool.job(i).name, " failed (",
            ChildStateName(pool.status(i).state), "); see ", dirs[i], ".out"));
      }
    }
    return Report(dirs);
  }

  // dirs: per seed, the plain run and then one per predictor.
  absl::Status Report(const std::vector<std::string>& dirs) {
    const std::string& metric = demo_.metric();
    const bool higher = metric != "loss";
    const size_t per_seed = 1 + demo_.predictors_size();
    // I's cost (the record run and its training), shared by the runs with
    // I's jumps: one per seed.
    const double network_cost_per_run =
        record_and_training_seconds_ / demo_.seeds_size();
    std::vector<SeedResult> results;
    for (size_t i = 0; i + per_seed <= dirs.size(); i += per_seed) {
      SeedResult r;
      r.seed = demo_.seeds(static_cast<int>(i / per_seed));
      const std::vector<StepEvalRecord> plain = ReadStepEvalRecords(dirs[i]);
      ASSIGN_OR_RETURN(r.plain, BestValidation(plain, metric, higher));
      if (r.plain.step < 0) {
        return absl::InternalError(absl::StrCat(
            "target run ", dirs[i], " has no validation ", metric,
            " in its evals.jsonl (does its data have a validation split?)"));
      }
      r.plain_test_at_end = FinalTestMetric(dirs[i], metric);
      for (int p = 0; p < demo_.predictors_size(); ++p) {
        const std::string& dir = dirs[i + 1 + p];
        JumpResult jump;
        jump.predictor = demo_.predictors(p);
        jump.crossing = FirstValidationCrossing(ReadStepEvalRecords(dir),
                                                metric, r.plain.value, higher);
        jump.test_at_end = FinalTestMetric(dir, metric);
        if (jump.crossing.step > 0) {
          jump.speedup_steps =
              static_cast<double>(r.plain.step) / jump.crossing.step;
          const double cost =
              jump.crossing.train_seconds +
              (jump.predictor == kNetworkPredictor ? network_cost_per_run : 0);
          jump.speedup_wall = r.plain.train_seconds / cost;
          jump.speedup_wall_reused =
              r.plain.train_seconds / jump.crossing.train_seconds;
        }
        r.jumps.push_back(jump);
      }
      results.push_back(r);
    }
    std::string table = absl::StrFormat(
        "| seed | predictor | plain: best val %s (target) | plain: steps to "
        "it | with jumps: steps to it | speed-up (steps) | speed-up (wall, "
        "every cost) | speed-up (wall, I reused) | test %s at the crossing, "
        "plain / jumps | test %s at the end, plain / jumps "
        "|\n|---|---|---|---|---|---|---|---|---|---|\n",
        metric, metric, metric);
    google::protobuf::Value root;
    auto& fields = *root.mutable_struct_value()->mutable_fields();
    auto* entries = fields["entries"].mutable_list_value();
    std::map<std::string, std::vector<double>> step_speedups, wall_speedups;
    for (const SeedResult& r : results) {
      for (const JumpResult& jump : r.jumps) {
        step_speedups[jump.predictor].push_back(jump.speedup_steps);
        wall_speedups[jump.predictor].push_back(jump.speedup_wall);
        const bool reached = jump.crossing.step > 0;
        absl::StrAppendFormat(
            &table,
            "| %d | %s | %.4f | %d | %s | %s | %s | %s | %.4f / %s | %.4f "
            "/ %.4f |\n",
            r.seed, jump.predictor, r.plain.value, r.plain.step,
            reached ? absl::StrCat(jump.crossing.step) : "not reached",
            Times(jump.speedup_steps), Times(jump.speedup_wall),
            jump.predictor == kNetworkPredictor
                ? Times(jump.speedup_wall_reused)
                : "-",
            r.plain.test,
            reached ? absl::StrFormat("%.4f", jump.crossing.test) : "-",
            r.plain_test_at_end, jump.test_at_end);
        auto& e =
            *entries->add_values()->mutable_struct_value()->mutable_fields();
        e["seed"].set_number_value(r.seed);
        e["predictor"].set_string_value(jump.predictor);
        e["target_val"].set_number_value(r.plain.value);
        e["plain_steps_to_target_val"].set_number_value(r.plain.step);
        e["steps_to_target_val"].set_number_value(jump.crossing.step);
        e["speedup_steps"].set_number_value(jump.speedup_steps);
        e["speedup_wall"].set_number_value(jump.speedup_wall);
        e["speedup_wall_reused_network"].set_number_value(
            jump.speedup_wall_reused);
        e["plain_train_seconds_to_target"].set_number_value(
            r.plain.train_seconds);
        if (reached) {
          e["train_seconds_to_target"].set_number_value(
              jump.crossing.train_seconds);
          e["test_at_crossing"].set_number_value(jump.crossing.test);
        }
        e["plain_test_at_crossing"].set_number_value(r.plain.test);
        e["test_at_end"].set_number_value(jump.test_at_end);
        e["plain_test_at_end"].set_number_value(r.plain_test_at_end);
      }
    }
    std::string summary;
    auto& by_predictor =
        *fields["predictors"].mutable_struct_value()->mutable_fields();
    for (const std::string& predictor : demo_.predictors()) {
      const double steps = GeometricMean(step_speedups[predictor]);
      const double wall = GeometricMean(wall_speedups[predictor]);
      auto& p =
          *by_predictor[predictor].mutable_struct_value()->mutable_fields();
      // 0: some seed's run with jumps never reached the target.
      p["speedup_steps_geometric_mean"].set_number_value(
          std::isfinite(steps) ? steps : 0);
      p["speedup_wall_geometric_mean"].set_number_value(
          std::isfinite(wall) ? wall : 0);
      absl::StrAppendFormat(
          &summary, "%s: %s\n", predictor,
          std::isfinite(steps)
              ? absl::StrFormat("speed-up (geometric mean over %d seeds) "
                                "%.2fx in steps, %.2fx in wall time",
                                results.size(), steps, wall)
              : "the runs with jumps did not reach the target in every seed");
    }
    if (UsesNetwork()) {
      absl::StrAppendFormat(
          &summary,
          "wall time counts the steps, the jumps and, for network, the record "
          "run and I's training (%.1f s) shared by its %d runs\n",
          record_and_training_seconds_, demo_.seeds_size());
    }
    fields["metric"].set_string_value(metric);
    fields["network_cost_seconds"].set_number_value(
        record_and_training_seconds_);
    fields["network_cost_shared_by_runs"].set_number_value(demo_.seeds_size());
    fields["introspection_val_error"].set_number_value(train_result_.val_error);
    fields["no_move_val_error"].set_number_value(train_result_.no_move_error);
    fields["linear_val_error"].set_number_value(train_result_.linear_error);
    LOG(INFO) << "steps to the plain run's best validation " << metric
              << " (evaluated every " << demo_.eval_every_steps()
              << " steps):\n"
              << table << summary;
    RETURN_IF_ERROR(WriteFileAtomically(context_.run_dir + "/results.md",
                                        table + "\n" + summary));
    RETURN_IF_ERROR(WriteFileAtomically(context_.run_dir + "/results.json",
                                        FormatJson(root)));
    PlotTargets(dirs);
    return absl::OkStatus();
  }

  // Plain against jump curves of the test metric, every seed on one chart,
  // the jump steps marked: plots/compare_<metric>.png.
  void PlotTargets(const std::vector<std::string>& dirs) {
    ComparisonPlot plot;
    plot.out_dir = RunFile(context_.run_dir, kPlotsDir);
    plot.run_dirs = dirs;
    plot.metric = demo_.metric();
    plot.mark_steps.assign(demo_.jump_steps().begin(),
                           demo_.jump_steps().end());
    plot.title = "plain against introspection jumps";
    CompareRunsOfPipeline(*context_.config, std::move(plot),
                          "plain against jump curves");
  }

  absl::Status AddRun(ChildPool& pool, const std::string& name,
                      const RunConfig& config, const std::string& dir,
                      int threads) {
    if (!context_.resuming) {
      std::error_code ec;
      fs::remove_all(dir, ec);
    }
    RETURN_IF_ERROR(
        WriteFileAtomically(dir + ".json", RunConfigToJson(config)));
    ChildRun run{name, dir};
    run.config_path = dir + ".json";
    run.threads = threads;
    // Resumed as a whole: each run continues from its checkpoint, starts if
    // it never did, and is left alone if it finished.
    if (context_.resuming) run.resume = "auto";
    ASSIGN_OR_RETURN(ChildJob job, MakeChildRunJob(run, *context_.registry));
    pool.Add(std::move(job));
    return absl::OkStatus();
  }

  PipelineContext context_;
  DemoPipelineConfig demo_;
  int workers_ = 1;
  int threads_ = 1;
  std::vector<std::string> histories_;  // one file per record run
  IntrospectionTrainResult train_result_;
  double record_seconds_ = 0;
  double record_and_training_seconds_ = 0;
};

}  // namespace

TargetCrossing FirstValidationCrossing(
    const std::vector<StepEvalRecord>& records, const std::string& metric,
    double target, bool higher_is_better) {
  for (const StepEvalRecord& record : records) {
    const double value = MetricOr(record.val, metric);
    if (!std::isfinite(value)) continue;
    if (higher_is_better ? value >= target : value <= target) {
      return TargetCrossing{record.step, value, MetricOr(record.test, metric),
                            record.train_seconds};
    }
  }
  return TargetCrossing{};
}

absl::StatusOr<TargetCrossing> BestValidation(
    const std::vector<StepEvalRecord>& records, const std::string& metric,
    bool higher_is_better) {
  bool found = false;
  double best = 0;
  for (const StepEvalRecord& record : records) {
    const double value = MetricOr(record.val, metric);
    if (!std::isfinite(value)) continue;
    if (!found || (higher_is_better ? value > best : value < best))
      best = value;
    found = true;
  }
  if (!found) return TargetCrossing{};
  return FirstValidationCrossing(records, metric, best, higher_is_better);
}

absl::StatusOr<DemoPipelineConfig> ParseDemoConfig(const RunConfig& config) {
  ASSIGN_OR_RETURN(DemoPipelineConfig demo,
                   ParseSection<DemoPipelineConfig>(config.pipeline_config(),
                                                    "pipeline_config"));
  if (config.model() != "introspective") {
    return ConfigFieldError("model",
                            absl::StrCat("pipeline ", kDemoPipelineName,
                                         " trains model introspective (got '",
                                         config.model(), "')"));
  }
  // The recorder exactly as the record run's hook will read it.
  google::protobuf::Struct recorder;
  auto it = config.pipeline_config().fields().find("recorder");
  if (it != config.pipeline_config().fields().end()) {
    recorder = it->second.struct_value();
  }
  absl::StatusOr<RecordHookConfig> parsed =
      ParseRecordHookConfig(recorder, "pipeline_config.recorder");
  if (!parsed.ok()) return parsed.status();
  *demo.mutable_recorder() = *parsed;
  RETURN_IF_ERROR(
      CheckSteps(demo.jump_steps(), "pipeline_config.jump_steps", true));
  for (int i = 0; i < demo.seeds_size(); ++i) {
    for (int j = 0; j < i; ++j) {
      if (demo.seeds(j) == demo.seeds(i)) {
        return ConfigFieldError(
            absl::StrCat("pipeline_config.seeds[", i, "]"),
            absl::StrCat("repeats seed ", demo.seeds(i), " (seeds[", j,
                         "]); each seed's runs go to targets/plain-seedS and "
                         "targets/jump-seedS"));
      }
    }
  }
  RETURN_IF_ERROR(CheckAtLeast("pipeline_config.eval_every_steps",
                               demo.eval_every_steps(), 1));
  RETURN_IF_ERROR(CheckOneOf(
      "pipeline_config.metric", demo.metric(),
      {"loss", "accuracy", "precision", "recall", "f1", "auroc"}, "metric"));
  RETURN_IF_ERROR(CheckAtLeast("pipeline_config.workers", demo.workers(), 0));
  RETURN_IF_ERROR(CheckAtLeast("pipeline_config.threads_per_run",
                               demo.threads_per_run(), 0));
  // Both runs' configs against the core schema (their plugin sections are
  // checked by the registry in MakeDemoPipeline).
  if (demo.predictors().empty()) {
    return ConfigFieldError("pipeline_config.predictors",
                            "list at least one predictor (network, linear)");
  }
  for (int i = 0; i < demo.predictors_size(); ++i) {
    const std::string field =
        absl::StrCat("pipeline_config.predictors[", i, "]");
    RETURN_IF_ERROR(CheckPredictor(demo.predictors(i), field));
    for (int j = 0; j < i; ++j) {
      if (demo.predictors(j) == demo.predictors(i)) {
        return ConfigFieldError(field, absl::StrCat("repeats predictor '",
                                                    demo.predictors(i), "'"));
      }
    }
  }
  for (int index = 0; index < RecordRunCount(demo); ++index) {
    RETURN_IF_ERROR(RecordConfig(config, demo, index).status());
  }
  absl::StatusOr<RunConfig> target = TargetConfig(demo, 1, "", "");
  if (!target.ok()) return target.status();
  RETURN_IF_ERROR(CheckTargetValidates(*target));
  RETURN_IF_ERROR(CheckOptimizerState(demo.optimizer_state(),
                                      target->optim_config().name(),
                                      "pipeline_config.optimizer_state"));
  return demo;
}

absl::StatusOr<std::unique_ptr<Pipeline>> MakeDemoPipeline(
    const PipelineContext& context) {
  absl::StatusOr<DemoPipelineConfig> demo = ParseDemoConfig(*context.config);
  if (!demo.ok()) return WithContext(demo.status(), context.config_source);
  // Every plugin section of the child runs, before anything runs: the
  // record run's (recorder included) and the target runs' (the jump hook's
  // network exists only after phase 2; its other fields were checked above).
  if (context.registry != nullptr) {
    for (int index = 0; index < RecordRunCount(*demo); ++index) {
      absl::StatusOr<RunConfig> record =
          RecordConfig(*context.config, *demo, index);
      if (!record.ok())
        return WithContext(record.status(), context.config_source);
      if (absl::Status s = context.registry->CheckConfig(*record); !s.ok()) {
        return WithContext(
            s, absl::StrCat(context.config_source, ": ", RecordField(index)));
      }
    }
    for (uint64_t seed : demo->seeds()) {
      absl::StatusOr<RunConfig> target = TargetConfig(*demo, seed, "", "");
      if (!target.ok()) {
        return WithContext(target.status(), context.config_source);
      }
      if (absl::Status s = context.registry->CheckConfig(*target); !s.ok()) {
        return WithContext(
            s, absl::StrCat(context.config_source, ": pipeline_config.target"));
      }
    }
  }
  return std::make_unique<DemoPipeline>(context, *std::move(demo));
}

OUROBOROS_REGISTER_PIPELINE(
    kDemoPipelineName,
    "Introspection demo: record weight histories, train the introspection "
    "network, then train another model plain and with jumps (I's, or the "
    "linear baseline's); steps to the plain run's best validation accuracy",
    MakeDemoPipeline, ValidateDemoConfig,
    SectionDefaultsOf<DemoPipelineConfig>());

}  // namespace ouroboros::introspective
