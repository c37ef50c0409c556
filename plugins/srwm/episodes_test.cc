#include "plugins/srwm/episodes.h"

#include <ATen/ATen.h>

#include <map>
#include <set>
#include <vector>

#include "gtest/gtest.h"
#include "ouroboros/api/data.h"
#include "plugins/srwm/episode_source.h"

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

// Two synthetic domains (ids from 0 and from 100), 3-way streams of 20
// steps that switch at 8 +- 2.
struct TwoDomains {
  ClassPool first = SyntheticClassPool(5, 12, 16, 0.1, 1, 0);
  ClassPool second = SyntheticClassPool(4, 12, 16, 0.1, 2, 100);
  StreamSampler sampler{&first,          &second,
                        /*ways=*/3,      /*length=*/20,
                        /*switch_at=*/8, /*switch_jitter=*/2};
};

TEST(StreamsTest, AStreamSwitchesDomainOnceWithNewClassesAndLabels) {
  TwoDomains domains;
  ASSERT_TRUE(domains.sampler.CheckPools().ok());
  const std::vector<int> directions = {0, 1, 0, 1, 1, 0};
  std::mt19937_64 rng(7);
  EpisodeBatch batch = domains.sampler.Sample(directions, rng);
  ASSERT_EQ(batch.images.sizes(), (at::IntArrayRef{6, 20, 1, 16, 16}));
  EXPECT_TRUE(batch.is_query.all().item<bool>());
  EXPECT_TRUE(batch.label_shown.all().item<bool>());
  std::set<int64_t> switches;
  for (int64_t b = 0; b < 6; ++b) {
    EXPECT_EQ(batch.direction[b].item<int64_t>(), directions[b]);
    const int64_t switch_at = batch.switch_at[b].item<int64_t>();
    switches.insert(switch_at);
    ASSERT_TRUE(switch_at >= 6 && switch_at <= 10) << switch_at;
    for (int segment = 0; segment < 2; ++segment) {
      const int64_t begin = segment == 0 ? 0 : switch_at;
      const int64_t end = segment == 0 ? switch_at : 20;
      // Direction 0 starts in the first domain (ids < 100).
      const bool from_second = (segment == 0) == (directions[b] == 1);
      std::map<int64_t, int64_t> class_of_label;
      std::map<int64_t, int> count;
      for (int64_t t = begin; t < end; ++t) {
        const int64_t label = batch.labels[b][t].item<int64_t>();
        const int64_t id = batch.class_ids[b][t].item<int64_t>();
        ASSERT_TRUE(label >= 0 && label < 3);
        EXPECT_EQ(id >= 100, from_second) << "stream " << b << " step " << t;
        auto [it, inserted] = class_of_label.emplace(label, id);
        EXPECT_EQ(it->second, id);  // one class per label in a segment
        ++count[label];
      }
      std::set<int64_t> ids;
      for (const auto& [label, id] : class_of_label) ids.insert(id);
      EXPECT_EQ(ids.size(), class_of_label.size());  // distinct classes
      // Each label equally often, +-1.
      const int64_t length = end - begin;
      for (int label = 0; label < 3; ++label) {
        EXPECT_GE(count[label], length / 3);
        EXPECT_LE(count[label], (length + 2) / 3);
      }
    }
  }
  EXPECT_GT(switches.size(), 1u);  // the jitter moves the switch
  // The seed fixes the streams.
  std::mt19937_64 same(7), other(8);
  EpisodeBatch again = domains.sampler.Sample(directions, same);
  EXPECT_TRUE(at::equal(again.images, batch.images));
  EXPECT_TRUE(at::equal(again.labels, batch.labels));
  EXPECT_TRUE(at::equal(again.switch_at, batch.switch_at));
  EXPECT_FALSE(at::equal(domains.sampler.Sample(directions, other).class_ids,
                         batch.class_ids));
}

