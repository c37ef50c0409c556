#include "plugins/srwm/episodes.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "ouroboros/idx.h"

namespace ouroboros::srwm {
namespace {

// float [0, 1] images (N x 1 x rows x cols) -> uint8 N x rows x cols; the
// datasets are bytes, so this is exact and takes 4x less memory.
at::Tensor ToBytes(const at::Tensor& images) {
  return (images.squeeze(1) * 255).round().clamp(0, 255).to(at::kByte);
}

}  // namespace

ClassPool RotatedClassPool(const Dataset& data, int rotations,
                           const std::string& name_prefix,
                           const std::vector<int64_t>& keep) {
  ClassPool pool;
  pool.images = ToBytes(data.inputs);
  const int64_t num_labels = data.spec.num_classes;
  std::vector<std::vector<int64_t>> rows_of_label(num_labels);
  at::Tensor targets = data.targets.contiguous();
  const int64_t* label = targets.data_ptr<int64_t>();
  for (int64_t i = 0; i < targets.numel(); ++i) {
    rows_of_label[label[i]].push_back(i);
  }
  for (int64_t l = 0; l < num_labels; ++l) {
    for (int turns = 0; turns < rotations; ++turns) {
      const int64_t id = l * rotations + turns;
      if (!keep.empty() &&
          std::find(keep.begin(), keep.end(), id) == keep.end())
        continue;
      pool.classes.push_back(ClassPool::Class{
          id, absl::StrCat(name_prefix, " ", l, " @", 90 * turns), turns,
          rows_of_label[l]});
    }
  }
  return pool;
}

absl::StatusOr<MetaSplit> LoadRotatedFashionSplit(const std::string& dir,
                                                  int rotations,
                                                  int val_classes,
                                                  int test_classes,
                                                  uint64_t seed) {
  absl::StatusOr<Dataset> train = ReadIdxImagesAndLabels(
      dir + "/train-images-idx3-ubyte.gz", dir + "/train-labels-idx1-ubyte.gz");
  if (!train.ok()) return train.status();
  absl::StatusOr<Dataset> test = ReadIdxImagesAndLabels(
      dir + "/t10k-images-idx3-ubyte.gz", dir + "/t10k-labels-idx1-ubyte.gz");
  if (!test.ok()) return test.status();
  const int64_t num_classes = train->spec.num_classes * rotations;
  if (val_classes + test_classes >= num_classes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "meta-validation + meta-test classes (", val_classes + test_classes,
        ") leave no meta-training class out of ", num_classes));
  }
  std::vector<int64_t> ids(num_classes);
  std::iota(ids.begin(), ids.end(), 0);
  std::mt19937_64 rng(seed);
  std::shuffle(ids.begin(), ids.end(), rng);
  std::vector<int64_t> val_ids(ids.begin(), ids.begin() + val_classes);
  std::vector<int64_t> test_ids(ids.begin() + val_classes,
                                ids.begin() + val_classes + test_classes);
  std::vector<int64_t> train_ids(ids.begin() + val_classes + test_classes,
                                 ids.end());
  MetaSplit split;
  split.train = RotatedClassPool(*train, rotations, "fashion", train_ids);
  split.val = RotatedClassPool(*test, rotations, "fashion", val_ids);
  split.test = RotatedClassPool(*test, rotations, "fashion", test_ids);
  return split;
}

absl::StatusOr<ClassPool> LoadMnistDigitPool(const std::string& dir) {
  absl::StatusOr<Dataset> digits = ReadMnistDigits(dir);
  if (!digits.ok()) return digits.status();
  // Ids after the Fashion ones (< 1000), so pools never share an id.
  ClassPool pool = RotatedClassPool(*digits, 1, "digit");
  for (ClassPool::Class& c : pool.classes) c.id += 1000;
  return pool;
}

ClassPool SyntheticClassPool(int num_classes, int images_per_class,
                             int image_side, double noise, uint64_t seed,
                             int64_t first_id) {
  at::Generator generator = at::detail::createCPUGenerator(seed);
  at::Tensor prototypes =
      at::rand({num_classes, 1, image_side, image_side}, generator);
  at::Tensor images = (prototypes.repeat_interleave(images_per_class, 0) +
                       noise * at::randn({num_classes * images_per_class, 1,
                                          image_side, image_side},
                                         generator))
                          .clamp(0, 1);
  Dataset data;
  data.inputs = images;
  data.targets =
      at::arange(num_classes, at::kLong).repeat_interleave(images_per_class);
  data.spec = DataSpec{{1, image_side, image_side}, num_classes};
  ClassPool pool = RotatedClassPool(data, 1, "synthetic");
  for (ClassPool::Class& c : pool.classes) c.id += first_id;
  return pool;
}

