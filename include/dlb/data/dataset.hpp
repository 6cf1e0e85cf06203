#pragma once
/// \file
/// Mini-batch iteration over an in-memory data set of class labels or real-valued targets,
/// with optional on-the-fly image augmentation of the batches.

#include <cstdint>
#include <iterator>
#include <numeric>
#include <optional>
#include <string>
#include <vector>

#include "dlb/core/error.hpp"
#include "dlb/core/parallel.hpp"
#include "dlb/core/random.hpp"
#include "dlb/core/state.hpp"
#include "dlb/core/types.hpp"
#include "dlb/data/augmentation.hpp"

namespace dlb {

/// What a DataSet's samples are labelled with.
enum class TargetKind {
  ClassLabels,  ///< one class index per sample (Labels): classification
  Values,       ///< a real-valued column per sample (Matrix): regression, multi-output, multi-label
};

/// One mini-batch: features (features x n, one column per sample) and their n targets: the
/// labels `y` (class labels) or the columns of `targets` (real values, targets x n); the
/// other view is empty (y of size 0, or targets of 0 rows). Views into the DataSet's buffers
/// or its X, valid until the next batch is read.
template <Scalar T>
struct Batch {
  Eigen::Map<const Matrix<T>> x;
  Eigen::Map<const Labels> y;
  Eigen::Map<const Matrix<T>> targets{nullptr, 0, 0};
};

/// How a DataSet cuts its samples into batches: PyTorch's DataLoader arguments of the same
/// names. An aggregate with chainable setters, so either of
///   `DataSet<float> test(x, y, {.batch_size = 1000, .shuffle = false});`
///   `DataSet<float> test(x, y, DataSetOptions().BatchSize(1000).Shuffle(false));`
/// Requires: batch_size in 1..N, the DataSet's number of samples (checked by the DataSet); it
/// has no default: 0 means "not set" and is rejected.
/// drop_last defaults to false, as in PyTorch: every sample is seen every epoch, the last
/// batch holding the N mod batch_size left over. Training often wants drop_last = true:
/// equal batches, so every step's batch statistics and gradient noise are alike, and the
/// BatchNorm layers throw (as torch does) on a training batch of a single sample, which a
/// kept remainder of 1 would be; the examples' trainer sets it. Evaluation wants the default.
/// shuffle defaults to true, unlike DataLoader's False: a DataSet is mostly a training set;
/// pass .shuffle = false for evaluation (it then views X in place, copying nothing).
struct DataSetOptions {
  Index batch_size = 0;    ///< samples per (global) batch, 1..N
  bool shuffle = true;     ///< draw a new sample order at every epoch
  bool drop_last = false;  ///< leave out the last N mod batch_size samples of every epoch
  std::uint64_t seed = 0;  ///< seed of the shuffling generator

