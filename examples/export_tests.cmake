# export_onnx: the program, and its CTest cases on the stand-in data set. Included
# from examples/CMakeLists.txt after its tests, whose functions, fixtures and variables it
# uses (dlb_program_test, fake_data, plain_full, fake_dir, io, saved_model).
#
# The exported MLP (train_fashion_mnist --save, fixture plain_full) and a CNN trained for one
# epoch here are checked by ONNX's checker and run by ONNX Runtime over the fake test set:
# the accuracy and the predictions per class must be predict_fashion_mnist's
# (check_onnx_accuracy.cmake).

add_executable(export_onnx export_onnx.cpp)
target_include_directories(export_onnx PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
target_link_libraries(export_onnx PRIVATE dlb_all ${DLB_EXAMPLE_FLAGS} CLI11::CLI11)

if(DLB_BUILD_TESTS)
  set(onnx_dir ${CMAKE_CURRENT_BINARY_DIR}/onnx-export)
  file(MAKE_DIRECTORY ${onnx_dir})
  dlb_program_test(export_onnx "help" 0 "opset 17.*--model.*--output" --help)
  dlb_program_test(export_onnx "--model and --output are required" 2 "--model is required"
    --output ${onnx_dir}/never.onnx)
  dlb_program_test(export_onnx "--output in a missing directory" 2
    "--output: .*cannot write: the directory .*/missing does not exist"
    --model ${saved_model} --output ${onnx_dir}/missing/model.onnx)
  dlb_program_test(export_onnx "a file that is not a model" 1
    "export_onnx: error: .*t10k-labels-idx1-ubyte.gz: at byte 0: the header length"
    --model ${fake_dir}/t10k-labels-idx1-ubyte.gz --output ${onnx_dir}/never.onnx)

  # The models: the MLP of the other tests, and a CNN trained for one epoch.
  set(onnx_mlp ${onnx_dir}/mlp.onnx)
  set(cnn_model ${onnx_dir}/cnn.safetensors)
  set(onnx_cnn ${onnx_dir}/cnn.onnx)
  dlb_program_test(train_fashion_mnist "a CNN to export" 0 "Model saved to .*cnn.safetensors"
    --data ${fake_dir} --model cnn --epochs 1 --batch 32 --threads 1 --save ${cnn_model})
  dlb_program_test(export_onnx "the MLP" 0
    "Wrote .*mlp.onnx: ONNX IR 8, opset 17, [0-9]+ nodes, 8 initializers, [0-9]+ bytes.  input  'input' float32 N x 784: raw samples, standardized inside the graph.*output 'output' float32 N x 10"
    --model ${saved_model} --output ${onnx_mlp})
  dlb_program_test(export_onnx "the CNN" 0
    "BatchNorm2D[(]32[)].*Wrote .*cnn.onnx: ONNX IR 8, opset 17, [0-9]+ nodes, 18 initializers.*input  'input' float32 N x 1 x 28 x 28: raw samples, standardized.*output 'output' float32 N x 10"
    --model ${cnn_model} --output ${onnx_cnn})
  set_tests_properties("train_fashion_mnist: a CNN to export" PROPERTIES FIXTURES_SETUP onnx_cnn_model)
  set_tests_properties("export_onnx: the MLP" PROPERTIES FIXTURES_REQUIRED "fake_data;plain_full"
                                                          FIXTURES_SETUP onnx_mlp)
  set_tests_properties("export_onnx: the CNN" PROPERTIES FIXTURES_REQUIRED "fake_data;onnx_cnn_model"
                                                          FIXTURES_SETUP onnx_cnn)
  set_tests_properties("export_onnx: --output in a missing directory" PROPERTIES FIXTURES_REQUIRED "fake_data;plain_full")

  # ONNX's checker (python3 with Debian's python3-onnx; DLB_PYTHON3 from tests/python).
  if(DLB_PYTHON3)
    execute_process(COMMAND ${DLB_PYTHON3} -c "import onnx" RESULT_VARIABLE onnx_status
                    OUTPUT_QUIET ERROR_QUIET)
    if(onnx_status EQUAL 0)
      add_test(NAME "export_onnx: ONNX's checker accepts the exported MLP and CNN"
               COMMAND ${DLB_PYTHON3} -B ${PROJECT_SOURCE_DIR}/tests/onnx/check_onnx_model.py
                       ${onnx_mlp} ${onnx_cnn})
      set_tests_properties("export_onnx: ONNX's checker accepts the exported MLP and CNN"
        PROPERTIES FIXTURES_REQUIRED "onnx_mlp;onnx_cnn")
    endif()
  endif()

  # ONNX Runtime over the fake test set: the accuracy predict_fashion_mnist prints.
  function(dlb_onnx_accuracy_test label model onnx shape fixtures)
    set(name "export_onnx: ONNX Runtime's accuracy on the fake test set is predict_fashion_mnist's (${label})")
    add_test(NAME "${name}"
      COMMAND ${CMAKE_COMMAND} "-DPREDICT=$<TARGET_FILE:predict_fashion_mnist>" -DMODEL=${model}
              -DONNX=${onnx} -DDATA=${fake_dir} -DSHAPE=${shape} "-DNODE=${DLB_NODE}"
              -DORT_PREFIX=${CMAKE_BINARY_DIR}/onnxruntime -DTOOLS=${PROJECT_SOURCE_DIR}/tests/onnx
              -P ${CMAKE_CURRENT_SOURCE_DIR}/check_onnx_accuracy.cmake)
    set_tests_properties("${name}" PROPERTIES
      FIXTURES_REQUIRED "fake_data;dlb_onnxruntime_web;${fixtures}"
      SKIP_REGULAR_EXPRESSION "\\[skipped\\]" TIMEOUT 600)
  endfunction()
  dlb_onnx_accuracy_test(MLP ${saved_model} ${onnx_mlp} 784 "plain_full;onnx_mlp")
  dlb_onnx_accuracy_test(CNN ${cnn_model} ${onnx_cnn} 1,28,28 "onnx_cnn_model;onnx_cnn")
endif()
