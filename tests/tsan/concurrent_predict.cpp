// Concurrent inference under ThreadSanitizer (built with -fsanitize=thread by
// tests/tsan/CMakeLists.txt; CTest fails on any report).
//
//   concurrent_predict predictor      8 threads call Predictor::Predict and the const
//                                     LoadedModel::Predict at once; exits 0 when every result
//                                     equals the single-thread logits bit for bit (and TSan
//                                     reports nothing)
//   concurrent_predict shared-model   the negative control: 8 threads call Forward on one
//                                     ModelNN, which is not allowed; TSan must report a race

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "dlb/core/threads.hpp"
#include "dlb/data/standardize.hpp"
#include "dlb/model/predictor.hpp"
#include "dlb/serialization/model_file.hpp"
#include "support/inference_model.hpp"

namespace {

constexpr int kThreads = 8;

int Check(const char* what, int mismatches) {
  std::printf("%s: %d mismatching result(s)\n", what, mismatches);
  return mismatches == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  dlb::SetNumThreads(2);  // the library's own pool runs too, shared by the callers
  dlb::ModelNN<float> model = dlb_test::InferenceTestModel(11);
  const std::vector<dlb::Matrix<float>> batches = dlb_test::TestBatches(64, 4, 64);
  std::vector<dlb::Matrix<float>> expected;
  for (const dlb::Matrix<float>& x : batches) expected.push_back(model.Forward(x));

  if (mode == "predictor") {
    const dlb::Predictor<float> predictor(model);
    int failed = Check("Predictor::Predict, 8 threads",
                       dlb_test::CountConcurrentMismatches(
                           kThreads, 3, batches, expected,
                           [&](const dlb::Matrix<float>& x) { return predictor.Predict(x); }));

    const std::filesystem::path path =
        std::filesystem::temp_directory_path() / ("dlb_tsan_" + std::to_string(::getpid()) + ".safetensors");
    dlb::Save(model, path.string());
    const dlb::LoadedModel<float> loaded = dlb::LoadModel<float>(path.string());
    std::filesystem::remove(path);
    failed |= Check("LoadedModel::Predict, 8 threads",
                    dlb_test::CountConcurrentMismatches(
                        kThreads, 3, batches, expected,
                        [&](const dlb::Matrix<float>& x) { return loaded.Predict(x); }));
    return failed;
  }
  if (mode == "shared-model") {
    // Same batch sizes as before, so no buffer is resized: the threads race on contents only.
    dlb_test::CountConcurrentMismatches(kThreads, 2, batches, expected,
                                        [&](const dlb::Matrix<float>& x) { return dlb::Matrix<float>(model.Forward(x)); });
    std::printf("shared-model: done (ThreadSanitizer should have reported a race)\n");
    return 0;
  }
  std::fprintf(stderr, "usage: concurrent_predict predictor|shared-model\n");
  return 2;
}
