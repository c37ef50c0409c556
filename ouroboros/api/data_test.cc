#include "ouroboros/api/data.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ouroboros/api/idx.h"

namespace ouroboros {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

class DataTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(getenv("TEST_TMPDIR")) /
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }

  // An IDX file: magic 0x0000 0x08 rank, big-endian dims, then the bytes.
  std::string WriteIdx(const std::string& name, std::vector<uint32_t> dims,
                       const std::vector<uint8_t>& data, bool gzip = true) {
    std::string bytes = {0, 0, 8, static_cast<char>(dims.size())};
    for (uint32_t d : dims) {
      for (int shift = 24; shift >= 0; shift -= 8) {
        bytes.push_back(static_cast<char>((d >> shift) & 0xff));
      }
    }
    bytes.append(data.begin(), data.end());
    std::string path = (dir_ / name).string();
    if (gzip) {
      gzFile f = gzopen(path.c_str(), "wb");
      gzwrite(f, bytes.data(), bytes.size());
      gzclose(f);
    } else {
      std::ofstream(path, std::ios::binary) << bytes;
    }
    return path;
  }

  fs::path dir_;
};

TEST_F(DataTest, ReadsGzipAndPlainIdx) {
  std::vector<uint8_t> pixels = {0, 255, 128, 64, 1, 2, 3, 4};
  std::string images = WriteIdx("img.gz", {2, 2, 2}, pixels);
  std::string labels = WriteIdx("lab", {2}, {7, 3}, /*gzip=*/false);
  absl::StatusOr<Dataset> data = ReadIdxImagesAndLabels(images, labels);
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ(data->inputs.sizes(), (at::IntArrayRef{2, 1, 2, 2}));
  EXPECT_FLOAT_EQ(data->inputs[0][0][0][1].item<float>(), 1.0f);
  EXPECT_FLOAT_EQ(data->inputs[0][0][1][0].item<float>(), 128 / 255.0f);
  EXPECT_EQ(data->targets[0].item<int64_t>(), 7);
  EXPECT_EQ(data->spec.num_classes, 8);
  EXPECT_EQ(data->spec.input_shape, (std::vector<int64_t>{1, 2, 2}));
}

TEST(ImagesToUnitFloatTest, GivesLibTorchsFloatsForEveryByte) {
  at::Tensor bytes = at::arange(256, at::kLong).to(at::kByte).reshape({4, 64});
  at::Tensor ours = ImagesToUnitFloat(bytes);
  EXPECT_EQ(ours.scalar_type(), at::kFloat);
  EXPECT_TRUE(at::equal(ours, bytes.to(at::kFloat).div_(255.0)));
  // Large enough to be split between two threads, at an odd length.
  const int threads = at::get_num_threads();
  at::set_num_threads(2);
  at::Tensor many = at::randint(256, {(int64_t{1} << 23) + 7}, at::kByte);
  EXPECT_TRUE(
      at::equal(ImagesToUnitFloat(many), many.to(at::kFloat).div_(255.0)));
  at::set_num_threads(threads);
  // A view that is not contiguous takes LibTorch's way, with the same result.
  at::Tensor columns = bytes.t();
  EXPECT_TRUE(at::equal(ImagesToUnitFloat(columns),
                        columns.to(at::kFloat).div_(255.0)));
}

TEST_F(DataTest, ReadsImagesAsBytesToConvertLater) {
  std::string images = WriteIdx("img.gz", {2, 1, 2}, {0, 255, 17, 3});
  std::string labels = WriteIdx("lab.gz", {2}, {1, 0});
  absl::StatusOr<Dataset> bytes = ReadIdxImagesAndLabelsAsBytes(images, labels);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  EXPECT_EQ(bytes->inputs.scalar_type(), at::kByte);
  EXPECT_EQ(bytes->inputs[1][0][0][0].item<int64_t>(), 17);
  absl::StatusOr<Dataset> floats = ReadIdxImagesAndLabels(images, labels);
  ASSERT_TRUE(floats.ok()) << floats.status();
  EXPECT_TRUE(at::equal(ImagesToUnitFloat(bytes->inputs), floats->inputs));
}

