# ---- fuzzing: libFuzzer targets (tests/fuzz/, docs/HARDENING.md) ------------
# Included from the top-level CMakeLists.txt. -DSTRATA_FUZZ=ON with clang as
# the C compiler builds tests/fuzz/fuzz_<name>.c as fuzz_<name> against the
# core compiled with -fsanitize=fuzzer-no-link,address,undefined, and
# fuzz_gen_seeds (the seed corpora). With another compiler the targets are
# built by scripts/fuzz.sh in a separate clang build dir: `make fuzz` runs
# that script with 0 seconds (build and seed only). scripts/fuzz.sh [SECONDS]
# builds, seeds and runs every target; scripts/test.sh runs it for 30 s each.
option(STRATA_FUZZ "build the libFuzzer targets (tests/fuzz/fuzz_*.c; needs clang)" OFF)
if(STRATA_FUZZ)
  if(CMAKE_C_COMPILER_ID MATCHES "Clang")
    set(STRATA_FUZZ_FLAGS -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer)
    add_library(strata_core_fuzz STATIC ${STRATA_CORE_SRC})
    target_include_directories(strata_core_fuzz PUBLIC ${CMAKE_SOURCE_DIR}/core)
    target_compile_options(strata_core_fuzz PUBLIC ${STRATA_FUZZ_FLAGS})
    target_link_libraries(strata_core_fuzz PUBLIC Threads::Threads m)
    if(NOT STRATA_PREFETCH)
      target_compile_definitions(strata_core_fuzz PUBLIC ST_NO_PREFETCH)
    endif()
    file(GLOB STRATA_FUZZ_SRC CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/fuzz/fuzz_*.c)
    foreach(src ${STRATA_FUZZ_SRC})
      get_filename_component(name ${src} NAME_WE)
      add_executable(${name} ${src})
      target_compile_definitions(${name} PRIVATE
        STRATA_SHARED_DIR="${STRATA_SHARED_DIR}" STRATA_SOURCE_DIR="${CMAKE_SOURCE_DIR}")
      target_link_options(${name} PRIVATE -fsanitize=fuzzer,address,undefined)
      target_link_libraries(${name} PRIVATE strata_core_fuzz)
    endforeach()
    pkg_check_modules(FUZZ_CJSON REQUIRED IMPORTED_TARGET libcjson)
    add_executable(fuzz_gen_seeds ${CMAKE_SOURCE_DIR}/tests/fuzz/gen_seeds.c)
    target_compile_definitions(fuzz_gen_seeds PRIVATE
      STRATA_SHARED_DIR="${STRATA_SHARED_DIR}" STRATA_SOURCE_DIR="${CMAKE_SOURCE_DIR}")
    target_link_libraries(fuzz_gen_seeds PRIVATE strata_core_asan PkgConfig::FUZZ_CJSON)
  else()
    message(STATUS "STRATA_FUZZ: ${CMAKE_C_COMPILER_ID} is not clang: `make fuzz` builds the targets with clang via scripts/fuzz.sh")
    add_custom_target(fuzz COMMAND bash ${CMAKE_SOURCE_DIR}/scripts/fuzz.sh 0
      WORKING_DIRECTORY ${CMAKE_SOURCE_DIR} USES_TERMINAL VERBATIM)
  endif()
endif()
