# Runs PROGRAM ARGS in one process and `MPIRUN PROGRAM ARGS --distributed` (2 ranks), and
# checks that both print the same epoch lines and test accuracy (the time column aside),
# each once: the ranks reproduce the single process and only rank 0 prints.
#   cmake -DMPIRUN="mpiexec;-n;2" -DPROGRAM=... -DARGS="a;b" -P same_as_one_process.cmake
function(run_table out_var)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE code OUTPUT_VARIABLE out ERROR_VARIABLE err
                  TIMEOUT 100)
  if(NOT code STREQUAL "0")
    message(FATAL_ERROR "${ARGN}\nexit code ${code}\nstdout:\n${out}\nstderr:\n${err}")
  endif()
  # The epoch summaries only (the time column aside). Should a live progress line appear
  # ("Epoch 1 / 2 | batch 3 / 18 ...", no colon; it should not, as mpirun writes to a pipe
  # here: "output to a pipe has no live line" checks that), it would differ in its timing.
  string(REGEX MATCHALL "(Epoch +[0-9]+ / [0-9]+: [^\n]*|Test accuracy: [0-9.]+)" lines "${out}")
  string(REGEX REPLACE "Epoch Time: *[0-9.]+" "" lines "${lines}")
  set(${out_var} "${lines}" PARENT_SCOPE)
  set(${out_var}_raw "${out}" PARENT_SCOPE)
endfunction()

run_table(single ${PROGRAM} ${ARGS})
run_table(parallel ${MPIRUN} ${PROGRAM} ${ARGS} --distributed)
if(NOT parallel_raw MATCHES "Data parallel: 2 rank\\(s\\) x ")
  message(FATAL_ERROR "no data-parallel summary line:\n${parallel_raw}")
endif()
if(NOT single MATCHES "Test accuracy" OR NOT single STREQUAL parallel)
  message(FATAL_ERROR "one process printed\n${single_raw}\n2 ranks printed\n${parallel_raw}")
endif()
