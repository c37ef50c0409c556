#include "ouroboros/base/files.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>

#include "absl/strings/str_cat.h"

namespace ouroboros {
namespace fs = std::filesystem;

absl::StatusOr<std::string> ReadFileToString(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(
        absl::StrCat(path, ": cannot read (", std::strerror(errno), ")"));
  }
  std::stringstream text;
  text << in.rdbuf();
  if (in.bad()) {
    return absl::UnavailableError(
        absl::StrCat(path, ": cannot read (", std::strerror(errno), ")"));
  }
  return text.str();
}

absl::Status MakeDirectories(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat(dir, ": cannot create: ", ec.message()));
  }
  return absl::OkStatus();
}

absl::Status WriteFileAtomically(const std::string& path,
                                 const std::string& contents) {
  const std::string tmp = absl::StrCat(path, ".tmp.", getpid());
  const auto fail = [&](const char* what) {
    const int error = errno;
    std::remove(tmp.c_str());
    return absl::UnavailableError(
        absl::StrCat(path, ": cannot ", what, ": ", std::strerror(error)));
  };
  const int fd =
      open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return fail("write");
  size_t written = 0;
  while (written < contents.size()) {
    const ssize_t n =
        write(fd, contents.data() + written, contents.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      close(fd);
      return fail("write");
    }
    written += static_cast<size_t>(n);
  }
  // The bytes reach the disk before the name points at them: after a power
  // cut the file is the old one or the new one, never a torn or empty one.
  if (fsync(fd) != 0) {
    close(fd);
    return fail("sync");
  }
  if (close(fd) != 0) return fail("write");
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    return fail("rename into place");
  }
  // And the rename itself, which lives in the directory.
  const std::string dir = fs::path(path).parent_path().string();
  const int dir_fd =
      open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    (void)fsync(dir_fd);
    close(dir_fd);
  }
  return absl::OkStatus();
}

}  // namespace ouroboros
