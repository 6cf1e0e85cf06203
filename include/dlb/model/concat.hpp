#pragma once
/// \file
/// Concat: branches that each read the block's input, their outputs stacked along the
/// channels (torch.cat(dim=1) of the branches, as in an Inception module).

#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "dlb/core/checked.hpp"
#include "dlb/core/error.hpp"
#include "dlb/core/parameter.hpp"
#include "dlb/core/random.hpp"
#include "dlb/core/shape.hpp"
#include "dlb/core/state.hpp"
#include "dlb/core/types.hpp"
#include "dlb/layers/elementwise.hpp"
#include "dlb/layers/layer.hpp"
#include "dlb/layers/layer_options.hpp"
#include "dlb/layers/layer_spec.hpp"
#ifndef DLB_PUBLIC_HEADER
#define DLB_PUBLIC_HEADER
#endif
#include "dlb/model/internal/any_layer.hpp"
#include "dlb/model/internal/named_layers.hpp"

namespace dlb {

/// Concat has no arguments of its own; its spec lists its branches.
using ConcatOptions = NoArgumentOptions<"Concat">;

/// y = [branch_0(x); branch_1(x); ...] stacked along the channels.
///
/// Represents: named branches (any layers; a Sequential for a chain), each applied to the
/// block's input, and the buffers of the latest pass.
/// Shapes: every branch must produce the same height x width from the input; the output has
/// the sum of their channels (with flat outputs {n}, the features are concatenated). Because
/// a sample is stored channel-major, branch b's output is one contiguous run of rows of y.
/// State: each branch's under its name ("branch1.0.weight").
/// Backward: dX is the sum of the branches' input gradients, each branch reading its own rows
/// of dY in place.
template <Scalar T = float>
class Concat : public DescribedBy<ConcatOptions> {
 public:
  using Scalar = T;

  Concat() : DescribedBy<ConcatOptions>(ConcatOptions{}) {}

  /// Appends a branch named by its index (or `name`); see Sequential::Add.
  template <class L>
  Concat& Add(L layer) & {
    return Add(branches_.NextIndexName(), std::move(layer));
  }
  template <class L>
  Concat&& Add(L layer) && {
    return std::move(Add(branches_.NextIndexName(), std::move(layer)));
  }
  template <class L>
  Concat& Add(std::string name, L layer) & {
    static_assert(Layer<L>, "dlb::Concat::Add: this type does not satisfy the dlb::Layer concept "
                            "(see dlb/layers/layer.hpp).");
    if constexpr (Layer<L>) {
      static_assert(std::is_same_v<typename L::Scalar, T>,
                    "dlb::Concat::Add: the layer's Scalar type differs from the block's.");
      AddPointer(std::move(name), internal::MakeLayerPointer(std::move(layer)));
    }
    return *this;
  }
  template <class L>
  Concat&& Add(std::string name, L layer) && {
    return std::move(Add(std::move(name), std::move(layer)));
  }
  /// Appends a branch built at run time (by a LayerRegistry).
  Concat& AddPointer(std::string name, internal::LayerPointer<T> layer) {
    if (input_size_ != 0) {
      throw Error("Concat::Add: this block already has an input shape (it is part of a model); "
                  "add its branches before adding the block");
    }
    branches_.RequireNewName("Concat", name);
    branches_.Append(std::move(name), std::move(layer));
    outputs_.emplace_back();
    return *this;
  }

  static LayerExample<Concat> Example();

  /// "Concat(2 branches)".
  std::string Name() const {
    return "Concat(" + std::to_string(branches_.Size()) + " branch" +
           (branches_.Size() == 1 ? "" : "es") + ")";
  }

