# Writes OUT with STRATA_BUILD_COMMIT = `git describe --always --dirty` of SRC
# ("unknown" without git or outside a checkout). Run at every build by the
# strata_build_commit target; the file changes only when the commit does.
set(c "")
if(GIT)
  execute_process(COMMAND ${GIT} describe --always --dirty
    WORKING_DIRECTORY ${SRC} OUTPUT_VARIABLE c RESULT_VARIABLE r
    OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
  if(NOT r EQUAL 0)
    set(c "")
  endif()
endif()
if(c STREQUAL "")
  set(c "unknown")
endif()
set(content "#define STRATA_BUILD_COMMIT \"${c}\"\n")
set(old "")
if(EXISTS ${OUT})
  file(READ ${OUT} old)
endif()
if(NOT old STREQUAL content)
  file(WRITE ${OUT} "${content}")
endif()
