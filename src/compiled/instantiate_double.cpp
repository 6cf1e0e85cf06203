// The compiled part of DLBlocks for double: the definitions that include/dlb/compiled.hpp
// declares extern.
#define DLB_COMPILED_DEFINITIONS
#include "dlb/dlb.hpp"
#include "dlb/compiled.hpp"

DLB_COMPILED_TEMPLATES(, double)