// The idx source splits its images as bytes and converts each split: the
// splits hold every image once, as floats, with its own label.
TEST_F(DataTest, IdxSplitsAreFloatImagesWithTheirLabels) {
  const int n = 40;
  std::vector<uint8_t> pixels, labels;
  for (int i = 0; i < n; ++i) {
    for (int p = 0; p < 4; ++p) pixels.push_back(static_cast<uint8_t>(i * 6));
    labels.push_back(static_cast<uint8_t>(i % 3));
  }
  DataConfig config;
  config.set_dataset("idx");
  config.set_path(dir_.string());
  config.mutable_idx_files()->set_train_images(
      fs::path(WriteIdx("train-i.gz", {n, 2, 2}, pixels)).filename());
  config.mutable_idx_files()->set_train_labels(
      fs::path(WriteIdx("train-l.gz", {n}, labels)).filename());
  config.mutable_idx_files()->set_test_images(
      fs::path(WriteIdx("test-i", {2, 2, 2}, {6, 6, 6, 6, 0, 0, 0, 0},
                        /*gzip=*/false))
          .filename());
  config.mutable_idx_files()->set_test_labels(
      fs::path(WriteIdx("test-l", {2}, {1, 0}, /*gzip=*/false)).filename());
  config.mutable_split()->set_val_fraction(0.25);
  absl::StatusOr<DataSplits> splits = LoadDataSplits(config, 3);
  ASSERT_TRUE(splits.ok()) << splits.status();
  EXPECT_EQ(splits->train.size(), 30);
  EXPECT_EQ(splits->val.size(), 10);
  EXPECT_EQ(splits->test.size(), 2);
  std::set<int> seen;
  for (const Dataset* split : {&splits->train, &splits->val}) {
    ASSERT_EQ(split->inputs.scalar_type(), at::kFloat);
    for (int64_t row = 0; row < split->size(); ++row) {
      const float value = split->inputs[row][0][0][0].item<float>();
      const int image = static_cast<int>(std::lround(value * 255 / 6));
      EXPECT_EQ(value, static_cast<float>(image * 6) / 255.0f);
      EXPECT_EQ(split->targets[row].item<int64_t>(), image % 3);
      EXPECT_TRUE(seen.insert(image).second);
    }
  }
  EXPECT_EQ(seen.size(), static_cast<size_t>(n));
  EXPECT_EQ(splits->test.inputs[0][0][1][1].item<float>(), 6 / 255.0f);
}

TEST_F(DataTest, IdxErrorsNameTheFileAndTheProblem) {
  std::string wrong_size = WriteIdx("short.gz", {2, 2, 2}, {1, 2, 3});
  EXPECT_EQ(ReadIdxFile(wrong_size).status().message(),
            wrong_size +
                ": dimensions 2x2x2 need 8 bytes of data but the "
                "file has 3");
  std::string too_long = WriteIdx("long", {2}, {1, 2, 3, 4}, /*gzip=*/false);
  EXPECT_EQ(ReadIdxFile(too_long).status().message(),
            too_long +
                ": dimensions 2 need 2 bytes of data but the "
                "file has 4");
  std::string header_only = WriteIdx("header.gz", {5, 3}, {});
  EXPECT_EQ(ReadIdxFile(header_only).status().message(),
            header_only +
                ": dimensions 5x3 need 15 bytes of data but the "
                "file has 0");
  std::string cut_header = (dir_ / "cut").string();
  std::ofstream(cut_header, std::ios::binary)
      << std::string("\0\0\x08\x03\0\0", 6);
  EXPECT_EQ(ReadIdxFile(cut_header).status().message(),
            cut_header + ": truncated IDX header (rank 3)");
  std::string text = (dir_ / "text.gz").string();
  std::ofstream(text) << "hello";
  EXPECT_EQ(ReadIdxFile(text).status().message(),
            text + ": not an IDX file (bad magic number)");
  std::string missing = (dir_ / "missing.gz").string();
  EXPECT_EQ(ReadIdxFile(missing).status().code(), absl::StatusCode::kNotFound);
  std::string images = WriteIdx("i.gz", {2, 1, 1}, {1, 2});
  std::string labels = WriteIdx("l.gz", {3}, {0, 1, 2});
  EXPECT_THAT(
      std::string(ReadIdxImagesAndLabels(images, labels).status().message()),
      HasSubstr("expected 2 labels"));
}