TEST(StreamsTest, TheDelayedLabelCrossesTheSwitch) {
  TwoDomains domains;
  std::mt19937_64 rng(3);
  EpisodeBatch batch = domains.sampler.Sample({0, 1}, rng);
  at::Tensor inputs = PackEpisodeInputs(batch, 3);
  at::Tensor label_input = inputs.narrow(-1, 16 * 16, 3);
  for (int64_t b = 0; b < 2; ++b) {
    EXPECT_EQ(label_input[b][0].sum().item<float>(), 0.0f);
    for (int64_t t = 1; t < 20; ++t) {
      EXPECT_EQ(label_input[b][t].sum().item<float>(), 1.0f);
      EXPECT_EQ(label_input[b][t].argmax().item<int64_t>(),
                batch.labels[b][t - 1].item<int64_t>());
    }
    // The first step of the second domain shows the first domain's last
    // label: no reset at the switch.
    const int64_t switch_at = batch.switch_at[b].item<int64_t>();
    EXPECT_EQ(label_input[b][switch_at].argmax().item<int64_t>(),
              batch.labels[b][switch_at - 1].item<int64_t>());
  }
}

TEST(StreamsTest, CheckPoolsRefusesADomainWithTooFewClassesOrImages) {
  ClassPool three = SyntheticClassPool(3, 12, 16, 0.1, 1, 0);
  ClassPool five = SyntheticClassPool(5, 12, 16, 0.1, 2, 100);
  EXPECT_FALSE(StreamSampler(&five, &three, 4, 20, 10, 0).CheckPools().ok());
  EXPECT_TRUE(StreamSampler(&five, &three, 3, 20, 10, 0).CheckPools().ok());
  // 3 ways over a segment of up to 40 steps: 14 images of a class.
  EXPECT_FALSE(StreamSampler(&five, &three, 3, 50, 10, 0).CheckPools().ok());
}

TEST(StreamsTest, SwitchCurvesAgreeWithCountingByHand) {
  // 3 streams x 6 steps; stream 0 and 1 go one way, stream 2 the other.
  at::Tensor correct = at::tensor({1, 0, 1, 1, 0, 1,  //
                                   0, 0, 1, 0, 1, 1,  //
                                   1, 1, 0, 0, 0, 1},
                                  at::kFloat)
                           .view({3, 6});
  at::Tensor switch_at = at::tensor({2, 3, 4}, at::kLong);
  at::Tensor direction = at::tensor({0, 0, 1}, at::kLong);
  std::map<int, SwitchCurve> curves =
      SwitchCurves(correct, switch_at, direction);
  ASSERT_EQ(curves.size(), 2u);
  const SwitchCurve& way = curves.at(0);
  // Stream 0 covers offsets -2..3, stream 1 offsets -3..2.
  EXPECT_EQ(way.offsets, (std::vector<int64_t>{-3, -2, -1, 0, 1, 2, 3}));
  EXPECT_EQ(way.streams, (std::vector<int64_t>{1, 2, 2, 2, 2, 2, 1}));
  // offset -3: s1 t0 = 0; -2: s0 t0 1, s1 t1 0; -1: s0 t1 0, s1 t2 1;
  // 0: s0 t2 1, s1 t3 0; 1: s0 t3 1, s1 t4 1; 2: s0 t4 0, s1 t5 1; 3: 1.
  EXPECT_EQ(way.accuracy, (std::vector<double>{0, 0.5, 0.5, 0.5, 1, 0.5, 1}));
  EXPECT_DOUBLE_EQ(way.before_switch, 2.0 / 5);       // 1 0 | 0 0 1
  EXPECT_DOUBLE_EQ(way.after_switch, 5.0 / 7);        // 1 1 0 1 | 0 1 1
  EXPECT_DOUBLE_EQ(way.first_after_switch, 5.0 / 7);  // all within 20
  const SwitchCurve& back = curves.at(1);
  EXPECT_EQ(back.offsets, (std::vector<int64_t>{-4, -3, -2, -1, 0, 1}));
  EXPECT_DOUBLE_EQ(back.before_switch, 0.5);
  EXPECT_DOUBLE_EQ(back.after_switch, 0.5);
}

}  // namespace
}  // namespace ouroboros::srwm
