// The compiled part of DLBlocks for the non-template functions: the one definition of each
// function that a header declares with DLB_INLINE and defines in its impl/*.ipp file (see
// dlb/core/linkage.hpp). Programs that link dlb::compiled read only the declarations.
#define DLB_COMPILED_FUNCTIONS
#include "dlb/core/cpu_count.hpp"
#include "dlb/core/parallel.hpp"
#include "dlb/core/state.hpp"
#include "dlb/data/augmentation.hpp"
#include "dlb/data/fashion_mnist.hpp"
#include "dlb/data/idx.hpp"
#include "dlb/io/atomic_file.hpp"
#include "dlb/io/compressed_file.hpp"
#include "dlb/io/posix_file.hpp"
#include "dlb/io/same_file.hpp"
#include "dlb/layers/layer_options.hpp"
#include "dlb/training/progress.hpp"
