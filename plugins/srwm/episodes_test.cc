#include "plugins/srwm/episodes.h"

#include <ATen/ATen.h>

#include <set>

#include "gtest/gtest.h"
#include "ouroboros/data.h"

namespace ouroboros::srwm {
namespace {

std::set<int64_t> Ids(const ClassPool& pool) {
  std::set<int64_t> ids;
  for (const ClassPool::Class& c : pool.classes) ids.insert(c.id);
  return ids;
}

// A labelled dataset whose image i is filled with the value i / n, so every
// sampled image tells which base image it was.
Dataset NumberedImages(int64_t n, int64_t num_labels) {
  Dataset data;
  data.inputs = (at::arange(n, at::kFloat) / 255)
                    .view({n, 1, 1, 1})
                    .expand({n, 1, 4, 4})
                    .contiguous();
  data.targets = at::arange(n, at::kLong) % num_labels;
  data.spec = DataSpec{{1, 4, 4}, num_labels};
  return data;
}

TEST(EpisodesTest, RotatedPoolMakesOneClassPerLabelAndTurn) {
  ClassPool pool = RotatedClassPool(NumberedImages(40, 5), 4, "n");
  ASSERT_EQ(pool.classes.size(), 20u);
  for (const ClassPool::Class& c : pool.classes) {
    EXPECT_EQ(c.rows.size(), 8u);
    EXPECT_EQ(c.quarter_turns, c.id % 4);
    for (int64_t row : c.rows) EXPECT_EQ(row % 5, c.id / 4);
  }
  ClassPool kept = RotatedClassPool(NumberedImages(40, 5), 4, "n", {3, 17});
  EXPECT_EQ(Ids(kept), (std::set<int64_t>{3, 17}));
}

TEST(EpisodesTest, EpisodesHaveTheAdvertisedStructure) {
  ClassPool pool = SyntheticClassPool(7, 12, 16, 0.1, 3, 0);
  EpisodeSampler sampler(&pool, /*ways=*/4, /*shots=*/2,
                         /*queries_per_class=*/3);
  ASSERT_TRUE(sampler.CheckPool().ok());
  std::mt19937_64 rng(5);
  EpisodeBatch batch = sampler.Sample(6, rng);
  const int64_t steps = 4 * (2 + 3);
  EXPECT_EQ(sampler.steps(), steps);
  EXPECT_EQ(batch.images.sizes(), (at::IntArrayRef{6, steps, 1, 16, 16}));
  for (int64_t b = 0; b < 6; ++b) {
    std::map<int64_t, int64_t> class_of_label;
    std::map<int64_t, int> support_count, query_count;
    for (int64_t t = 0; t < steps; ++t) {
      const int64_t label = batch.labels[b][t].item<int64_t>();
      const int64_t id = batch.class_ids[b][t].item<int64_t>();
      ASSERT_TRUE(label >= 0 && label < 4);
      // One class per label within an episode, and distinct labels.
      auto [it, inserted] = class_of_label.emplace(label, id);
      EXPECT_EQ(it->second, id);
      const bool query = batch.is_query[b][t].item<bool>();
      EXPECT_EQ(query, t >= 4 * 2);
      (query ? query_count : support_count)[label]++;
    }
    EXPECT_EQ(class_of_label.size(), 4u);
    std::set<int64_t> ids;
    for (const auto& [label, id] : class_of_label) ids.insert(id);
    EXPECT_EQ(ids.size(), 4u);
    for (int label = 0; label < 4; ++label) {
      EXPECT_EQ(support_count[label], 2);
      EXPECT_EQ(query_count[label], 3);
    }
  }
}

TEST(EpisodesTest, ImagesAreTurnedByTheirClass) {
  // One base image with a bright top-left pixel; class 1 is it turned by 90
  // degrees counter-clockwise (pixel moves to the bottom-left).
  Dataset data;
  data.inputs = at::zeros({2, 1, 4, 4});
  data.inputs.index_put_({at::indexing::Slice(), 0, 0, 0}, 1.0);
  data.targets = at::zeros({2}, at::kLong);
  data.spec = DataSpec{{1, 4, 4}, 1};
  ClassPool pool = RotatedClassPool(data, 2, "x");
  EpisodeSampler sampler(&pool, 2, 1, 1);
  std::mt19937_64 rng(1);
  EpisodeBatch batch = sampler.Sample(4, rng);
  for (int64_t b = 0; b < 4; ++b) {
    for (int64_t t = 0; t < sampler.steps(); ++t) {
      at::Tensor image = batch.images[b][t][0];
      const bool turned = batch.class_ids[b][t].item<int64_t>() == 1;
      EXPECT_EQ(image[turned ? 3 : 0][0].item<float>(), 1.0f);
      EXPECT_EQ(image.sum().item<float>(), 1.0f);
    }
  }
}

TEST(EpisodesTest, PackedInputsGiveOnlySupportLabelsOfThePreviousStep) {
  ClassPool pool = SyntheticClassPool(5, 6, 16, 0.1, 1, 0);
  EpisodeSampler sampler(&pool, 3, 2, 2);
  std::mt19937_64 rng(2);
  EpisodeBatch batch = sampler.Sample(2, rng);
  at::Tensor inputs = PackEpisodeInputs(batch, 3);
  const int64_t pixels = 16 * 16, steps = sampler.steps(), support = 6;
  ASSERT_EQ(inputs.sizes(), (at::IntArrayRef{2, steps, pixels + 3}));
  EXPECT_TRUE(at::equal(inputs.narrow(-1, 0, pixels), batch.images.flatten(2)));
  at::Tensor label_input = inputs.narrow(-1, pixels, 3);
  for (int64_t b = 0; b < 2; ++b) {
    EXPECT_EQ(label_input[b][0].sum().item<float>(), 0.0f);
    for (int64_t t = 1; t < steps; ++t) {
      if (t - 1 < support) {
        EXPECT_EQ(label_input[b][t].argmax().item<int64_t>(),
                  batch.labels[b][t - 1].item<int64_t>());
        EXPECT_EQ(label_input[b][t].sum().item<float>(), 1.0f);
      } else {
        EXPECT_EQ(label_input[b][t].sum().item<float>(), 0.0f) << t;
      }
    }
  }
}

TEST(EpisodesTest, FashionSplitNeverLeaksMetaTestClassesIntoTraining) {
  absl::StatusOr<MetaSplit> split =
      LoadRotatedFashionSplit(kFashionMnistDir, 4, 8, 8, /*seed=*/3);
  ASSERT_TRUE(split.ok()) << split.status();
  std::set<int64_t> train = Ids(split->train), val = Ids(split->val),
                    test = Ids(split->test);
  EXPECT_EQ(train.size(), 24u);
  EXPECT_EQ(val.size(), 8u);
  EXPECT_EQ(test.size(), 8u);
  std::set<int64_t> all(train);
  all.insert(val.begin(), val.end());
  all.insert(test.begin(), test.end());
  EXPECT_EQ(all.size(), 40u);  // disjoint
  // Meta-train images come from the training file, the others from t10k.
  EXPECT_EQ(split->train.images.size(0), 60000);
  EXPECT_EQ(split->test.images.size(0), 10000);
  // Many sampled training episodes only ever show meta-train classes.
  EpisodeSampler sampler(&split->train, 5, 5, 1);
  std::mt19937_64 rng(4);
  for (int i = 0; i < 20; ++i) {
    at::Tensor ids = sampler.Sample(16, rng).class_ids.flatten();
    for (int64_t j = 0; j < ids.numel(); ++j) {
      ASSERT_TRUE(train.count(ids[j].item<int64_t>()));
    }
  }
  // Another seed gives another split; the same seed the same one.
  absl::StatusOr<MetaSplit> again =
      LoadRotatedFashionSplit(kFashionMnistDir, 4, 8, 8, /*seed=*/3);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(Ids(again->test), test);
}

TEST(EpisodesTest, CheckPoolRefusesTooFewClassesOrImages) {
  ClassPool pool = SyntheticClassPool(3, 4, 16, 0.1, 1, 0);
  EXPECT_FALSE(EpisodeSampler(&pool, 5, 1, 1).CheckPool().ok());
  EXPECT_FALSE(EpisodeSampler(&pool, 3, 4, 1).CheckPool().ok());
  EXPECT_TRUE(EpisodeSampler(&pool, 3, 3, 1).CheckPool().ok());
}

}  // namespace
}  // namespace ouroboros::srwm