  DataSetOptions& BatchSize(Index value) { batch_size = value; return *this; }
  DataSetOptions& Shuffle(bool value) { shuffle = value; return *this; }
  DataSetOptions& DropLast(bool value) { drop_last = value; return *this; }
  DataSetOptions& Seed(std::uint64_t value) { seed = value; return *this; }
};

/// Splits (X, y) into mini-batches, in a new random order every epoch.
///
/// Represents: a reference to X (features x N, one column per sample) and to the targets:
/// y (N class labels) or Y (K x N real values, one column per sample); a sample order; an
/// optional Augmentation applied to every batch read, with the count of epochs started (its
/// stream's epoch); and buffers holding the current batch.
/// Sharding (data-parallel training, see SetShard): the DataSet of rank r of R still draws
/// the whole data set's order and splits it into the same global batches of batch_size
/// samples, but GetBatch returns only the r-th of R contiguous equal parts of each global
/// batch. Ranks seeded alike thus see disjoint shards whose union is the global batch, and
/// the order state (State(), checkpoints) is the same on every rank. Unsharded = shard 0 of 1.
/// Requires: X and the targets outlive the DataSet and do not change while it is used (they
/// are not copied; temporaries are rejected at compile time).
/// Ensures: every epoch visits each sample at most once (exactly once unless drop_last
/// leaves out the last N mod batch_size samples of that epoch's order); begin() starts an
/// epoch and reshuffles when `shuffle` is set; with an augmentation, batch columns are
/// augmented copies (sample s of epoch e by the stream (seed, e, s), so re-reading a batch
/// gives the same values); reading batches allocates nothing (after SetAugmentation).
/// Usage: `for (const auto& batch : dataset) model.Forward(batch.x) ...`
template <Scalar T = float>
class DataSet {
 public:
  /// Throws ShapeError when X.cols() != y.size() or the set is empty, ArgumentError when
  /// options.batch_size < 1 (not set) or > N.
  DataSet(const Matrix<T>& x, const Labels& y, const DataSetOptions& options)
      : x_(&x), y_(&y), batch_size_(options.batch_size), shuffle_(options.shuffle),
        drop_last_(options.drop_last), seed_(options.seed), gen_(options.seed) {
    if (x.cols() != y.size()) {
      throw ShapeError("DataSet: X has " + std::to_string(x.cols()) + " samples (columns) but y has " +
                       std::to_string(y.size()) + " labels");
    }
    Initialize();
  }
  /// Real-valued targets: Y is K x N (K >= 1), column j the target of sample j. Throws like
  /// the labels' constructor, and ShapeError when Y has no rows or not N columns.
  DataSet(const Matrix<T>& x, const Matrix<T>& targets, const DataSetOptions& options)
      : x_(&x), targets_(&targets), batch_size_(options.batch_size), shuffle_(options.shuffle),
        drop_last_(options.drop_last), seed_(options.seed), gen_(options.seed) {
    if (x.cols() != targets.cols() || targets.rows() == 0) {
      throw ShapeError("DataSet: X has " + std::to_string(x.cols()) +
                       " samples (columns) but the targets are " + std::to_string(targets.rows()) +
                       " x " + std::to_string(targets.cols()) +
                       "; expected one column of at least one value per sample");
    }
    Initialize();
  }
  DataSet(Matrix<T>&&, const Labels&, const DataSetOptions&) = delete;
  DataSet(const Matrix<T>&, Labels&&, const DataSetOptions&) = delete;
  DataSet(Matrix<T>&&, const Matrix<T>&, const DataSetOptions&) = delete;
  DataSet(const Matrix<T>&, Matrix<T>&&, const DataSetOptions&) = delete;

  /// The options it was built with.
  DataSetOptions Options() const {
    return {.batch_size = batch_size_, .shuffle = shuffle_, .drop_last = drop_last_, .seed = seed_};
  }

  /// ClassLabels or Values: what the batches' targets are.
  TargetKind Kind() const { return targets_ != nullptr ? TargetKind::Values : TargetKind::ClassLabels; }
  bool HasLabels() const { return Kind() == TargetKind::ClassLabels; }
  /// Values per target column (K), 0 for class labels.
  Index NumTargets() const { return targets_ != nullptr ? targets_->rows() : 0; }

  /// Augments every batch read from now on (see Augmentation), in the gather's parallel loop;
  /// the augmentation's epoch is the number of epochs started (StartEpoch calls, saved by
  /// State()). Throws ShapeError, leaving the DataSet unchanged, when the images are not
  /// NumFeatures() values. Allocates the batch buffers now, so reading stays allocation-free.
  /// Apply it to the training set only: evaluation wants the images as they are.
  void SetAugmentation(Augmentation<T> augmentation) {
    augmentation.CheckRows(NumFeatures());
    augmentation_seed_ = static_cast<std::int64_t>(augmentation.Seed());
    augmentation_.emplace(std::move(augmentation));
    ResizeBuffers();
  }
  /// The augmentation set, or null.
  const Augmentation<T>* GetAugmentation() const {
    return augmentation_ ? &*augmentation_ : nullptr;
  }
  /// Epochs started so far (StartEpoch calls); the augmentation's epoch.
  std::int64_t EpochsStarted() const { return epoch_; }

