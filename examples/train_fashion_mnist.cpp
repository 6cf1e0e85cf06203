// Trains the optimizers notebook's network (or, with --model cnn or resnet, a convnet or a
// residual network, each with its recipe: common/recipes.hpp) on Fashion-MNIST and prints the
// model summary, one line per epoch, then the test accuracy.
//
//   train_fashion_mnist [--model mlp|cnn|resnet] [--optimizer sgd|momentum|nesterov|adam|adamw]
//                       [--lr LR] [--weight-decay WD] [--augment crop:2,flip,erase:0.25|none]
//                       [--epochs N] [--batch N] [--hidden 350,250,150,50] [--seed S]
//                       [--threads N] [--data DIR] [--distributed]
//                       [--schedule none|step|cosine|onecycle|plateau (and its parameters)]
//                       [--warmup-epochs N] [--patience N] [--val-split F] [--history FILE.csv]
//                       [--save FILE] [--checkpoint FILE] [--resume FILE] [--progress MODE]
//   mpirun -np N train_fashion_mnist --distributed ...   (data parallel, see distributed_flags.hpp)
//
// Exit codes: 0 done, 1 data or training error (e.g. divergence), 2 invalid flags (among
// them outputs that would overwrite each other or an input, and ranks of a distributed run
// started with different flags).

#include <cstdio>
#include <iostream>
#include <new>

#include "common/control_flags.hpp"
#include "common/distributed_flags.hpp"
#include "common/experiment.hpp"
#include "common/persistence_flags.hpp"
#include "common/recipes.hpp"

