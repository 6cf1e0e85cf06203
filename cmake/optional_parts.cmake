# dlb_optional_part(VAR DESCRIPTION PACKAGE): the cache option VAR (AUTO, ON or OFF; AUTO by
# default in a top-level build, OFF otherwise) becomes ON or OFF for this configure run. AUTO
# turns the part on when PACKAGE (found again by the part's own CMakeLists with REQUIRED) is
# here, and says so either way; the cache keeps AUTO, so installing the package later turns
# the part on at the next configure.
# A macro, not a function: a package's config may set up more than its targets in the scope
# of its find_package (Catch2 adds its directory to CMAKE_MODULE_PATH for include(Catch),
# once per directory tree), so the probe must run in the top-level scope.
macro(dlb_optional_part var description package)
  if(PROJECT_IS_TOP_LEVEL)
    set(_dlb_default AUTO)
  else()
    set(_dlb_default OFF)
  endif()
  set(${var} ${_dlb_default} CACHE STRING "Build ${description}: AUTO (when ${package} is found), ON, OFF")
  set_property(CACHE ${var} PROPERTY STRINGS AUTO ON OFF)
  string(TOUPPER "$CACHE{${var}}" _dlb_value)
  if(_dlb_value STREQUAL "AUTO")
    if("${package}" STREQUAL "Catch2")
      find_package(Catch2 2.13 QUIET)
    else()
      find_package(${package} CONFIG QUIET)
    endif()
    if(${package}_FOUND)
      set(_dlb_value ON)
    else()
      set(_dlb_value OFF)
      message(STATUS "dlb: ${var}=AUTO: ${description} are left out (${package} not found)")
    endif()
  elseif(_dlb_value MATCHES "^(ON|1|TRUE|YES|Y)$")
    set(_dlb_value ON)
  elseif(_dlb_value MATCHES "^(OFF|0|FALSE|NO|N|)$")
    set(_dlb_value OFF)
  else()
    message(FATAL_ERROR "${var} is '$CACHE{${var}}': use AUTO, ON or OFF")
  endif()
  # A normal variable of the same name: if(${var}) here and in every subdirectory sees ON/OFF.
  set(${var} ${_dlb_value})
  unset(_dlb_default)
  unset(_dlb_value)
endmacro()