 private:
  void Initialize() {
    const Matrix<T>& x = *x_;
    if (x.cols() == 0 || x.rows() == 0) {
      throw ShapeError("DataSet: X is " + std::to_string(x.rows()) + " x " +
                       std::to_string(x.cols()) + "; need at least one feature and one sample");
    }
    if (batch_size_ < 1 || batch_size_ > x.cols()) {
      throw ArgumentError("DataSet: options.batch_size must be in 1.." + std::to_string(x.cols()) +
                          " (the number of samples), got " + std::to_string(batch_size_) +
                          (batch_size_ == 0 ? " (not set)" : ""));
    }
    order_.resize(static_cast<std::size_t>(x.cols()));
    std::iota(order_.begin(), order_.end(), Index{0});
    ResizeBuffers();
  }

  /// Whether batches are gathered into the buffers (shuffled or augmented) rather than
  /// viewed in place.
  bool Gathers() const { return shuffle_ || augmentation_.has_value(); }

  /// Sizes the batch buffers for this shard's batches, when batches are gathered.
  void ResizeBuffers() {
    if (!Gathers()) return;
    const Index n = batch_size_ / num_shards_;
    batch_x_.resize(x_->rows(), n);
    if (targets_ != nullptr) {
      batch_t_.resize(targets_->rows(), n);
    } else {
      batch_y_.resize(n);
    }
  }

 public:

  /// Number of samples N.
  Index NumSamples() const { return x_->cols(); }
  Index NumFeatures() const { return x_->rows(); }
  Index BatchSize() const { return batch_size_; }
  /// The part of each global batch this DataSet returns: shard ShardIndex() of NumShards().
  Index ShardIndex() const { return shard_; }
  Index NumShards() const { return num_shards_; }

  /// Makes GetBatch return part `shard` of `num_shards` of every global batch: with B =
  /// BatchSize() (the global batch) and a batch of n samples (n = B but for a last partial
  /// batch kept by drop_last = false), the samples n*shard/num_shards .. n*(shard+1)/num_shards
  /// - 1 of it. Throws ArgumentError, leaving the DataSet unchanged, unless 0 <= shard <
  /// num_shards, B divides into num_shards equal parts, and (drop_last = false) a last partial
  /// batch gives every shard at least one sample. The order and the number of batches do not
  /// change, so every shard sees the same number of batches.
  void SetShard(Index shard, Index num_shards) {
    if (num_shards < 1 || shard < 0 || shard >= num_shards) {
      throw ArgumentError("DataSet::SetShard: need 0 <= shard < num_shards, got shard " +
                          std::to_string(shard) + " of " + std::to_string(num_shards));
    }
    if (batch_size_ % num_shards != 0) {
      throw ArgumentError("DataSet::SetShard: the global batch of " + std::to_string(batch_size_) +
                          " samples does not split into " + std::to_string(num_shards) +
                          " equal shards; choose a batch size divisible by the number of ranks");
    }
    const Index remainder = NumSamples() % batch_size_;
    if (!drop_last_ && remainder != 0 && remainder < num_shards) {
      throw ArgumentError("DataSet::SetShard: the last batch keeps " + std::to_string(remainder) +
                          " samples (N = " + std::to_string(NumSamples()) + ", batch " +
                          std::to_string(batch_size_) + "), fewer than the " +
                          std::to_string(num_shards) + " shards; use drop_last or another batch size");
    }
    shard_ = shard;
    num_shards_ = num_shards;
    ResizeBuffers();
  }

  /// Batches per epoch: floor(N / batch_size) with drop_last, ceil(N / batch_size) without.
  Index NumBatches() const {
    const Index n = NumSamples();
    return drop_last_ ? n / batch_size_ : (n + batch_size_ - 1) / batch_size_;
  }
  /// Samples visited per epoch (by all shards together).
  Index SamplesPerEpoch() const {
    return drop_last_ ? NumBatches() * batch_size_ : NumSamples();
  }