TEST_F(DataTest, ReadsMnistDigitsJson) {
  for (int digit = 0; digit < 10; ++digit) {
    std::ofstream out(dir_ / (std::to_string(digit) + ".json"));
    out << "{ \"data\": [";
    for (int i = 0; i < 784 * 2; ++i) out << (i ? "," : "") << (i % 7) / 10.0;
    out << "]}";
  }
  absl::StatusOr<Dataset> data = ReadMnistDigits(dir_.string());
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ(data->inputs.sizes(), (at::IntArrayRef{20, 1, 28, 28}));
  EXPECT_EQ(data->targets[19].item<int64_t>(), 9);
  EXPECT_FLOAT_EQ(data->inputs[0][0][0][3].item<float>(), 0.3f);
  fs::remove(dir_ / "4.json");
  EXPECT_THAT(std::string(ReadMnistDigits(dir_.string()).status().message()),
              HasSubstr("4.json: cannot open"));
}

DataConfig Synthetic(int n) {
  DataConfig config;
  config.set_dataset("synthetic");
  config.mutable_synthetic()->set_num_samples(n);
  config.mutable_synthetic()->set_num_features(3);
  config.mutable_synthetic()->set_num_classes(2);
  config.mutable_synthetic()->set_noise(1);
  return config;
}

// Identifies samples by their (unique, random) first feature.
std::set<float> Ids(const Dataset& d) {
  std::set<float> ids;
  for (int64_t i = 0; i < d.size(); ++i) {
    ids.insert(d.inputs[i][0].item<float>());
  }
  return ids;
}

TEST(SplitTest, HoldoutSplitsAreDisjointAndReproducible) {
  DataConfig config = Synthetic(100);
  config.mutable_split()->set_val_fraction(0.25);
  absl::StatusOr<DataSplits> a = LoadDataSplits(config, 7);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->test.size(), 20);  // default test_fraction 0.2
  EXPECT_EQ(a->val.size(), 20);   // a quarter of the remaining 80
  EXPECT_EQ(a->train.size(), 60);
  std::set<float> all = Ids(a->train);
  for (float id : Ids(a->val)) EXPECT_TRUE(all.insert(id).second);
  for (float id : Ids(a->test)) EXPECT_TRUE(all.insert(id).second);
  EXPECT_EQ(all.size(), 100u);
  absl::StatusOr<DataSplits> b = LoadDataSplits(config, 7);
  EXPECT_TRUE(at::equal(a->train.inputs, b->train.inputs));
  absl::StatusOr<DataSplits> c = LoadDataSplits(config, 8);
  EXPECT_FALSE(at::equal(a->train.targets, c->train.targets) &&
               at::equal(a->train.inputs, c->train.inputs));
}

TEST(SplitTest, KFoldValidationFoldsCoverThePoolOnce) {
  DataConfig config = Synthetic(50);
  config.mutable_split()->set_method("kfold");
  config.mutable_split()->set_folds(4);
  std::set<float> seen;
  int64_t total = 0;
  for (int fold = 0; fold < 4; ++fold) {
    config.mutable_split()->set_fold(fold);
    absl::StatusOr<DataSplits> s = LoadDataSplits(config, 3);
    ASSERT_TRUE(s.ok());
    EXPECT_EQ(s->train.size() + s->val.size(), 40);
    for (float id : Ids(s->val)) EXPECT_TRUE(seen.insert(id).second);
    total += s->val.size();
  }
  EXPECT_EQ(total, 40);
}

