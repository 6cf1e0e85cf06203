// Included first by every header under include/dlb/*/internal/: those hold the library's
// private parts, reached only through the public headers that use them, which define
// DLB_PUBLIC_HEADER before including them (as Eigen guards its src/ headers). No include
// guard: the check runs wherever it is included.
#ifndef DLB_PUBLIC_HEADER
#error "the headers under dlb/*/internal/ are private to DLBlocks: include the public header that uses them (e.g. dlb/model/model.hpp) or <dlb/dlb.hpp>"
#endif
