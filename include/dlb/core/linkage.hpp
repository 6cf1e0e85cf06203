#pragma once
/// \file
/// Where the library's non-template functions are defined: in each program that includes
/// them (header-only, the default), or once, in the compiled part (the CMake target
/// dlb::compiled), as fmt and Asio do in their compiled modes.
///
/// A header whose functions are not templates declares them with DLB_INLINE and keeps their
/// bodies in a definitions file beside it, `impl/NAME.ipp` for `NAME.hpp`, which it includes
/// at its end when DLB_HEADER_DEFINITIONS is 1:
///  * header-only (none of the macros below defined): DLB_INLINE is `inline`, and every
///    translation unit that includes the header compiles the bodies (the one-definition rule
///    allows an inline function's identical copies);
///  * a program that links dlb::compiled (DLB_COMPILED, which the target defines) and the
///    library's own translation units (DLB_COMPILED_DEFINITIONS): declarations only; the
///    compiler reads neither the bodies nor the headers only they need (`<filesystem>`,
///    `<random>`, the POSIX file calls), and the linker takes the functions from the library;
///  * src/compiled/functions.cpp (DLB_COMPILED_FUNCTIONS): the bodies, DLB_INLINE empty:
///    the one definition of each function, with external linkage.
/// Code whose body depends on a configuration macro a program may set differently from the
/// library (OpenMP, the BLAS, Eigen's alignment) stays inline in its header.
///
/// The parts that need nlohmann-json (safetensors files, model files, checkpoints) follow the
/// same rule with DLB_SERIALIZATION_INLINE and DLB_SERIALIZATION_DEFINITIONS, keyed on
/// DLB_COMPILED_SERIALIZATION (dlb::compiled defines it where it was built with nlohmann-json,
/// in src/compiled/serialization.cpp, which defines DLB_COMPILED_SERIALIZATION_FUNCTIONS).
/// Their definitions files hold the templates that use JSON too (Save, LoadModel,
/// SaveCheckpoint ...): the library instantiates them for float and double, the only scalar
/// types a file can hold, so a program that links it reads neither those templates nor
/// `<nlohmann/json.hpp>` (about 1 s of compile time, more than Eigen/Core).

#if defined(DLB_COMPILED_FUNCTIONS)
#define DLB_INLINE
#define DLB_HEADER_DEFINITIONS 1
#elif defined(DLB_COMPILED) || defined(DLB_COMPILED_DEFINITIONS)
#define DLB_INLINE
#define DLB_HEADER_DEFINITIONS 0
#else
/// `inline` where the header holds the definitions (header-only); empty where dlb::compiled
/// holds the one definition.
#define DLB_INLINE inline
/// 1 where a header includes its definitions file (impl/NAME.ipp), 0 where the program links
/// dlb::compiled instead.
#define DLB_HEADER_DEFINITIONS 1
#endif

#if defined(DLB_COMPILED_SERIALIZATION_FUNCTIONS)
#define DLB_SERIALIZATION_INLINE
#define DLB_SERIALIZATION_DEFINITIONS 1
#elif defined(DLB_COMPILED_SERIALIZATION)
#define DLB_SERIALIZATION_INLINE
#define DLB_SERIALIZATION_DEFINITIONS 0
#else
/// DLB_INLINE for the parts that need nlohmann-json.
#define DLB_SERIALIZATION_INLINE inline
/// DLB_HEADER_DEFINITIONS for the parts that need nlohmann-json: 0 where the program links a
/// dlb::compiled built with it (DLB_COMPILED_SERIALIZATION).
#define DLB_SERIALIZATION_DEFINITIONS 1
#endif
