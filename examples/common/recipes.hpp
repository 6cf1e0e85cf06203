#pragma once
// The model recipes of `train_fashion_mnist --model mlp|cnn|resnet`: each network with its
// training defaults (optimizer, rate, weight decay, epochs, batch, schedule, augmentation),
// the flags whose defaults a recipe changes, and the run header's settings lines. Only the
// library's public API is used.
//
//   mlp     the optimizers notebook's MLP (experiment::MakeModel), plain SGD, no augmentation
//   cnn     common/cnn_model.hpp's convnet, AdamW + cosine, horizontal flips
//   resnet  dlb::MakeResNet's torchvision-style ResNet (16-32-64 channels, 2 blocks each,
//           174,970 parameters), SGD-Nesterov 0.1 with weight decay 5e-4 and a cosine
//           schedule, random crop (pad 2) and flip: the classic CIFAR ResNet recipe

#include <CLI/CLI.hpp>

#include <cstdint>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <dlb/data/augmentation.hpp>
#include <dlb/dlb.hpp>
#include <dlb/model/resnet.hpp>

#include "cnn_model.hpp"
#include "experiment.hpp"

namespace recipes {

/// A network's training defaults; each is replaced by its flag when given.
struct Recipe {
  const char* name;
  int epochs;
  int batch;
  std::string optimizer;
  std::optional<float> lr;            // empty: the optimizer's default rate
  std::optional<float> weight_decay;  // empty: the optimizer's default (AdamW 1e-2, others 0)
  std::string schedule;
  std::string augment;  // dlb::ParseAugmentation's text
  double label_smoothing;  // CrossEntropyLossOptions::label_smoothing
};

/// The three recipes, mlp first (the notebook's defaults, experiment::Settings).
inline const std::vector<Recipe>& Recipes() {
  static const std::vector<Recipe> recipes = [] {
    const experiment::Settings mlp;
    return std::vector<Recipe>{
        {"mlp", mlp.epochs, mlp.batch, mlp.optimizer, std::nullopt, std::nullopt, "none", "none",
         0.0},
        {"cnn", cnn::kEpochs, cnn::kBatch, cnn::kOptimizer, cnn::kLearningRate, cnn::kWeightDecay,
         cnn::kSchedule, cnn::kAugment, cnn::kLabelSmoothing},
        {"resnet", 20, 128, "nesterov", 0.1f, 5e-4f, "cosine", "crop:2,flip", 0.0}};
  }();
  return recipes;
}

inline const Recipe& Find(const std::string& name) {
  for (const Recipe& recipe : Recipes()) {
    if (name == recipe.name) return recipe;
  }
  return Recipes().front();
}

/// The flags of train_fashion_mnist that only recipes have (the others are experiment's and
/// control's).
struct Flags {
  std::string augment;                // empty until resolved: the recipe's
  std::optional<float> weight_decay;  // empty: the recipe's
  std::optional<double> label_smoothing;  // empty until resolved: the recipe's
};

/// A CLI validator of a number in [low, high) (or [low, high] when `closed`).
inline CLI::Validator NumberIn(double low, double high, bool closed, const char* name) {
  return CLI::Validator(
      [=](std::string& text) {
        try {
          std::size_t used = 0;
          const double value = std::stod(text, &used);
          if (used == text.size() && value >= low && (value < high || (closed && value == high))) {
            return std::string();
          }
        } catch (const std::exception&) {
        }
        std::ostringstream expected;
        expected << "expected a number in [" << low << ", " << high << (closed ? "]" : ")")
                 << ", got '" << text << "'";
        return expected.str();
      },
      "NUMBER", name);
}

/// Registers --augment, --weight-decay and --label-smoothing.
inline void AddFlags(CLI::App& app, Flags& flags) {
  app.add_option("--augment", flags.augment,
                 "Augmentation of the training images, per sample and epoch, on the fly: "
                 "comma-separated crop[:PAD] (random crop of the zero-padded image, pad 2), "
                 "flip[:P] (horizontal, p 0.5), erase[:P] (random erasing, p 0.5), or none; "
                 "e.g. crop:2,flip,erase:0.25")
      ->check(CLI::Validator(
          [](std::string& text) {
            try {
              dlb::ParseAugmentation(text);
              return std::string();
            } catch (const dlb::ArgumentError& error) {
              return std::string(error.what());
            }
          },
          "LIST", "augmentation"));
  app.add_option("--weight-decay", flags.weight_decay,
                 "Weight decay (L2 in the gradient; decoupled for adamw, whose default is 0.01)")
      ->check(NumberIn(0, 1, false, "decay"));
  app.add_option("--label-smoothing", flags.label_smoothing,
                 "Label smoothing of the cross-entropy (torch's label_smoothing): the target is "
                 "(1 - e) onehot + e / classes")
      ->check(NumberIn(0, 1, true, "smoothing"));
}

/// "10 for --model mlp, 20 for cnn, 20 for resnet"; for a flag whose default follows the
/// optimizer ("sgd's") in some recipes: "the optimizer's; 0.1 for --model resnet".
inline std::string DefaultsText(std::string (*value)(const Recipe&)) {
  std::string text, own;
  bool follows_optimizer = false;
  for (const Recipe& recipe : Recipes()) {
    const std::string v = value(recipe);
    if (v.size() > 2 && v.compare(v.size() - 2, 2, "'s") == 0) {
      follows_optimizer = true;
      continue;
    }
    own += (own.empty() ? "" : ", ") + v + " for --model " + recipe.name;
  }
  if (!follows_optimizer) {
    for (const Recipe& recipe : Recipes()) {
      text += text.empty() ? value(recipe) + " for --model " + recipe.name
                           : ", " + value(recipe) + " for " + recipe.name;
    }
    return text;
  }
  return "the optimizer's" + (own.empty() ? std::string() : "; " + own);
}

/// The flags a recipe sets, with each recipe's value as the help and header show it.
struct RecipeFlag {
  const char* flag;
  std::string (*value)(const Recipe&);
};
inline const std::vector<RecipeFlag>& RecipeFlags() {
  static const std::vector<RecipeFlag> flags = {
      {"--optimizer", [](const Recipe& r) { return r.optimizer; }},
      {"--lr", [](const Recipe& r) {
         std::ostringstream text;
         if (r.lr) text << *r.lr; else text << r.optimizer << "'s";
         return text.str();
       }},
      {"--weight-decay", [](const Recipe& r) {
         std::ostringstream text;
         if (r.weight_decay) text << *r.weight_decay; else text << r.optimizer << "'s";
         return text.str();
       }},
      {"--epochs", [](const Recipe& r) { return std::to_string(r.epochs); }},
      {"--batch", [](const Recipe& r) { return std::to_string(r.batch); }},
      {"--schedule", [](const Recipe& r) { return r.schedule; }},
      {"--augment", [](const Recipe& r) { return r.augment; }},
      {"--label-smoothing", [](const Recipe& r) {
         std::ostringstream text;
         text << r.label_smoothing;
         return text.str();
       }},
  };
  return flags;
}

/// Registers --model mlp|cnn|resnet (default mlp, the notebook's network). Call it after the
/// flags of RecipeFlags() are registered: their help then gives every recipe's default
/// ("default: 10 for --model mlp, 20 for cnn, 20 for resnet") instead of the mlp's alone.
inline void AddModelFlag(CLI::App& app, std::string& model) {
  app.add_option("--model", model,
                 "Network and its recipe: mlp (the notebook's MLP), cnn (2 x conv-BN-ReLU-"
                 "max-pool, 128 hidden, dropout 0.3) or resnet (dlb::MakeResNet: 3 stages of 2 "
                 "residual blocks, 16/32/64 channels, 174,970 parameters); each recipe sets "
                 "the defaults listed with --optimizer, --lr, --weight-decay, --epochs, --batch, "
                 "--schedule, --augment and --label-smoothing")
      ->check(CLI::IsMember({"mlp", "cnn", "resnet"}))
      ->capture_default_str();
  for (const RecipeFlag& f : RecipeFlags()) {
    if (CLI::Option* option = app.get_option_no_throw(f.flag)) {
      option->default_str("");  // "=10" in the help would be the mlp's only
      option->description(option->get_description() + " (default: " + DefaultsText(f.value) + ")");
    }
  }
}

/// Gives every flag the user did not set the recipe's default: epochs, batch, optimizer, its
/// rate and weight decay, `schedule` (--schedule's value), the augmentation and the label
/// smoothing. Returns exit
/// code 2, after the error (experiment::UsageError), when --hidden was given to a recipe
/// other than mlp (it sets the MLP's widths).
inline std::optional<int> ApplyDefaults(const CLI::App& app, experiment::Settings& s,
                                        std::string& schedule, Flags& flags) {
  const Recipe& recipe = Find(s.model);
  if (s.model != "mlp" && app.count("--hidden") > 0) {
    return experiment::UsageError(app, "--hidden sets the widths of --model mlp; the " + s.model +
                                           "'s layers are fixed");
  }
  if (app.count("--epochs") == 0) s.epochs = recipe.epochs;
  if (app.count("--batch") == 0) s.batch = recipe.batch;
  if (app.count("--optimizer") == 0) {
    s.optimizer = recipe.optimizer;
    if (app.count("--lr") == 0) s.lr = recipe.lr;
    if (app.count("--weight-decay") == 0) flags.weight_decay = recipe.weight_decay;
  }
  if (app.count("--schedule") == 0) schedule = recipe.schedule;
  if (app.count("--augment") == 0) flags.augment = recipe.augment;
  if (app.count("--label-smoothing") == 0) flags.label_smoothing = recipe.label_smoothing;
  return std::nullopt;
}

/// The network of a recipe for 28 x 28 grey images and 10 classes, weights from `seed`.
inline dlb::ModelNN<float> MakeModel(const experiment::Settings& s, dlb::Index inputs) {
  if (s.model == "cnn") return cnn::MakeModel(s.seed);
  if (s.model == "resnet") return dlb::MakeResNet<float>(dlb::ResNetOptions{}, s.seed);
  return experiment::MakeModel(s, inputs);
}

/// "cnn", "resnet" or "784-350-250-150-50-10" (the MLP's widths).
inline std::string Describe(const experiment::Settings& s, dlb::Index inputs) {
  if (s.model != "mlp") return s.model;
  return experiment::Architecture(inputs, s.hidden, experiment::kClasses);
}

/// The augmentation of the training set for this run, or none (--augment none); its streams
/// are seeded by --seed.
inline std::optional<dlb::Augmentation<float>> MakeAugmentation(const Flags& flags,
                                                                const experiment::Settings& s) {
  std::vector<dlb::ImageTransform> transforms = dlb::ParseAugmentation(flags.augment);
  if (transforms.empty()) return std::nullopt;
  return dlb::Augmentation<float>(cnn::kImageShape, std::move(transforms), s.seed);
}

/// The run's effective settings for its header, in up to three lines, by where each value
/// came from: the flags given (as given), the recipe's defaults, and the other defaults, e.g.
///   Settings given: --model resnet --epochs 3 --data data/fashion-mnist
///   Defaults of --model resnet: --optimizer nesterov --lr 0.1 --weight-decay 0.0005 ...
///   Other defaults: --seed 0 --threads 8
/// `lr` and `weight_decay` are the optimizer's (its defaults when neither flag nor recipe
/// set them).
inline std::string DescribeSettings(const CLI::App& app, const experiment::Settings& s,
                                    const Flags& flags, const std::string& schedule, float lr,
                                    float weight_decay) {
  std::string given, recipe_defaults, defaults;
  for (const CLI::Option* option : app.get_options()) {
    if (option->count() == 0) continue;
    std::string values;  // none for a flag such as --distributed
    if (option->get_type_size() != 0) {
      for (const std::string& value : option->results()) values += " " + value;
    }
    given += " " + option->get_name() + values;
  }
  const bool mlp = s.model == "mlp";
  // The recipe's own value (not the optimizer's default) decides where --lr and
  // --weight-decay are listed.
  const Recipe& recipe = Find(s.model);
  const auto add = [&](const char* flag, const std::string& value, const std::string& note = "") {
    if (app.count(flag) > 0) return;
    bool by_recipe = false;
    for (const RecipeFlag& f : RecipeFlags()) by_recipe = by_recipe || (!mlp && f.flag == std::string(flag));
    if (flag == std::string("--lr")) by_recipe = !mlp && recipe.lr && app.count("--optimizer") == 0;
    if (flag == std::string("--weight-decay")) {
      by_recipe = !mlp && recipe.weight_decay && app.count("--optimizer") == 0;
    }
    (by_recipe ? recipe_defaults : defaults) += std::string(" ") + flag + " " + value + note;
  };
  std::ostringstream rate, decay;
  rate << lr;
  decay << weight_decay;
  const bool own_rate = !mlp && recipe.lr && app.count("--optimizer") == 0;
  const bool own_decay = !mlp && recipe.weight_decay && app.count("--optimizer") == 0;
  add("--model", s.model);
  add("--optimizer", s.optimizer);
  add("--lr", rate.str(), own_rate ? "" : " (" + s.optimizer + "'s)");
  add("--weight-decay", decay.str(), own_decay ? "" : " (" + s.optimizer + "'s)");
  add("--epochs", std::to_string(s.epochs));
  add("--batch", std::to_string(s.batch));
  if (mlp) {
    std::string widths;
    for (const dlb::Index width : s.hidden) widths += (widths.empty() ? "" : ",") + std::to_string(width);
    add("--hidden", widths.empty() ? "''" : widths);
  }
  add("--schedule", schedule);
  add("--augment", flags.augment);
  std::ostringstream smoothing;
  smoothing << flags.label_smoothing.value_or(0.0);
  add("--label-smoothing", smoothing.str());
  add("--seed", std::to_string(s.seed));
  add("--threads", std::to_string(s.threads));
  std::string text;
  if (!given.empty()) text += "Settings given:" + given + "\n";
  if (!recipe_defaults.empty()) text += "Defaults of --model " + s.model + ":" + recipe_defaults + "\n";
  if (!defaults.empty()) text += (given.empty() ? "Settings, all defaults:" : "Other defaults:") + defaults + "\n";
  return text;
}

}  // namespace recipes
