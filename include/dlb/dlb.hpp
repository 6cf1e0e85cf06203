#pragma once
/// \file
/// DLBlocks umbrella header: the in-memory library. Layers, losses, metrics, optimizers,
/// models and blocks (with the layer registry), data sets held in memory (DataSet, splits,
/// Standardizer) and training (TrainModel, callbacks, schedules). It includes no file code:
/// no zlib, no JSON, no POSIX file handling and no <dlfcn.h>, so a program that trains on
/// matrices it built needs only Eigen and threads (CMake target dlb::dlb).
///
/// The parts with more dependencies have umbrellas of their own:
///   <dlb/io.hpp>            data files (IDX, Fashion-MNIST, gzip), atomic file writes,
///                           HistoryCsvLogger; needs zlib (target dlb::io)
///   <dlb/serialization.hpp> model files, checkpoints, safetensors; needs nlohmann-json and
///                           zlib (target dlb::serialization)
///   <dlb/onnx.hpp>          ExportOnnx (target dlb::dlb)
///   <dlb/distributed.hpp>   data-parallel training over MPI (target dlb::mpi)
/// With DLB_COMPILED defined (the target dlb::compiled defines it), the templates that
/// library instantiates are declared extern here (dlb/compiled.hpp), so this translation unit
/// does not compile them again.

#include "dlb/core/checked.hpp"
#include "dlb/core/error.hpp"
#include "dlb/core/im2col.hpp"
#include "dlb/core/parameter.hpp"
#include "dlb/core/printable.hpp"
#include "dlb/core/random.hpp"
#include "dlb/core/shape.hpp"
#include "dlb/core/state.hpp"
#include "dlb/core/targets.hpp"
#include "dlb/core/threads.hpp"
#include "dlb/core/types.hpp"
#include "dlb/core/version.hpp"
#include "dlb/core/window2d.hpp"

#include "dlb/layers/batch_norm.hpp"
#include "dlb/layers/conv2d.hpp"
#include "dlb/layers/dropout.hpp"
#include "dlb/layers/init.hpp"
#include "dlb/layers/layer.hpp"
#include "dlb/layers/layer_options.hpp"
#include "dlb/layers/layer_spec.hpp"
#include "dlb/layers/activations.hpp"
#include "dlb/layers/linear.hpp"
#include "dlb/layers/pooling.hpp"
#include "dlb/layers/spatial_layer.hpp"

#include "dlb/losses/bce_with_logits.hpp"
#include "dlb/losses/cross_entropy.hpp"
#include "dlb/losses/loss.hpp"
#include "dlb/losses/mse.hpp"
#include "dlb/metrics/accuracy.hpp"
#include "dlb/metrics/class_probabilities.hpp"
#include "dlb/metrics/target_metrics.hpp"

#include "dlb/optimizers/adam.hpp"
#include "dlb/optimizers/adamw.hpp"
#include "dlb/optimizers/make_optimizer.hpp"
#include "dlb/optimizers/momentum.hpp"
#include "dlb/optimizers/nesterov.hpp"
#include "dlb/optimizers/optimizer.hpp"
#include "dlb/optimizers/sgd.hpp"
#include "dlb/optimizers/update_rule.hpp"

#include "dlb/model/builtin_layers.hpp"
#include "dlb/model/concat.hpp"
#include "dlb/model/layer_registry.hpp"
#include "dlb/model/layer_times.hpp"
#include "dlb/model/mlp.hpp"
#include "dlb/model/model.hpp"
#include "dlb/model/predictor.hpp"
#include "dlb/model/residual.hpp"
#include "dlb/model/resnet.hpp"
#include "dlb/model/sequential.hpp"

#include "dlb/data/augmentation.hpp"
#include "dlb/data/dataset.hpp"
#include "dlb/data/split.hpp"
#include "dlb/data/standardize.hpp"

#include "dlb/training/callback.hpp"
#include "dlb/training/divergence_guard.hpp"
#include "dlb/training/early_stopping.hpp"
#include "dlb/training/history.hpp"
#include "dlb/training/lr_schedule.hpp"
#include "dlb/training/monitor.hpp"
#include "dlb/training/one_cycle_lr.hpp"
#include "dlb/training/progress.hpp"
#include "dlb/training/reduce_lr_on_plateau.hpp"
#include "dlb/training/train.hpp"

#ifdef DLB_COMPILED
#include "dlb/compiled.hpp"
#endif
