// bench/compile_time: the reference, Eigen/Core alone.
#include <Eigen/Core>
