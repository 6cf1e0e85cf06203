# Runs COMMAND (a list) with its output captured (a pipe, as `mpirun ... > log` gives a file)
# and checks that it succeeded, printed EXPECT_REGEX, and wrote no carriage return and no
# escape code: the live progress line belongs on terminals only, and Open MPI gives ranks a
# pseudo-terminal of their own even when mpirun writes to a file or a pipe.
#   cmake "-DCOMMAND=mpirun;-n;2;prog;--distributed" -DEXPECT_REGEX=... -P no_terminal_codes.cmake
execute_process(COMMAND ${COMMAND} RESULT_VARIABLE code OUTPUT_VARIABLE out ERROR_VARIABLE err
                TIMEOUT 100)
if(NOT code STREQUAL "0")
  message(FATAL_ERROR "${COMMAND}\nexit code ${code}\nstdout:\n${out}\nstderr:\n${err}")
endif()
if(NOT out MATCHES "${EXPECT_REGEX}")
  message(FATAL_ERROR "stdout does not match '${EXPECT_REGEX}':\n${out}")
endif()
string(ASCII 27 escape)
foreach(code_name "carriage return" "escape")
  if(code_name STREQUAL "escape")
    set(character "${escape}")
  else()
    set(character "\r")
  endif()
  string(FIND "${out}" "${character}" at)
  if(NOT at EQUAL -1)
    string(REPLACE "${escape}" "<ESC>" shown "${out}")
    string(REPLACE "\r" "<CR>" shown "${shown}")
    message(FATAL_ERROR "stdout holds a ${code_name} at byte ${at}:\n${shown}")
  endif()
endforeach()