EpisodeSampler::EpisodeSampler(const ClassPool* pool, int ways, int shots,
                               int queries_per_class)
    : pool_(pool), ways_(ways), shots_(shots), queries_(queries_per_class) {}

absl::Status EpisodeSampler::CheckPool() const {
  if (static_cast<int64_t>(pool_->classes.size()) < ways_) {
    return absl::InvalidArgumentError(
        absl::StrCat(ways_, "-way episodes need ", ways_,
                     " classes; the pool has ", pool_->classes.size()));
  }
  for (const ClassPool::Class& c : pool_->classes) {
    if (static_cast<int64_t>(c.rows.size()) < shots_ + queries_) {
      return absl::InvalidArgumentError(
          absl::StrCat("class ", c.name, " has ", c.rows.size(),
                       " images; episodes need ", shots_ + queries_));
    }
  }
  return absl::OkStatus();
}

EpisodeBatch EpisodeSampler::Sample(int64_t batch_size,
                                    std::mt19937_64& rng) const {
  const int64_t steps = this->steps();
  const int64_t support_steps = int64_t{ways_} * shots_;
  std::vector<int64_t> image_rows(batch_size * steps);
  std::vector<int64_t> turns(batch_size * steps);
  std::vector<int64_t> labels(batch_size * steps), ids(batch_size * steps);
  std::vector<int64_t> classes(pool_->classes.size());
  std::iota(classes.begin(), classes.end(), 0);
  for (int64_t b = 0; b < batch_size; ++b) {
    // N distinct classes; their order is the episode's label assignment.
    for (int i = 0; i < ways_; ++i) {
      std::uniform_int_distribution<int64_t> pick(i, classes.size() - 1);
      std::swap(classes[i], classes[pick(rng)]);
    }
    // (label, image) for every support step, then every query step.
    std::vector<std::pair<int, int64_t>> support, query;
    for (int label = 0; label < ways_; ++label) {
      const ClassPool::Class& c = pool_->classes[classes[label]];
      std::vector<int64_t> rows = c.rows;
      for (int i = 0; i < shots_ + queries_; ++i) {
        std::uniform_int_distribution<int64_t> pick(i, rows.size() - 1);
        std::swap(rows[i], rows[pick(rng)]);
        (i < shots_ ? support : query).emplace_back(label, rows[i]);
      }
    }
    std::shuffle(support.begin(), support.end(), rng);
    std::shuffle(query.begin(), query.end(), rng);
    support.insert(support.end(), query.begin(), query.end());
    for (int64_t t = 0; t < steps; ++t) {
      const int64_t at = b * steps + t;
      const ClassPool::Class& c = pool_->classes[classes[support[t].first]];
      labels[at] = support[t].first;
      image_rows[at] = support[t].second;
      turns[at] = c.quarter_turns;
      ids[at] = c.id;
    }
  }
  at::Tensor images = pool_->images.index_select(
      0, at::tensor(image_rows, at::kLong));  // (B*T) x rows x cols, uint8
  // Turn each image by its class's quarter turns.
  at::Tensor turns_tensor = at::tensor(turns, at::kLong);
  for (int k = 1; k < 4; ++k) {
    at::Tensor where = (turns_tensor == k).nonzero().squeeze(1);
    if (where.numel() == 0) continue;
    images.index_copy_(0, where,
                       at::rot90(images.index_select(0, where), k, {1, 2}));
  }
  EpisodeBatch batch;
  batch.images =
      images.to(at::kFloat)
          .div_(255)
          .view({batch_size, steps, 1, images.size(1), images.size(2)});
  batch.labels = at::tensor(labels, at::kLong).view({batch_size, steps});
  batch.class_ids = at::tensor(ids, at::kLong).view({batch_size, steps});
  batch.is_query = (at::arange(steps, at::kLong) >= support_steps)
                       .unsqueeze(0)
                       .expand({batch_size, steps})
                       .contiguous();
  return batch;
}

at::Tensor PackEpisodeInputs(const EpisodeBatch& batch, int ways) {
  const int64_t batch_size = batch.labels.size(0), steps = batch.labels.size(1);
  at::Tensor previous = at::zeros({batch_size, steps, ways});
  if (steps > 1) {
    at::Tensor one_hot =
        at::one_hot(batch.labels.narrow(1, 0, steps - 1), ways).to(at::kFloat);
    // Only support labels are ever given (see episodes.h).
    at::Tensor given = batch.is_query.narrow(1, 0, steps - 1)
                           .logical_not()
                           .unsqueeze(-1)
                           .to(at::kFloat);
    previous.narrow(1, 1, steps - 1).copy_(one_hot * given);
  }
  return at::cat({batch.images.flatten(2), previous}, -1);
}

}  // namespace ouroboros::srwm
