// Includes a private header directly: the compile must stop with the header check's message
// (tests/CMakeLists.txt, "internal headers ...").
#include "dlb/model/internal/any_layer.hpp"
