# The device-check kit (included by CMakeLists.txt when UPFRAME_DEVICE_KIT is ON): the model
# reader, graph, CUDA executor, dedup and colour kernels and the check program, built with nvcc,
# cuDNN and the C++ standard library alone, as on the GPU machine (no FFmpeg, oneDNN, spdlog).
#
# Excluded (they need FFmpeg, oneDNN or spdlog; the kit compares with their results carried in
# tools/device-check/refs instead): src/media (decode, encode, NVDEC through libavcodec),
# src/pipeline and src/config, the CPU executor (oneDNN), src/dedup/detector.cpp and luma.cpp
# (they take FFmpeg frames), src/upscale except the colour kernels, src/core's frame, log and
# device-probe code (the kit's own log line and device query replace them), the CLI.
if(NOT UPFRAME_CUDA)
  message(FATAL_ERROR "upframe: UPFRAME_DEVICE_KIT needs the CUDA backend: ${UPFRAME_CUDA_WHY}")
endif()
find_package(Threads REQUIRED)

set(kit_sources
  src/core/error.cpp src/core/tile_mask.cpp
  src/nn/graph.cpp src/nn/reader.cpp src/nn/ncnn_layers.cpp src/nn/model.cpp src/nn/tiling.cpp
  src/nn/subgraph.cpp
  src/nn/graph_runner.cpp src/nn/cuda_memory_plan.cpp
  src/nn/cuda/cuda_executor.cu src/nn/cuda/conv.cu src/nn/cuda/ops.cu
  src/dedup/hash.cpp src/dedup/kernels.cpp src/dedup/dsp.cpp src/dedup/dsp_sse2.cpp
  src/dedup/measures.cpp src/dedup/cuda/device_dedup.cu
  src/upscale/cuda/device_colour.cu
  tools/device-check/device_check.cpp tools/device-check/kit_log.cpp
  tools/device-check/nvdec_decode.cpp)

# A proof that nothing above includes FFmpeg, oneDNN or spdlog even where they are installed
# (CI's machine): each of their headers found on this machine is shadowed by one that stops
# the compile. On the GPU machine there are none to shadow.
set(poison_dir ${CMAKE_BINARY_DIR}/poisoned-headers)
file(REMOVE_RECURSE ${poison_dir})
set(poisoned 0)
foreach(root /usr/include /usr/include/${CMAKE_LIBRARY_ARCHITECTURE} /usr/local/include)
  file(GLOB_RECURSE found RELATIVE ${root}
       ${root}/libavutil/*.h ${root}/libavcodec/*.h ${root}/libavformat/*.h
       ${root}/libswscale/*.h ${root}/libavfilter/*.h ${root}/spdlog/*.h ${root}/fmt/*.h
       ${root}/oneapi/dnnl/*.h ${root}/oneapi/dnnl/*.hpp ${root}/dnnl*.h ${root}/dnnl*.hpp
       ${root}/nlohmann/*.hpp ${root}/CLI/*.hpp ${root}/toml++/*.h)
  foreach(header IN LISTS found)
    file(WRITE ${poison_dir}/${header}
         "#error \"the device-check kit must build without FFmpeg, oneDNN and spdlog: "
         "${header} was included\"\n")
    math(EXPR poisoned "${poisoned} + 1")
  endforeach()
endforeach()
message(STATUS "upframe: device-check kit only; ${poisoned} FFmpeg/oneDNN/spdlog headers of this "
               "machine shadowed by errors")

add_executable(upframe_device_check ${kit_sources})
target_include_directories(upframe_device_check BEFORE PRIVATE ${poison_dir})
# tests: the op catalogue (tests/nn/op_cases.hpp, gtest-free).
target_include_directories(upframe_device_check PRIVATE include src tools tests)
# NVDEC without FFmpeg: nv-codec-headers' declarations and loader (vendored, MIT; see there).
target_include_directories(upframe_device_check SYSTEM PRIVATE tools/device-check/third_party)
target_compile_options(upframe_device_check PRIVATE ${UPFRAME_WARNINGS})
target_compile_definitions(upframe_device_check PRIVATE UPFRAME_DEVICE_KIT=1)
# No fused multiply-add in the colour kernels: the same float results as the CPU reference.
set_source_files_properties(src/upscale/cuda/device_colour.cu PROPERTIES COMPILE_OPTIONS
                            --fmad=false)
# The CUDA runtime linked statically: a kit built on another machine runs on the GPU machine
# without that machine's libcudart (the script puts cuDNN's folder on the library path; cuDNN 9
# needs no libcudart). NVML (the driver's GPU-utilisation counter) is opened with dlopen.
target_include_directories(upframe_device_check PRIVATE ${CUDNN_INCLUDE_DIR})
target_compile_definitions(upframe_device_check PRIVATE UPFRAME_HAVE_CUDA=1)
target_link_libraries(upframe_device_check PRIVATE CUDA::cudart_static ${CUDNN_LIBRARY}
                                                   Threads::Threads ${CMAKE_DL_LIBS})
set_target_properties(upframe_device_check PROPERTIES CUDA_RUNTIME_LIBRARY Static)
# A binary that also runs where the GPU machine's C++ runtime is older than this compiler's.
target_link_options(upframe_device_check PRIVATE -static-libstdc++ -static-libgcc)
get_filename_component(cudnn_library_dir ${CUDNN_LIBRARY} DIRECTORY)
set_target_properties(upframe_device_check PROPERTIES BUILD_RPATH "${cudnn_library_dir}")
