// Writes files from a hostile stranger for the example programs' tests (issue 15), from a
// model file MODEL that train_fashion_mnist saved:
//   OUT_DIR/overflowing-model.safetensors  MODEL with every weight 3e38: finite weights whose
//                                          products overflow, so the logits are not finite
//   OUT_DIR/nan-model.safetensors          MODEL with every floating-point value NaN
//   OUT_DIR/forged-metadata.safetensors    MODEL whose library_version holds a newline, ESC [2J
//                                          (clear the screen) and a forged "Accuracy: 0.9999"
//   OUT_DIR/forged-name.safetensors        MODEL plus a tensor named like that
//   OUT_DIR/million-images.idx.gz          a gzip IDX file whose header declares 1,000,000
//                                          images of 28 x 28 (one image of data follows)
//   OUT_DIR/150k-images.idx.gz             150,000 black images of 28 x 28, honestly: within
//                                          Fashion-MNIST's limits, 118 MB of pixels and 470 MB
//                                          as a float matrix (for a run under a memory limit)
//
//   make_hostile_files MODEL OUT_DIR
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include <dlb/io/safetensors.hpp>

namespace {

constexpr const char* kForged = "0.1.0\n\x1b[2JAccuracy: 0.9999";

/// `tensors` with every F32 and F64 value replaced by `value` (`weights_only`: only those
/// whose name ends in ".weight").
dlb::StateDict Filled(const dlb::StateDict& tensors, double value, bool weights_only) {
  dlb::StateDict out;
  for (const auto& [name, tensor] : tensors.Entries()) {
    dlb::Tensor copy = tensor;
    const bool weight = name.size() >= 7 && name.compare(name.size() - 7, 7, ".weight") == 0;
    if (!weights_only || weight) {
      if (copy.dtype == dlb::DType::F32) {
        const auto single = static_cast<float>(value);
        for (std::size_t i = 0; i + 4 <= copy.data.size(); i += 4) std::memcpy(&copy.data[i], &single, 4);
      } else if (copy.dtype == dlb::DType::F64) {
        for (std::size_t i = 0; i + 8 <= copy.data.size(); i += 8) std::memcpy(&copy.data[i], &value, 8);
      }
    }
    out.Insert(name, std::move(copy));
  }
  return out;
}

/// A gzip IDX file whose header declares `declared` images of 28 x 28, followed by `written`
/// black images.
void WriteImages(const std::string& path, std::uint32_t declared, std::uint32_t written) {
  gzFile file = gzopen(path.c_str(), "wb1");
  if (file == nullptr) throw std::runtime_error("cannot write " + path);
  // Magic 0x00000803, then the count, 28, 28, big-endian; then the pixels.
  const unsigned char header[16] = {0, 0, 8, 3,
                                    static_cast<unsigned char>(declared >> 24),
                                    static_cast<unsigned char>(declared >> 16),
                                    static_cast<unsigned char>(declared >> 8),
                                    static_cast<unsigned char>(declared),
                                    0, 0, 0, 28, 0, 0, 0, 28};
  bool ok = gzwrite(file, header, sizeof header) == static_cast<int>(sizeof header);
  const std::vector<unsigned char> images(784 * 1000, 0);
  for (std::uint32_t done = 0; ok && done < written; done += 1000) {
    const auto bytes = static_cast<unsigned>(784 * std::min<std::uint32_t>(1000, written - done));
    ok = gzwrite(file, images.data(), bytes) == static_cast<int>(bytes);
  }
  if (gzclose(file) != Z_OK || !ok) throw std::runtime_error("cannot write " + path);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: make_hostile_files MODEL OUT_DIR\n");
    return 2;
  }
  try {
    const std::string dir = argv[2];
    std::filesystem::create_directories(dir);
    const dlb::Safetensors model = dlb::ReadSafetensors(argv[1]);
    dlb::WriteSafetensors(dir + "/overflowing-model.safetensors",
                          Filled(model.tensors, 3e38, /*weights_only=*/true), model.metadata);
    dlb::WriteSafetensors(dir + "/nan-model.safetensors",
                          Filled(model.tensors, std::numeric_limits<double>::quiet_NaN(), false),
                          model.metadata);
    dlb::Metadata forged = model.metadata;
    forged["library_version"] = kForged;
    dlb::WriteSafetensors(dir + "/forged-metadata.safetensors", model.tensors, forged);
    dlb::StateDict named = model.tensors;
    named.Insert(std::string("x\n") + kForged, dlb::Tensor::FromValues(dlb::DType::F32, {1}, std::vector<float>{1}));
    dlb::WriteSafetensors(dir + "/forged-name.safetensors", named, model.metadata);
    WriteImages(dir + "/million-images.idx.gz", 1'000'000, 1);
    WriteImages(dir + "/150k-images.idx.gz", 150'000, 150'000);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "make_hostile_files: %s\n", e.what());
    return 1;
  }
}
