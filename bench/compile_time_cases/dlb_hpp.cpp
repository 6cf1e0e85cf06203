// bench/compile_time: the cost of the umbrella header alone.
#include <dlb/dlb.hpp>
