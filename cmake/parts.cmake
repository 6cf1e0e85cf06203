# The parts of DLBlocks beyond the in-memory library, each a target of its own so that a
# program links only the dependencies of the headers it includes:
#   dlb::dlb            <dlb/dlb.hpp>: Eigen, threads (OpenMP, BLAS when configured); no zlib,
#                       no nlohmann-json, no libdl
#   dlb::io             <dlb/io.hpp>: dlb::dlb + zlib (IDX / Fashion-MNIST files, gzip)
#   dlb::serialization  <dlb/serialization.hpp>: dlb::io + nlohmann-json (model files,
#                       checkpoints, safetensors); defined only when nlohmann-json is found
#   dlb::compiled       the optional compiled part: a static library that instantiates the
#                       layers, losses, optimizers, model and training for float and double
#                       once (src/compiled/), and defines DLB_COMPILED for its users so that
#                       <dlb/dlb.hpp> declares those instantiations extern (dlb/compiled.hpp)
#                       and their translation units skip them; likewise the file readers,
#                       the ONNX export and (with nlohmann-json, DLB_COMPILED_SERIALIZATION)
#                       model files and checkpoints, declared extern in their own headers.
#                       Header-only stays the default.
# (dlb::mpi, for <dlb/distributed.hpp>, is in cmake/mpi.cmake.)

add_library(dlb_io INTERFACE)
add_library(dlb::io ALIAS dlb_io)
set_target_properties(dlb_io PROPERTIES EXPORT_NAME io)
target_link_libraries(dlb_io INTERFACE dlb ZLIB::ZLIB)
set(dlb_part_targets dlb_io)

if(nlohmann_json_FOUND)
  add_library(dlb_serialization INTERFACE)
  add_library(dlb::serialization ALIAS dlb_serialization)
  set_target_properties(dlb_serialization PROPERTIES EXPORT_NAME serialization)
  target_link_libraries(dlb_serialization INTERFACE dlb_io nlohmann_json::nlohmann_json)
  list(APPEND dlb_part_targets dlb_serialization)
else()
  message(STATUS "dlb: nlohmann-json not found: no dlb::serialization (model files and "
                 "checkpoints; install nlohmann-json3-dev)")
endif()

# The compiled part is built where it is used: a project that adds DLBlocks with
# add_subdirectory() or FetchContent builds it with its own flags when it links dlb::compiled.
# It is installed only on request (DLB_INSTALL_COMPILED): an installed static library carries
# the flags it was built with, and a program built with others cannot link it (see below), so
# the default install builds nothing and needs nothing but the headers.
# Its objects must see Eigen as the program does (same -march: Eigen's alignment of matrix
# data follows the instruction set), so it takes the project's flags and none of its own; a
# mismatch of Eigen's alignment is refused at link time (see dlb/compiled.hpp). With no
# build type it would be compiled without optimisation, slower than the header-only library
# in an optimised program: -O2 then.
option(DLB_INSTALL_COMPILED "Build and install dlb::compiled with the headers" OFF)
add_library(dlb_compiled STATIC
  ${PROJECT_SOURCE_DIR}/src/compiled/instantiate_float.cpp
  ${PROJECT_SOURCE_DIR}/src/compiled/instantiate_double.cpp)
add_library(dlb::compiled ALIAS dlb_compiled)
set_target_properties(dlb_compiled PROPERTIES EXPORT_NAME compiled POSITION_INDEPENDENT_CODE ON)
if(NOT (DLB_INSTALL AND DLB_INSTALL_COMPILED))
  set_target_properties(dlb_compiled PROPERTIES EXCLUDE_FROM_ALL ON)
endif()
# The file and export code (src/compiled/files.cpp) and the non-template functions that
# headers define in impl/*.ipp files (functions.cpp, see dlb/core/linkage.hpp) need zlib;
# model files and checkpoints (serialization.cpp) need nlohmann-json, and are compiled in
# only where it is found: the target then defines DLB_COMPILED_SERIALIZATION, under which
# their headers declare them extern. A program that does not call them links none of these
# objects.
target_sources(dlb_compiled PRIVATE ${PROJECT_SOURCE_DIR}/src/compiled/files.cpp
                                    ${PROJECT_SOURCE_DIR}/src/compiled/functions.cpp)
target_link_libraries(dlb_compiled PUBLIC dlb_io)
target_compile_definitions(dlb_compiled INTERFACE DLB_COMPILED)
if(TARGET dlb_serialization)
  target_sources(dlb_compiled PRIVATE ${PROJECT_SOURCE_DIR}/src/compiled/serialization.cpp)
  target_link_libraries(dlb_compiled PUBLIC dlb_serialization)
  target_compile_definitions(dlb_compiled INTERFACE DLB_COMPILED_SERIALIZATION)
endif()
target_compile_options(dlb_compiled PRIVATE $<$<CONFIG:>:-O2>)
if(DLB_INSTALL AND DLB_INSTALL_COMPILED)
  list(APPEND dlb_part_targets dlb_compiled)
endif()

if(DLB_INSTALL)
  install(TARGETS ${dlb_part_targets} EXPORT dlbTargets)
endif()

# Every part that this configuration has, for the project's own tests, examples, benchmarks
# and fuzzers (not installed).
add_library(dlb_all INTERFACE)
if(TARGET dlb_serialization)
  target_link_libraries(dlb_all INTERFACE dlb_serialization)
else()
  target_link_libraries(dlb_all INTERFACE dlb_io)
endif()
