// The include check of tests/compiled: the file primitives' umbrella header, whose
// non-template functions keep their bodies in impl/*.ipp files (dlb/core/linkage.hpp).
#include <dlb/io.hpp>
