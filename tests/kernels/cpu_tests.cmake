# Tests of kernels/cpu, and a second registration of the kernel and engine tests with the
# scalar kernels forced (BASTION_CPU_KERNELS=scalar), so both run-time paths are checked on a
# machine with AVX2. Included from tests/kernels/CMakeLists.txt.

bastion_catch_test(kernels_cpu_kernels_test SOURCES cpu_kernels_test.cpp LIBS bastion_kernels)
bastion_catch_test(kernels_cpu_thread_pool_test SOURCES cpu_thread_pool_test.cpp LIBS bastion_kernels)
bastion_catch_test(kernels_cpu_backend_options_test SOURCES cpu_backend_options_test.cpp
                   LIBS bastion_kernels)

# The real model with the int8-activation numerics, against llama.cpp and transformers.
add_executable(kernels_cpu_smollm2_int8_test cpu_smollm2_int8_test.cpp)
target_include_directories(kernels_cpu_smollm2_int8_test PRIVATE ${PROJECT_SOURCE_DIR})
target_link_libraries(kernels_cpu_smollm2_int8_test PRIVATE bastion_kernels
                                                            nlohmann_json::nlohmann_json)
target_compile_definitions(kernels_cpu_smollm2_int8_test PRIVATE
                           BASTION_FIXTURES_DIR="${PROJECT_SOURCE_DIR}/tests/fixtures")
bastion_target_warnings(kernels_cpu_smollm2_int8_test)
add_test(NAME kernels_cpu_smollm2_int8_test COMMAND kernels_cpu_smollm2_int8_test)
set_tests_properties(kernels_cpu_smollm2_int8_test PROPERTIES SKIP_RETURN_CODE ${BASTION_SKIP_CODE}
                                                              TIMEOUT 600)

# Load-time Q8_0 requantization measured on the transformers fixtures (needs the HF loader).
if(TARGET bastion_kernels_hf)
  bastion_catch_test(kernels_cpu_requantize_test SOURCES cpu_requantize_test.cpp
                     LIBS bastion_kernels_hf nlohmann_json::nlohmann_json)
  target_compile_definitions(kernels_cpu_requantize_test PRIVATE
                             BASTION_FIXTURES_DIR="${PROJECT_SOURCE_DIR}/tests/fixtures")
endif()

set(bastion_cpu_path_tests
    kernels_test kernels_decoder_ops_test kernels_decoder_test kernels_generator_test
    kernels_batch_runner_test kernels_smollm2_engine_test kernels_smollm2_reference_test
    kernels_cpu_backend_options_test kernels_cpu_smollm2_int8_test)
if(TARGET kernels_hf_fixtures_test)
  list(APPEND bastion_cpu_path_tests kernels_hf_fixtures_test kernels_cpu_requantize_test)
endif()
foreach(t IN LISTS bastion_cpu_path_tests)
  get_test_property(${t} TIMEOUT t_timeout)
  add_test(NAME ${t}_scalar COMMAND ${t})
  set_tests_properties(${t}_scalar PROPERTIES ENVIRONMENT "BASTION_CPU_KERNELS=scalar"
                                              SKIP_RETURN_CODE ${BASTION_SKIP_CODE}
                                              TIMEOUT ${t_timeout})
endforeach()
