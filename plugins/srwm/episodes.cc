#include "plugins/srwm/episodes.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "ouroboros/api/idx.h"
#include "ouroboros/base/status_macros.h"

namespace ouroboros::srwm {
namespace {

// float [0, 1] images (N x 1 x rows x cols) -> uint8 N x rows x cols; the
// datasets are bytes, so this is exact and takes 4x less memory.
at::Tensor ToBytes(const at::Tensor& images) {
  if (images.scalar_type() == at::kByte) return images.squeeze(1);
  return (images.squeeze(1) * 255).round().clamp(0, 255).to(at::kByte);
}

// Float images in [0, 1], (B*T) x rows x cols: step i shows image rows[i]
// of pools[pool_of_step[i]], turned by turns[i] quarter turns.
at::Tensor GatherTurnedImages(const std::vector<const ClassPool*>& pools,
                              const std::vector<int>& pool_of_step,
                              const std::vector<int64_t>& rows,
                              const std::vector<int64_t>& turns) {
  at::Tensor images;
  if (pools.size() == 1) {
    images = pools[0]->images.index_select(0, at::tensor(rows, at::kLong));
  } else {
    const at::Tensor& like = pools[0]->images;
    images = at::empty(
        {static_cast<int64_t>(rows.size()), like.size(1), like.size(2)},
        like.options());
    for (size_t p = 0; p < pools.size(); ++p) {
      std::vector<int64_t> steps, pool_rows;
      for (size_t i = 0; i < rows.size(); ++i) {
        if (pool_of_step[i] != static_cast<int>(p)) continue;
        steps.push_back(static_cast<int64_t>(i));
        pool_rows.push_back(rows[i]);
      }
      if (steps.empty()) continue;
      images.index_copy_(
          0, at::tensor(steps, at::kLong),
          pools[p]->images.index_select(0, at::tensor(pool_rows, at::kLong)));
    }
  }
  // Turn each image by its class's quarter turns.
  at::Tensor turns_tensor = at::tensor(turns, at::kLong);
  for (int k = 1; k < 4; ++k) {
    at::Tensor where = (turns_tensor == k).nonzero().squeeze(1);
    if (where.numel() == 0) continue;
    images.index_copy_(0, where,
                       at::rot90(images.index_select(0, where), k, {1, 2}));
  }
  return ImagesToUnitFloat(images);
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

absl::StatusOr<MetaSplit> SplitRotatedClasses(const Dataset& train_images,
                                              const Dataset& eval_images,
                                              int rotations, int val_classes,
                                              int test_classes, uint64_t seed,
                                              const std::string& name_prefix,
                                              int64_t first_id) {
  const int64_t num_classes = train_images.spec.num_classes * rotations;
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
  split.train =
      RotatedClassPool(train_images, rotations, name_prefix, train_ids);
  split.val = RotatedClassPool(eval_images, rotations, name_prefix, val_ids);
  split.test = RotatedClassPool(eval_images, rotations, name_prefix, test_ids);
  for (ClassPool* pool : {&split.train, &split.val, &split.test}) {
    for (ClassPool::Class& c : pool->classes) c.id += first_id;
  }
  return split;
}

absl::StatusOr<MetaSplit> LoadRotatedFashionSplit(const std::string& dir,
                                                  int rotations,
                                                  int val_classes,
                                                  int test_classes,
                                                  uint64_t seed) {
  // As stored, bytes: the class pools keep bytes (ToBytes).
  absl::StatusOr<Dataset> train = ReadIdxImagesAndLabelsAsBytes(
      dir + "/train-images-idx3-ubyte.gz", dir + "/train-labels-idx1-ubyte.gz");
  if (!train.ok()) return train.status();
  absl::StatusOr<Dataset> test = ReadIdxImagesAndLabelsAsBytes(
      dir + "/t10k-images-idx3-ubyte.gz", dir + "/t10k-labels-idx1-ubyte.gz");
  if (!test.ok()) return test.status();
  return SplitRotatedClasses(*train, *test, rotations, val_classes,
                             test_classes, seed, "fashion", 0);
}

absl::StatusOr<MetaSplit> LoadRotatedDigitSplit(const std::string& dir,
                                                int rotations, int val_classes,
                                                int test_classes,
                                                uint64_t seed) {
  absl::StatusOr<Dataset> digits = ReadMnistDigits(dir);
  if (!digits.ok()) return digits.status();
  Dataset halves[2];
  for (int parity : {0, 1}) {
    at::Tensor rows = at::arange(parity, digits->size(), 2, at::kLong);
    halves[parity].inputs = digits->inputs.index_select(0, rows);
    halves[parity].targets = digits->targets.index_select(0, rows);
    halves[parity].spec = digits->spec;
  }
  return SplitRotatedClasses(halves[0], halves[1], rotations, val_classes,
                             test_classes, seed, "digit", 1000);
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
  EpisodeBatch batch;
  batch.images =
      GatherTurnedImages({pool_}, std::vector<int>(image_rows.size()),
                         image_rows, turns)
          .view({batch_size, steps, 1, pool_->images.size(1),
                 pool_->images.size(2)});
  batch.labels = at::tensor(labels, at::kLong).view({batch_size, steps});
  batch.class_ids = at::tensor(ids, at::kLong).view({batch_size, steps});
  batch.is_query = (at::arange(steps, at::kLong) >= support_steps)
                       .unsqueeze(0)
                       .expand({batch_size, steps})
                       .contiguous();
  batch.label_shown = batch.is_query.logical_not();
  return batch;
}

StreamSampler::StreamSampler(const ClassPool* first, const ClassPool* second,
                             int ways, int64_t length, int64_t switch_at,
                             int64_t switch_jitter)
    : pools_{first, second},
      ways_(ways),
      length_(length),
      switch_at_(switch_at),
      switch_jitter_(switch_jitter) {}

int64_t StreamSampler::LongestSegment() const {
  return std::max(switch_at_ + switch_jitter_,
                  length_ - (switch_at_ - switch_jitter_));
}

absl::Status StreamSampler::CheckPools() const {
  const int64_t per_class = (LongestSegment() + ways_ - 1) / ways_;
  for (const ClassPool* pool : pools_) {
    RETURN_IF_ERROR(EpisodeSampler(pool, ways_, static_cast<int>(per_class), 0)
                        .CheckPool());
  }
  return absl::OkStatus();
}

EpisodeBatch StreamSampler::Sample(const std::vector<int>& directions,
                                   std::mt19937_64& rng) const {
  const int64_t batch_size = directions.size(), steps = length_;
  std::vector<int64_t> image_rows(batch_size * steps),
      turns(batch_size * steps);
  std::vector<int64_t> labels(batch_size * steps), ids(batch_size * steps);
  std::vector<int> pool_of_step(batch_size * steps);
  std::vector<int64_t> switches(batch_size), direction(batch_size);
  for (int64_t b = 0; b < batch_size; ++b) {
    std::uniform_int_distribution<int64_t> jitter(-switch_jitter_,
                                                  switch_jitter_);
    const int64_t switch_at = switch_at_ + jitter(rng);
    switches[b] = switch_at;
    direction[b] = directions[b];
    for (int segment = 0; segment < 2; ++segment) {
      const int pool_index = segment == directions[b] ? 0 : 1;
      const ClassPool& pool = *pools_[pool_index];
      const int64_t begin = segment == 0 ? 0 : switch_at;
      const int64_t end = segment == 0 ? switch_at : steps;
      // N distinct classes; their order is the segment's label assignment.
      std::vector<int64_t> classes(pool.classes.size());
      std::iota(classes.begin(), classes.end(), 0);
      for (int i = 0; i < ways_; ++i) {
        std::uniform_int_distribution<int64_t> pick(i, classes.size() - 1);
        std::swap(classes[i], classes[pick(rng)]);
      }
      // Each label equally often (+-1), in shuffled order.
      std::vector<int> segment_labels(end - begin);
      for (size_t i = 0; i < segment_labels.size(); ++i) {
        segment_labels[i] = static_cast<int>(i % ways_);
      }
      std::shuffle(segment_labels.begin(), segment_labels.end(), rng);
      // Distinct images of each class, drawn in order of appearance.
      std::vector<std::vector<int64_t>> rows(ways_);
      std::vector<size_t> used(ways_, 0);
      for (int label = 0; label < ways_; ++label) {
        rows[label] = pool.classes[classes[label]].rows;
      }
      for (int64_t t = begin; t < end; ++t) {
        const int label = segment_labels[t - begin];
        std::vector<int64_t>& class_rows = rows[label];
        const size_t i = used[label]++;
        std::uniform_int_distribution<size_t> pick(i, class_rows.size() - 1);
        std::swap(class_rows[i], class_rows[pick(rng)]);
        const ClassPool::Class& c = pool.classes[classes[label]];
        const int64_t at = b * steps + t;
        labels[at] = label;
        image_rows[at] = class_rows[i];
        turns[at] = c.quarter_turns;
        ids[at] = c.id;
        pool_of_step[at] = pool_index;
      }
    }
  }
  const ClassPool& first = *pools_[0];
  EpisodeBatch batch;
  batch.images = GatherTurnedImages({pools_[0], pools_[1]}, pool_of_step,
                                    image_rows, turns)
                     .view({batch_size, steps, 1, first.images.size(1),
                            first.images.size(2)});
  batch.labels = at::tensor(labels, at::kLong).view({batch_size, steps});
  batch.class_ids = at::tensor(ids, at::kLong).view({batch_size, steps});
  batch.is_query = at::ones({batch_size, steps}, at::kBool);
  batch.label_shown = at::ones({batch_size, steps}, at::kBool);
  batch.switch_at = at::tensor(switches, at::kLong);
  batch.direction = at::tensor(direction, at::kLong);
  return batch;
}

at::Tensor PackEpisodeInputs(const EpisodeBatch& batch, int ways) {
  const int64_t batch_size = batch.labels.size(0), steps = batch.labels.size(1);
  at::Tensor previous = at::zeros({batch_size, steps, ways});
  if (steps > 1) {
    at::Tensor one_hot =
        at::one_hot(batch.labels.narrow(1, 0, steps - 1), ways).to(at::kFloat);
    at::Tensor given =
        batch.label_shown.narrow(1, 0, steps - 1).unsqueeze(-1).to(at::kFloat);
    previous.narrow(1, 1, steps - 1).copy_(one_hot * given);
  }
  return at::cat({batch.images.flatten(2), previous}, -1);
}

}  // namespace ouroboros::srwm