TEST(SplitTest, SubsetKeepsAFractionOfTheTrainingPool) {
  DataConfig config = Synthetic(100);
  config.set_data_subset(0.5);
  absl::StatusOr<DataSplits> s = LoadDataSplits(config, 1);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->test.size(), 20);
  EXPECT_EQ(s->train.size(), 40);
}

TEST(SplitTest, MissingFashionMnistSaysWhatToInstall) {
  DataConfig config;
  config.set_dataset("fashion_mnist");
  config.set_path("/nonexistent");
  EXPECT_THAT(std::string(LoadDataSplits(config, 1).status().message()),
              HasSubstr("dataset-fashion-mnist: run tools/bootstrap"));
}

TEST(EpochOrderTest, DependsOnlyOnSeedAndEpoch) {
  EXPECT_TRUE(at::equal(EpochOrder(100, 5, 3), EpochOrder(100, 5, 3)));
  EXPECT_FALSE(at::equal(EpochOrder(100, 5, 3), EpochOrder(100, 5, 4)));
  EXPECT_FALSE(at::equal(EpochOrder(100, 5, 3), EpochOrder(100, 6, 3)));
  EXPECT_TRUE(
      at::equal(std::get<0>(EpochOrder(100, 5, 3).sort()), at::arange(100)));
}

TEST(BatchLoaderTest, PrefetchYieldsTheSameBatchesInOrder) {
  absl::StatusOr<Dataset> data =
      MakeSyntheticDataset(Synthetic(103).synthetic(), 2);
  ASSERT_TRUE(data.ok());
  at::Tensor order = EpochOrder(103, 1, 0);
  BatchLoader plain(*data, 10, order, 0, 0);
  BatchLoader prefetched(*data, 10, order, 0, 3);
  EXPECT_EQ(plain.num_batches(), 11);
  int batches = 0;
  while (std::optional<Batch> a = plain.Next()) {
    std::optional<Batch> b = prefetched.Next();
    ASSERT_TRUE(b.has_value());
    EXPECT_TRUE(at::equal(a->inputs, b->inputs));
    EXPECT_TRUE(at::equal(a->targets, b->targets));
    ++batches;
  }
  EXPECT_FALSE(prefetched.Next().has_value());
  EXPECT_EQ(batches, 11);
}

// The loader copies a batch's rows itself (one thread); what it copies is
// what LibTorch's index_select gives, extras included, the last short batch
// too.
TEST(BatchLoaderTest, BatchesAreTheOrderedRows) {
  absl::StatusOr<Dataset> data =
      MakeSyntheticDataset(Synthetic(103).synthetic(), 2);
  ASSERT_TRUE(data.ok());
  data->extras["task"] = at::arange(103) % 4;
  at::Tensor order = EpochOrder(103, 1, 0);
  BatchLoader loader(*data, 10, order, 0, 2);
  for (int64_t start = 0; start < 103; start += 10) {
    std::optional<Batch> batch = loader.Next();
    ASSERT_TRUE(batch.has_value());
    const at::Tensor rows =
        order.slice(0, start, std::min<int64_t>(start + 10, 103));
    EXPECT_TRUE(at::equal(batch->inputs, data->inputs.index_select(0, rows)));
    EXPECT_TRUE(at::equal(batch->targets, data->targets.index_select(0, rows)));
    EXPECT_TRUE(at::equal(batch->extras.at("task"),
                          data->extras.at("task").index_select(0, rows)));
  }
}

TEST(BatchLoaderTest, StartsAtAGivenBatchAndStopsEarlySafely) {
  absl::StatusOr<Dataset> data =
      MakeSyntheticDataset(Synthetic(50).synthetic(), 2);
  at::Tensor order = EpochOrder(50, 1, 0);
  BatchLoader from_start(*data, 10, order, 0, 0);
  for (int i = 0; i < 3; ++i) from_start.Next();
  BatchLoader resumed(*data, 10, order, 3, 2);
  EXPECT_TRUE(at::equal(from_start.Next()->inputs, resumed.Next()->inputs));
  // Destroyed with batches still queued: must not hang.
}

}  // namespace
}  // namespace ouroboros
