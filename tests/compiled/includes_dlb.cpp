// The include check of tests/compiled: the in-memory umbrella header alone.
#include <dlb/dlb.hpp>