  /// Starts an epoch: counts it (the augmentation's epoch) and draws a new sample order
  /// (Fisher-Yates) when shuffling.
  void StartEpoch() {
    ++epoch_;
    if (!shuffle_) return;
    for (std::size_t i = order_.size() - 1; i > 0; --i) {
      std::swap(order_[i], order_[SampleIndex(gen_, i + 1)]);
    }
  }

  /// Batch `index` (0 .. NumBatches()-1) of the current epoch's order (this shard's part of
  /// it, see SetShard). With shuffling or an augmentation the samples are gathered into the
  /// DataSet's buffers (and augmented there); otherwise the views point into X and the targets.
  Batch<T> GetBatch(Index index) {
    if (index < 0 || index >= NumBatches()) {
      throw ArgumentError("DataSet::GetBatch: batch " + std::to_string(index) + " outside 0.." +
                          std::to_string(NumBatches() - 1));
    }
    const Index global_first = index * batch_size_;
    const Index global_count = std::min(batch_size_, NumSamples() - global_first);
    const Index first = global_first + global_count * shard_ / num_shards_;
    const Index count = global_first + global_count * (shard_ + 1) / num_shards_ - first;
    if (!Gathers()) {
      if (targets_ != nullptr) {
        return {Eigen::Map<const Matrix<T>>(x_->col(first).data(), x_->rows(), count),
                Eigen::Map<const Labels>(nullptr, 0),
                Eigen::Map<const Matrix<T>>(targets_->col(first).data(), targets_->rows(), count)};
      }
      return {Eigen::Map<const Matrix<T>>(x_->col(first).data(), x_->rows(), count),
              Eigen::Map<const Labels>(y_->data() + first, count)};
    }
    const Augmentation<T>* augmentation =
        augmentation_ && !augmentation_->Empty() ? &*augmentation_ : nullptr;
    const auto epoch = static_cast<std::uint64_t>(epoch_);
    const auto seed = static_cast<std::uint64_t>(augmentation_seed_);
    // Cost per sample: the copy, and about as much again for the augmentation's passes.
    ParallelRanges(count, x_->rows() * (augmentation != nullptr ? 3 : 1), [&](int, Index begin, Index length) {
      for (Index j = begin; j < begin + length; ++j) {
        const Index sample = order_[static_cast<std::size_t>(first + j)];
        batch_x_.col(j) = x_->col(sample);
        if (targets_ != nullptr) {
          batch_t_.col(j) = targets_->col(sample);
        } else {
          batch_y_(j) = (*y_)(sample);
        }
        if (augmentation != nullptr) {
          augmentation->ApplyToSample(batch_x_.col(j).data(), seed, epoch, static_cast<std::uint64_t>(sample));
        }
      }
    });
    if (targets_ != nullptr) {
      return {Eigen::Map<const Matrix<T>>(batch_x_.data(), x_->rows(), count),
              Eigen::Map<const Labels>(nullptr, 0),
              Eigen::Map<const Matrix<T>>(batch_t_.data(), targets_->rows(), count)};
    }
    return {Eigen::Map<const Matrix<T>>(batch_x_.data(), x_->rows(), count),
            Eigen::Map<const Labels>(batch_y_.data(), count)};
  }

  /// Input iterator over one epoch's batches; begin() calls StartEpoch().
  class Iterator {
   public:
    using iterator_category = std::input_iterator_tag;
    using value_type = Batch<T>;
    using difference_type = std::ptrdiff_t;
    Iterator(DataSet* set, Index index) : set_(set), index_(index) {}
    Batch<T> operator*() const { return set_->GetBatch(index_); }
    Iterator& operator++() {
      ++index_;
      return *this;
    }
    bool operator==(const Iterator& other) const { return index_ == other.index_; }

   private:
    DataSet* set_;
    Index index_;
  };

