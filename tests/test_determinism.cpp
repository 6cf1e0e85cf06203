// What a seed reproduces (issue 12, point 10): with the same seed, build and thread count,
// training is bit-identical from run to run, although the products are split over threads.
// A different thread count splits the products differently and may change the last bits (the
// section "Threads and reproducibility" of docs/training.md says exactly what is and is not
// reproducible).

#include <catch2/catch.hpp>
#include <cstring>
#include <vector>

#include "dlb/core/threads.hpp"
#include "dlb/data/dataset.hpp"
#include "dlb/losses/cross_entropy.hpp"
#include "dlb/model/mlp.hpp"
#include "dlb/optimizers/make_optimizer.hpp"
#include "dlb/training/train.hpp"
#include "support/helpers.hpp"

namespace {

/// Everything a training run produced: the loss and accuracy of every epoch, and the final
/// parameters, bit for bit.
struct RunResult {
  std::vector<double> history;
  std::vector<float> parameters;
};

bool BitIdentical(const RunResult& a, const RunResult& b) {
  return a.history.size() == b.history.size() && a.parameters.size() == b.parameters.size() &&
         std::memcmp(a.history.data(), b.history.data(), a.history.size() * sizeof(double)) == 0 &&
         std::memcmp(a.parameters.data(), b.parameters.data(),
                     a.parameters.size() * sizeof(float)) == 0;
}

/// Three epochs of Adam on 10 clusters in 96 dimensions, 96-128-64-10 with ReLU, batch 64,
/// shuffled: every product is large enough (>= 2^15 flops) to be split over the threads.
RunResult Train(int threads) {
  dlb::SetNumThreads(threads);
  const auto data = dlb_test::MakeClusters<float>(96, 640, 10, /*seed=*/7);
  dlb::ModelNN<float> model = dlb::MakeMlp<float>(96, {128, 64}, 10, dlb::Activation::ReLU,
                                                  dlb::Init::Kaiming, /*seed=*/3);
  dlb::Optimizer<float> optimizer = dlb::MakeOptimizer<float>("adam", model.Parameters());
  dlb::DataSet<float> train(data.x, data.y, {.batch_size = 64, .drop_last = true, .seed = 5});
  dlb::DataSet<float> validation(data.x, data.y, {.batch_size = 128, .shuffle = false});
  dlb::CrossEntropyLoss<float> loss;
  const auto history =
      dlb::TrainModel(model, train, validation, loss, optimizer, {.epochs = 3}).history;
  dlb::SetNumThreads(1);

  RunResult result;
  for (const auto& epoch : history) {
    result.history.insert(result.history.end(), {epoch.train_loss, epoch.val_loss,
                                                 epoch.train_score, epoch.val_score});
  }
  for (const auto& parameter : model.Parameters()) {
    const float* values = parameter.value->data();
    result.parameters.insert(result.parameters.end(), values, values + parameter.value->size());
  }
  return result;
}

}  // namespace

TEST_CASE("The same seed and thread count give bit-identical training", "[determinism]") {
  for (int threads : {1, 2, 3}) {
    INFO(threads << " thread(s)");
    const RunResult first = Train(threads);
    const RunResult second = Train(threads);
    REQUIRE(first.parameters.size() == 96 * 128 + 128 + 128 * 64 + 64 + 64 * 10 + 10);
    CHECK(first.history.back() > 0.5);  // it learned something: validation accuracy
    CHECK(BitIdentical(first, second));
  }
}
