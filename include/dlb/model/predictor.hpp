#pragma once
/// \file
/// Predictor: a frozen copy of a model that many threads may use to predict at once (a
/// service's inference path).
///
/// Why a copy: a layer's Forward keeps its activations (and working memory) in members, so
/// one ModelNN can run one pass at a time. A Predictor keeps the model it was given untouched
/// (read only, so Model() may be read from any thread) and runs each pass on a workspace: a
/// Clone() of that model borrowed from a pool for the duration of one call. The pool grows to
/// the largest number of calls that ran at once and keeps its workspaces, so a steady
/// service allocates only its result matrices (none with the Predict overload that writes
/// into the caller's matrix once it has the batch's size).

#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "dlb/core/error.hpp"
#include "dlb/core/types.hpp"
#include "dlb/model/model.hpp"

namespace dlb {

/// Represents: a model frozen in Mode::Inference (its layers, weights and buffers as they
/// were when the Predictor was built) and a pool of workspace copies of it.
/// Thread safety: every member is const and may be called from any number of threads at
/// once; each Predict call runs on a workspace no other call uses, and the result is the
/// same (bit for bit) as a single thread's: the library's parallel loops split work by size
/// and thread count only, never by which thread runs (core/parallel.hpp).
/// Memory: the model's weights once for the frozen model plus once per workspace, i.e. per
/// call that ran at the same time as others (peak concurrency).
/// Later changes of the model it was built from are not seen: build a new Predictor after
/// training further (it is cheap: one Clone()).
template <Scalar T = float>
class Predictor {
 public:
  /// Freezes a copy of `model` (ModelNN::Clone). Throws Error when a layer's type cannot be
  /// copied.
  explicit Predictor(const ModelNN<T>& model) : Predictor(model.Clone()) {}
  /// Freezes `model` itself (no copy).
  explicit Predictor(ModelNN<T>&& model) : pool_(std::make_unique<Pool>(std::move(model))) {
    pool_->model.SetMode(Mode::Inference);
  }

  /// An independent Predictor of the same frozen model (workspaces are not copied).
  Predictor Clone() const { return Predictor(Model()); }

  /// The frozen model, for reading (Summary, shapes, SaveState, Save, ExportOnnx). Never
  /// run by Predict, so reading it while other threads predict is safe.
  const ModelNN<T>& Model() const { return pool_->model; }
  Index InputSize() const { return Model().InputSize(); }
  Index OutputSize() const { return Model().OutputSize(); }

  /// Logits (OutputSize() x N) for the batch `x` (InputSize() x N, one sample per column) in
  /// Mode::Inference, as an owned matrix. Thread-safe (see the class comment). Throws
  /// ShapeError for a wrong row count, an empty batch or a model without layers.
  template <class Derived>
  Matrix<T> Predict(const Eigen::MatrixBase<Derived>& x) const {
    Matrix<T> logits;
    Predict(x, logits);
    return logits;
  }

  /// As Predict(x), into `logits` (resized only when its shape differs, so a caller that
  /// keeps its matrix allocates nothing per call once every workspace has seen the batch
  /// size). `logits` must not alias `x`.
  template <class Derived>
  void Predict(const Eigen::MatrixBase<Derived>& x, Matrix<T>& logits) const {
    if (x.rows() != InputSize() || x.cols() == 0) {
      throw ShapeError("Predictor::Predict: the batch is " + std::to_string(x.rows()) + " x " +
                       std::to_string(x.cols()) + " but the model takes " +
                       std::to_string(InputSize()) + " values per sample (rows) and at least "
                       "one sample (column)");
    }
    Borrowed workspace(*pool_);
    logits = workspace.model->Forward(x);
  }

  /// Number of workspaces made so far: the peak number of concurrent Predict calls, plus one
  /// for each call that ended in an exception after its pass had started.
  std::size_t Workspaces() const {
    const std::lock_guard<std::mutex> lock(pool_->mutex);
    return pool_->made;
  }

 private:
  struct Pool {
    explicit Pool(ModelNN<T>&& frozen) : model(std::move(frozen)) {}
    ModelNN<T> model;  // frozen: never run, only copied and read
    std::mutex mutex;  // guards idle and made
    std::vector<std::unique_ptr<ModelNN<T>>> idle;
    std::size_t made = 0;
  };

  /// A workspace for the duration of one call: an idle one, or a new Clone() of the frozen
  /// model (copied outside the lock: the frozen model is only read). Returned to the pool
  /// when the call ends normally; dropped when it ends in an exception, since a pass that
  /// threw (out of memory) may have left the workspace's buffers half-resized.
  class Borrowed {
   public:
    explicit Borrowed(Pool& pool) : pool_(pool) {
      {
        const std::lock_guard<std::mutex> lock(pool_.mutex);
        if (!pool_.idle.empty()) {
          model = std::move(pool_.idle.back());
          pool_.idle.pop_back();
          return;
        }
      }
      model = std::make_unique<ModelNN<T>>(pool_.model.Clone());
      const std::lock_guard<std::mutex> lock(pool_.mutex);
      ++pool_.made;
    }
    ~Borrowed() {
      if (std::uncaught_exceptions() > uncaught_) return;  // unwinding: drop the workspace
      const std::lock_guard<std::mutex> lock(pool_.mutex);
      try {
        pool_.idle.push_back(std::move(model));
      } catch (...) {  // out of memory: drop the workspace; the next call makes another
      }
    }
    Borrowed(const Borrowed&) = delete;
    Borrowed& operator=(const Borrowed&) = delete;
    std::unique_ptr<ModelNN<T>> model;

   private:
    Pool& pool_;
    int uncaught_ = std::uncaught_exceptions();
  };

  // Behind a pointer so that a Predictor can be moved (a mutex cannot), e.g. into a
  // LoadedModel returned by value. A moved-from Predictor may only be destroyed or assigned.
  std::unique_ptr<Pool> pool_;
};

}  // namespace dlb