  /// The branches' outputs stacked along the channels. Throws ShapeError for a block without
  /// branches or branches of different heights or widths, LayerShapeError for a branch that
  /// does not accept the input.
  Shape OutputShape(const Shape& input) const {
    if (branches_.Empty()) throw ShapeError("has no branches");
    Shape output{0, 0, 0};
    for (const auto& node : branches_.Nodes()) {
      const Shape branch = internal::ForChild(node.name, *node.layer,
                                              [&] { return node.layer->OutputShape(input); });
      if (output.channels == 0) {
        output = branch;
      } else if (branch.height != output.height || branch.width != output.width) {
        throw ShapeError("cannot stack branch '" + node.name + "' (" + branch.ToString() +
                         ") on the branches before it (" + output.ToString() +
                         "): every branch must give the same height and width");
      } else {
        output.channels = CheckedAdd(output.channels, branch.channels, "Concat: the channels");
      }
    }
    return output;
  }

  void SetInputShape(const Shape& input) {
    const Shape output = OutputShape(input);
    for (auto& node : branches_.Nodes()) {
      internal::ForChild(node.name, *node.layer, [&] { node.layer->SetInputShape(input); });
    }
    input_size_ = input.Size();
    output_size_ = output.Size();
  }

  void Forward(const ConstMatrixRef<T>& x, Matrix<T>& y, Mode mode) {
    Index offset = 0;
    for (std::size_t b = 0; b < branches_.Size(); ++b) {
      branches_[b].layer->Forward(x, outputs_[b], mode);
      if (b == 0) y.resize(output_size_, x.cols());
      const Index rows = outputs_[b].rows();
      ForColumnBlocks(rows, x.cols(), [&](Index c, Index n) {
        y.middleCols(c, n).middleRows(offset, rows) = outputs_[b].middleCols(c, n);
      });
      offset += rows;
    }
  }

  void Backward(const ConstMatrixRef<T>& x, const ConstMatrixRef<T>& /*y*/,
                const ConstMatrixRef<T>& dy, Matrix<T>* dx) {
    Index offset = 0;
    for (std::size_t b = 0; b < branches_.Size(); ++b) {
      const Index rows = outputs_[b].rows();
      const ConstMatrixRef<T> grad_out = dy.middleRows(offset, rows);  // in place, strided
      Matrix<T>* grad_in = dx == nullptr ? nullptr : b == 0 ? dx : &grad_branch_;
      branches_[b].layer->Backward(x, outputs_[b], grad_out, grad_in);
      if (grad_in != nullptr && b > 0) {
        ForColumnBlocks(dx->rows(), dx->cols(),
                        [&](Index c, Index n) { dx->middleCols(c, n) += grad_branch_.middleCols(c, n); });
      }
      offset += rows;
    }
  }

  std::vector<Parameter<T>> Parameters() { return branches_.Parameters(); }
  std::vector<StateRef<T>> State() { return branches_.State(); }
  void Init(Generator& gen) { branches_.Init(gen); }
  std::vector<internal::Child<T>> Children() { return branches_.Children(); }

  /// "Concat" with the branches' specs.
  LayerSpec Spec() const {
    LayerSpec spec = DescribedBy<ConcatOptions>::Spec();
    spec.children = branches_.Specs();
    return spec;
  }

  /// The branches' memory, and the output buffer and input gradient of each.
  Index ValuesPerSample() const {
    const Index values = branches_.ValuesPerSample("Concat");
    return CheckedAdd(values, CheckedMultiply(2, CheckedAdd(input_size_, output_size_, "Concat"), "Concat"),
                      "Concat: the memory per sample");
  }

  /// The block a spec describes, each branch built by `build` (a LayerRegistry's factory).
  static Concat FromSpec(const LayerArgs& args, const internal::BuildChild<T>& build) {
    Concat block;
    for (const auto& [name, spec] : args.Spec().children) block.AddPointer(name, build(name, spec));
    return block;
  }

  Index NumBranches() const { return static_cast<Index>(branches_.Size()); }

 private:
  internal::NamedLayers<T> branches_;
  Index input_size_ = 0;
  Index output_size_ = 0;
  std::vector<Matrix<T>> outputs_;
  Matrix<T> grad_branch_;
};

}  // namespace dlb
