// Writes a small stand-in for Fashion-MNIST (the four standard IDX .gz files) so the example
// programs can be tested end to end without the real data: each class is a bright
// horizontal band at its own height plus noise, easy to learn.
//   make_fake_fashion_mnist OUT_DIR TRAIN_COUNT TEST_COUNT
#include <dlb/core/random.hpp>
#include <dlb/data/idx.hpp>

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

namespace {

void Write(const std::string& dir, const std::string& prefix, long count, dlb::Generator& gen) {
  dlb::IdxImages images;
  images.count = count;
  images.rows = 28;
  images.cols = 28;
  images.pixels.resize(static_cast<std::size_t>(count) * 28 * 28);
  std::vector<std::uint8_t> labels(static_cast<std::size_t>(count));
  for (long n = 0; n < count; ++n) {
    const int label = static_cast<int>(n % 10);
    labels[static_cast<std::size_t>(n)] = static_cast<std::uint8_t>(label);
    for (int r = 0; r < 28; ++r) {
      for (int c = 0; c < 28; ++c) {
        const bool band = r >= 2 + 2 * label && r < 4 + 2 * label;
        const double noise = 40.0 * dlb::SampleUniform<double>(gen);
        images.pixels[static_cast<std::size_t>(n) * 784 + r * 28 + c] =
            static_cast<std::uint8_t>((band ? 200.0 : 0.0) + noise);
      }
    }
  }
  dlb::WriteIdxImages(dir + "/" + prefix + "-images-idx3-ubyte.gz", images);
  dlb::WriteIdxLabels(dir + "/" + prefix + "-labels-idx1-ubyte.gz", labels);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: make_fake_fashion_mnist OUT_DIR TRAIN_COUNT TEST_COUNT\n");
    return 2;
  }
  try {
    std::filesystem::create_directories(argv[1]);
    dlb::Generator gen(1);
    Write(argv[1], "train", std::stol(argv[2]), gen);
    Write(argv[1], "t10k", std::stol(argv[3]), gen);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "make_fake_fashion_mnist: %s\n", e.what());
    return 1;
  }
}