int main(int argc, char** argv) {
  experiment::Settings settings;
  CLI::App app("Train the optimizers notebook's multi-layer perceptron, a convnet or a residual "
               "network on Fashion-MNIST.",
               "train_fashion_mnist");
  experiment::AddFlags(app, settings);
  recipes::Flags recipe_flags;
  recipes::AddFlags(app, recipe_flags);
  control::Settings control_settings;
  control::AddFlags(app, control_settings);
  control::AddProgressFlag(app, control_settings);
  persistence::Flags files;
  persistence::AddFlags(app, files);
  recipes::AddModelFlag(app, settings.model);
  experiment::Distributed distributed;
  distributed.AddFlags(app);
  if (auto code = experiment::Parse(app, argc, argv)) return *code;
  if (auto code = recipes::ApplyDefaults(app, settings, control_settings.schedule, recipe_flags)) {
    return *code;
  }
  if (auto code = control::Check(app, control_settings, settings)) return *code;
  if (auto code = persistence::CheckDistinctFiles(
          app, persistence::TrainingFiles(files, control_settings.history, settings.data))) {
    return *code;
  }

  try {
    distributed.Start(app, settings);
    if (!distributed.IsRoot()) files.save = files.checkpoint = control_settings.history = "";  // rank 0 writes
    dlb::SetNumThreads(settings.threads);
    const control::RunData run = control::LoadRunData(settings, control_settings);
    const dlb::FashionMnist<float>& data = run.data;
    // --data may differ between ranks (hosts keep their copies in different places); what
    // was loaded must not: the number of batches decides the ranks' collective calls.
    const auto count = [](const char* what, dlb::Index n) {
      return experiment::RankFact{what, std::to_string(n) + " " + what};
    };
    const dlb::Labels& labels = data.train_labels;
    char labels_hash[64];
    std::snprintf(labels_hash, sizeof labels_hash, "training labels with FNV-1a 64 %016llx",
                  static_cast<unsigned long long>(experiment::internal::Fnv1a64(
                      reinterpret_cast<const char*>(labels.data()),
                      static_cast<std::size_t>(labels.size()) * sizeof(labels(0)))));
    distributed.RequireSameOnAllRanks(
        {count("training images", data.train_images.cols()),
         count("held-out validation images", run.val_images.cols()),
         count("test images", data.test_images.cols()), {"labels", labels_hash}},
        "the ranks loaded different data", "give every rank the same data set (--data)");
    if (auto code = experiment::RejectOversizedBatch(settings, data, "train_fashion_mnist")) {
      return *code;
    }
    const dlb::Index inputs = data.train_images.rows();
    dlb::ModelNN<float> model = recipes::MakeModel(settings, inputs);
    dlb::Optimizer<float> optimizer =
        dlb::MakeOptimizer<float>(settings.optimizer, model, settings.lr, recipe_flags.weight_decay);
    const float weight_decay =
        recipe_flags.weight_decay.value_or(settings.optimizer == "adamw" ? 1e-2f : 0.0f);
    control::RunSets sets = control::MakeSets(run, settings);
    // Training batches only: validation and test images are scored as they are.
    const std::optional<dlb::Augmentation<float>> augmentation =
        recipes::MakeAugmentation(recipe_flags, settings);
    if (augmentation) sets.batches.train.SetAugmentation(*augmentation);
    distributed.Shard(sets.batches.train);
    distributed.SynchronizeBatchNorm(model);
    const control::RunCallbacks callbacks = control::MakeCallbacks(control_settings, settings.epochs);
    dlb::CrossEntropyLoss<float> loss(
        dlb::CrossEntropyLossOptions().LabelSmoothing(recipe_flags.label_smoothing.value_or(0.0)));

    std::cout << recipes::DescribeSettings(app, settings, recipe_flags, control_settings.schedule,
                                           optimizer.LearningRate(), weight_decay)
              << "Fashion-MNIST from " << settings.data << ": " << data.train_images.cols()
              << " training, " << data.test_images.cols() << " test images\n"
              << "Model " << recipes::Describe(settings, inputs) << ", ReLU, Kaiming init, "
              << model.NumParameters() << " parameters\n"
              << model.Summary()
              << "Optimizer " << optimizer.Name() << " lr " << optimizer.LearningRate()
              << " weight decay " << weight_decay << ", batch " << settings.batch << ", " << settings.epochs << " epochs, seed "
              << settings.seed << ", " << settings.threads << " thread(s), products by "
              << experiment::ProductEngine() << "\n"
              << "Augmentation of the training images: "
              << (augmentation ? augmentation->Describe() +
                                     " (per sample and epoch, on the fly, seed " +
                                     std::to_string(settings.seed) + ")"
                               : std::string("none"))
              << "\n"
              << control::ValidationLine(run, control_settings) << "\n"
              << distributed.Describe(settings.batch, model.NumParameters());
    control::PrintControl(std::cout, callbacks, optimizer.LearningRate());

    persistence::Session session(files, run.standardizer);
    const int done =
        session.Resume({model, optimizer, sets.batches.train, callbacks.List()}, settings.epochs);
    if (callbacks.history) callbacks.history->SetEarlierHistory(session.EarlierHistory());
    const dlb::TrainResult result = dlb::TrainModel(
        model, sets.batches.train, sets.batches.validation, loss, optimizer,
        {.epochs = settings.epochs, .initial_epoch = done, .log = &std::cout,
         .progress = control::ProgressMode(control_settings)},
        distributed.Callbacks(session.Callbacks(callbacks.List())));
    control::PrintOutcome(std::cout, result, callbacks, model, sets, loss);
    session.Save(model);
    return 0;
  } catch (const experiment::RankMismatch& e) {
    return distributed.Fail(std::string("train_fashion_mnist: error: ") + e.what() + "\n", 2);
  } catch (const dlb::DivergenceError& e) {
    return distributed.Fail(std::string("train_fashion_mnist: ") + e.what() +
        "\n  (try a smaller --lr; the parameters were kept at their last finite values)\n", 1);
  } catch (const std::bad_alloc&) {
    return distributed.Fail("train_fashion_mnist: error: out of memory (try smaller --hidden or --batch)\n", 1);
  } catch (const std::exception& e) {
    return distributed.Fail(std::string("train_fashion_mnist: error: ") + e.what() + "\n", 1);
  }
}
