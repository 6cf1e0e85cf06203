// The compiled part of DLBlocks for float: the definitions that include/dlb/compiled.hpp
// declares extern.
#define DLB_COMPILED_DEFINITIONS
#include "dlb/dlb.hpp"
#include "dlb/compiled.hpp"

DLB_COMPILED_TEMPLATES(, float)

// The configuration this library was compiled with (see dlb/compiled.hpp).
extern "C" const int DLB_COMPILED_ABI_SYMBOL = 1;
