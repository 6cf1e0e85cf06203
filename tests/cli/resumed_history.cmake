# Checks the history file of a resumed run: RESUMED must begin with INTERRUPTED, the file
# the interrupted run wrote, byte for byte (the checkpoint's rows, seconds included), and
# hold the uninterrupted run's FULL rows in every column but the last (seconds, wall time).
#   cmake -DFULL=a.csv -DINTERRUPTED=b.csv -DRESUMED=c.csv -P resumed_history.cmake
foreach(file FULL INTERRUPTED RESUMED)
  if(NOT EXISTS "${${file}}")
    message(FATAL_ERROR "${file}: ${${file}} does not exist")
  endif()
  file(READ "${${file}}" ${file}_text)
endforeach()
string(LENGTH "${INTERRUPTED_text}" prefix_length)
string(SUBSTRING "${RESUMED_text}" 0 ${prefix_length} prefix)
if(NOT prefix STREQUAL INTERRUPTED_text)
  message(FATAL_ERROR "${RESUMED} does not begin with the interrupted run's file ${INTERRUPTED}:\n"
                      "${RESUMED_text}\n--- interrupted run:\n${INTERRUPTED_text}")
endif()
# Every line without its last column.
foreach(file FULL RESUMED)
  string(REGEX REPLACE ",[^,\n]*\n" "\n" ${file}_columns "${${file}_text}")
endforeach()
if(NOT RESUMED_columns STREQUAL FULL_columns)
  message(FATAL_ERROR "${RESUMED} differs from the uninterrupted run's ${FULL} (seconds aside):\n"
                      "${RESUMED_columns}\n--- uninterrupted run:\n${FULL_columns}")
endif()