  /// The state that decides the coming epochs' batches: the shuffling generator and the
  /// current order (each epoch reshuffles the previous one), and with an augmentation the
  /// epochs started and its seed ("augmentation_epoch", "augmentation_seed": what its streams
  /// are drawn from), for checkpoints. Without an
  /// augmentation the list is what it was before augmentations existed, so older checkpoints
  /// still load.
  std::vector<StateRef<T>> State() {
    std::vector<StateRef<T>> state = {{"generator", &gen_, StateKind::Resume},
                                      {"order", &order_, StateKind::Resume}};
    if (augmentation_) {
      state.push_back({"augmentation_epoch", &epoch_, StateKind::Resume});
      state.push_back({"augmentation_seed", &augmentation_seed_, StateKind::Resume});
    }
    return state;
  }

  /// A copy of State().
  StateDict SaveState() {
    StateDict state;
    CollectState(State(), StateScope::Checkpoint, state);
    return state;
  }

  /// Restores SaveState()'s copy. Throws StateError, leaving the DataSet unchanged, when the
  /// names or types do not fit (among them a state saved with augmentation restored into a
  /// DataSet without one, or the reverse) or "order" is not a permutation of 0 .. NumSamples()-1.
  void LoadState(const StateDict& state) {
    Generator gen = gen_;
    std::vector<Index> order;
    std::int64_t epoch = epoch_, augmentation_seed = augmentation_seed_;
    std::vector<StateRef<T>> scratch = {{"generator", &gen, StateKind::Resume},
                                        {"order", &order, StateKind::Resume}};
    if (augmentation_) {
      scratch.push_back({"augmentation_epoch", &epoch, StateKind::Resume});
      scratch.push_back({"augmentation_seed", &augmentation_seed, StateKind::Resume});
    }
    // The usual mismatch, said plainly: a run with augmentation resumed without it, or back.
    if (augmentation_.has_value() != state.Contains("augmentation_epoch")) {
      throw StateError(augmentation_
                           ? "DataSet::LoadState: the saved state has no augmentation_epoch: it "
                             "comes from a run without augmentation; resume it without one"
                           : "DataSet::LoadState: the saved state has an augmentation_epoch: it "
                             "comes from a run with augmentation; set the same augmentation "
                             "(SetAugmentation) before restoring");
    }
    RestoreState(scratch, StateScope::Checkpoint, state, "DataSet::LoadState");
    if (epoch < 0) {
      throw StateError("DataSet::LoadState: the saved augmentation_epoch is negative (" +
                       std::to_string(epoch) + ")");
    }
    std::vector<char> seen(order_.size(), 0);
    bool permutation = order.size() == order_.size();
    for (std::size_t i = 0; permutation && i < order.size(); ++i) {
      permutation = order[i] >= 0 && order[i] < NumSamples() && !seen[static_cast<std::size_t>(order[i])];
      if (permutation) seen[static_cast<std::size_t>(order[i])] = 1;
    }
    if (!permutation) {
      throw StateError("DataSet::LoadState: the saved order is not a permutation of the " +
                       std::to_string(NumSamples()) + " samples of this data set");
    }
    gen_ = gen;
    order_ = std::move(order);
    epoch_ = epoch;
    augmentation_seed_ = augmentation_seed;
  }

  Iterator begin() {
    StartEpoch();
    return Iterator(this, 0);
  }
  Iterator end() { return Iterator(this, NumBatches()); }

 private:
  const Matrix<T>* x_;
  const Labels* y_ = nullptr;           // class labels, or
  const Matrix<T>* targets_ = nullptr;  // real-valued targets (exactly one is set)
  Index batch_size_;
  bool shuffle_;
  bool drop_last_;
  std::uint64_t seed_;
  Index shard_ = 0;
  Index num_shards_ = 1;
  Generator gen_;
  std::vector<Index> order_;
  std::optional<Augmentation<T>> augmentation_;
  std::int64_t epoch_ = 0;
  std::int64_t augmentation_seed_ = 0;  // the augmentation's seed (bits of a uint64), as state
  Matrix<T> batch_x_;
  Labels batch_y_;
  Matrix<T> batch_t_;
};

}  // namespace dlb
