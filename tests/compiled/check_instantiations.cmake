# Checks that an object built with DLB_COMPILED defines none of the instantiations that
# dlb::compiled provides, while the same source built header-only does (so that the check can
# fail).   cmake -DNM=nm -DCOMPILED=a.o -DHEADER_ONLY=b.o [-DSERIALIZATION=1] -P check_instantiations.cmake
# Symbols looked for: code that only an instantiation of the layer adapter, the model, the
# training loop, the ONNX export or (with -DSERIALIZATION=1) the model files would define,
# including a non-template function that only those instantiations call (ParseLayers): the
# extern declarations of LoadModel also keep the JSON code out of the program's object; and
# non-template functions the program calls itself (WriteFileAtomically, SameFile) or that the
# inline code it compiles calls (the state dictionary's, the layer specs'), which their headers
# only declare under DLB_COMPILED (dlb/core/linkage.hpp).
set(patterns
  "dlb::internal::LayerAdapter<dlb::Linear<float> >::Forward"
  "dlb::Linear<float>::Forward"
  "dlb::ModelNN<float>::Backward"
  "dlb::TrainModel<float, dlb::CrossEntropyLoss<float> >"
  "dlb::internal::LayerAdapter<dlb::Conv2D<double> >::Backward"
  "dlb::ExportOnnxModel<double>"
  "dlb::WriteFileAtomically"
  "dlb::SameFile"
  "dlb::StateDict::Insert"
  "dlb::LayerArgs::Find"
  "dlb::AppendSpecArgument"
  "dlb::ShapeText")
if(SERIALIZATION)
  list(APPEND patterns "dlb::LoadModel<float>" "dlb::Save<float>" "dlb::internal::ParseLayers"
       "dlb::ReadSafetensors")
endif()
function(defined_symbols object out)
  execute_process(COMMAND ${NM} -C --defined-only ${object}
                  RESULT_VARIABLE code OUTPUT_VARIABLE symbols ERROR_VARIABLE err)
  if(NOT code EQUAL 0)
    message(FATAL_ERROR "${NM} ${object} failed (${code}): ${err}")
  endif()
  set(${out} "${symbols}" PARENT_SCOPE)
endfunction()
defined_symbols(${COMPILED} compiled)
defined_symbols(${HEADER_ONLY} header_only)
set(failures "")
foreach(pattern IN LISTS patterns)
  string(FIND "${compiled}" "${pattern}" in_compiled)
  string(FIND "${header_only}" "${pattern}" in_header_only)
  if(NOT in_compiled EQUAL -1)
    string(APPEND failures "the DLB_COMPILED object defines ${pattern}: its extern declaration did not hold\n")
  endif()
  if(in_header_only EQUAL -1)
    string(APPEND failures "the header-only object does not define ${pattern}: the check cannot see it\n")
  endif()
endforeach()
if(failures)
  message(FATAL_ERROR "${failures}")
endif()
list(LENGTH patterns count)
message(STATUS "${count} functions: in the header-only object, not in the DLB_COMPILED one")
