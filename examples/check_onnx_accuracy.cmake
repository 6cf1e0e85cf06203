# Checks that an exported ONNX model (export_onnx) classifies a test set exactly as the library
# does: ONNX Runtime's accuracy (tests/onnx/onnx_accuracy.js) must be the line
# predict_fashion_mnist prints, and the number of images predicted as each class must be the
# one predict_fashion_mnist prints without labels.
#   cmake -DPREDICT=... -DMODEL=m.safetensors -DONNX=m.onnx -DDATA=dir -DSHAPE=1,28,28|784
#         -DNODE=node -DORT_PREFIX=dir -DTOOLS=tests/onnx -P check_onnx_accuracy.cmake
# Prints "[skipped] ..." and succeeds when ONNX Runtime is not installed (CTest reads it as
# Skipped through SKIP_REGULAR_EXPRESSION).
if(NOT NODE OR NOT EXISTS "${ORT_PREFIX}/node_modules/onnxruntime-web/dist/ort.node.min.js")
  message("[skipped] ONNX Runtime: onnxruntime-web is not installed in ${ORT_PREFIX} (node: '${NODE}')")
  return()
endif()
set(images ${DATA}/t10k-images-idx3-ubyte.gz)
set(labels ${DATA}/t10k-labels-idx1-ubyte.gz)

function(run_checked out_var)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE code OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 300)
  if(NOT code EQUAL 0)
    message(FATAL_ERROR "${ARGN}\nexit code ${code}\nstdout:\n${out}\nstderr:\n${err}")
  endif()
  set(${out_var} "${out}" PARENT_SCOPE)
endfunction()

run_checked(library ${PREDICT} --model ${MODEL} --images ${images} --labels ${labels} --threads 1)
run_checked(library_counts ${PREDICT} --model ${MODEL} --images ${images} --threads 1)
run_checked(onnx ${NODE} ${TOOLS}/onnx_accuracy.js ${ORT_PREFIX} ${ONNX} ${images} ${labels} ${SHAPE})

string(REGEX MATCH "Accuracy: [0-9.]+ \\([0-9]+ of [0-9]+\\)" library_accuracy "${library}")
string(REGEX MATCH "Accuracy: [0-9.]+ \\([0-9]+ of [0-9]+\\)" onnx_accuracy "${onnx}")
if(NOT library_accuracy OR NOT library_accuracy STREQUAL onnx_accuracy)
  message(FATAL_ERROR "predict_fashion_mnist: '${library_accuracy}', ONNX Runtime: '${onnx_accuracy}'\n"
                      "predict_fashion_mnist:\n${library}\nonnx_accuracy.js:\n${onnx}")
endif()

# predict_fashion_mnist without labels lists "  <class name> <count>" in class order after
# "predictions per class"; onnx_accuracy.js lists "Predicted <class>: <count>".
string(REGEX REPLACE ".*predictions per class\n" "" per_class "${library_counts}")
string(REGEX MATCHALL "[0-9]+\n" library_list "${per_class}")
string(REGEX MATCHALL "Predicted [0-9]+: [0-9]+" onnx_lines "${onnx}")
set(onnx_list "")
foreach(line IN LISTS onnx_lines)
  string(REGEX REPLACE "Predicted [0-9]+: " "" count "${line}")
  list(APPEND onnx_list "${count}\n")
endforeach()
list(LENGTH library_list library_classes)
list(LENGTH onnx_list onnx_classes)
# ONNX Runtime's list ends at the last class predicted at least once.
while(onnx_classes LESS library_classes)
  list(APPEND onnx_list "0\n")
  math(EXPR onnx_classes "${onnx_classes} + 1")
endwhile()
if(NOT library_classes EQUAL 10 OR NOT "${library_list}" STREQUAL "${onnx_list}")
  message(FATAL_ERROR "predictions per class differ: predict_fashion_mnist [${library_list}], "
                      "ONNX Runtime [${onnx_list}]\n${library_counts}\n${onnx}")
endif()
message("Same accuracy (${library_accuracy}) and predictions per class from ONNX Runtime and "
        "predict_fashion_mnist")
