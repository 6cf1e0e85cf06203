// A data-parallel training job that fails, for the tests that check that every rank stops
// with the message and nothing hangs. Run under mpirun with one argument:
//   diverge        the learning rate is absurd: every rank sees the same non-finite averaged
//                  gradients and stops together; rank 0 alone prints, the exit status is 1
//   nan-on-rank-1  rank 1's shard of the first batch holds a NaN: only rank 1's loss check
//                  fires while rank 0 waits in the allreduce; rank 1 prints and aborts the job
//   error-on-rank-1  rank 1 fails before training (as a missing file would); it aborts the job
// It is built like the example trainer's main: train in a try block, report the error with
// Communicator::StopOnFailure.

#include <iostream>
#include <limits>
#include <string>

#include "dlb/data/dataset.hpp"
#include "dlb/distributed/gradient_allreduce.hpp"
#include "dlb/losses/cross_entropy.hpp"
#include "dlb/model/mlp.hpp"
#include "dlb/optimizers/make_optimizer.hpp"
#include "dlb/training/train.hpp"
#include "../support/helpers.hpp"

int main(int argc, char** argv) {
  const std::string mode = argc == 2 ? argv[1] : "";
  if (mode != "diverge" && mode != "nan-on-rank-1" && mode != "error-on-rank-1") {
    std::cerr << "usage: stop_together diverge|nan-on-rank-1|error-on-rank-1\n";
    return 2;
  }
  dlb::Communicator world;
  // A failure of every rank is agreed on as soon as all report it; a lone failure waits the
  // whole window before it aborts the job, so the lone cases get a short one.
  const std::chrono::milliseconds wait = std::chrono::seconds(mode == "diverge" ? 30 : 2);
  try {
    auto data = dlb_test::MakeClusters<float>(8, 64, 2, 3);
    if (mode == "nan-on-rank-1") {
      // Unshuffled, the first global batch of 16 is samples 0..15; rank 1 of 2 holds 8..15.
      data.x(0, 12) = std::numeric_limits<float>::quiet_NaN();
    }
    if (mode == "error-on-rank-1" && world.Rank() == 1) {
      throw dlb::FileError("data/rank-1-only.idx", std::nullopt, "cannot open (a stand-in failure)");
    }
    dlb::ModelNN<float> model =
        dlb::MakeMlp<float>(8, {6}, 2, dlb::Activation::ReLU, dlb::Init::Kaiming, 1);
    dlb::Optimizer<float> optimizer = dlb::MakeOptimizer<float>(
        "sgd", model.Parameters(), mode == "diverge" ? 1e30f : 1e-2f);
    dlb::DataSet<float> train(data.x, data.y,
                              {.batch_size = 16, .shuffle = false, .drop_last = true});
    train.SetShard(world.Rank(), world.Size());
    dlb::DataSet<float> validation(data.x, data.y, {.batch_size = 64, .shuffle = false});
    dlb::CrossEntropyLoss<float> loss;
    dlb::GradientAllreduce<float> allreduce(world);
    dlb::TrainModel(model, train, validation, loss, optimizer,
                    {.epochs = 3, .log = world.IsRoot() ? &std::cout : nullptr}, {&allreduce});
    return 0;
  } catch (const dlb::DivergenceError& e) {
    return world.StopOnFailure("stop_together: " + std::string(e.what()) + "\n", std::cerr, 1, wait);
  } catch (const dlb::Error& e) {
    return world.StopOnFailure("stop_together: error: " + std::string(e.what()) + "\n",
                               std::cerr, 1, wait);
  }
}
