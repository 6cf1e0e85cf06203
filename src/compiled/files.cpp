// The compiled part of DLBlocks for the file and export code that needs no JSON: reading
// Fashion-MNIST (with the IDX and gzip code under it), the CSV history logger and the ONNX
// export, for float and double. Their headers declare these extern under DLB_COMPILED.
#define DLB_COMPILED_DEFINITIONS
#include "dlb/io.hpp"
#include "dlb/onnx.hpp"

namespace dlb {
DLB_COMPILED_FASHION_MNIST(, float)
DLB_COMPILED_FASHION_MNIST(, double)
DLB_COMPILED_HISTORY_CSV_LOGGER(, float)
DLB_COMPILED_HISTORY_CSV_LOGGER(, double)
DLB_COMPILED_ONNX(, float)
DLB_COMPILED_ONNX(, double)
}  // namespace dlb
