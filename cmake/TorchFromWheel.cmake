# Finds LibTorch inside the PyPI torch wheel of the project's venv and makes it
# usable on machines without a GPU driver.
#
# Inputs: PEFTCPP_PYTHON (the venv's python). Outputs: the Torch targets and
# TORCH_LIBRARIES, plus peftcpp_torch (an interface target to link against).

if(NOT PEFTCPP_PYTHON)
  message(FATAL_ERROR "[peftcpp] expected -DPEFTCPP_PYTHON=<venv python>, got nothing "
                      "(hint: configure through scripts/setup.sh, which creates the venv)")
endif()

execute_process(
  COMMAND "${PEFTCPP_PYTHON}" -c "import torch, sys; sys.stdout.write(torch.utils.cmake_prefix_path)"
  OUTPUT_VARIABLE _torch_prefix RESULT_VARIABLE _rc)
if(NOT _rc EQUAL 0)
  message(FATAL_ERROR "[peftcpp] expected torch importable from ${PEFTCPP_PYTHON}, got exit code ${_rc}")
endif()
list(PREPEND CMAKE_PREFIX_PATH "${_torch_prefix}")
get_filename_component(PEFTCPP_TORCH_ROOT "${_torch_prefix}/../.." ABSOLUTE)

# The wheel is a CUDA 13 build: Caffe2's CMake wants the toolkit. Use the
# system one at its standard place (nvcc 13.0 matches the wheel).
if(NOT DEFINED CUDAToolkit_ROOT AND EXISTS /usr/local/cuda)
  set(CUDAToolkit_ROOT /usr/local/cuda)
endif()
if(NOT DEFINED CMAKE_CUDA_COMPILER AND EXISTS /usr/local/cuda/bin/nvcc)
  set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
endif()
# CUDA 13 ships NVTX3 as headers only; there is no libnvToolsExt to link.
set(USE_SYSTEM_NVTX ON CACHE BOOL "" FORCE)
if(NOT TARGET CUDA::nvToolsExt)
  add_library(CUDA::nvToolsExt INTERFACE IMPORTED)
endif()

find_package(Torch REQUIRED)

# Torch's targets pull in the driver stub libcuda.so; with --as-needed nothing
# of ours references it, so binaries start on machines without a driver. But
# libtorch_cuda registers the CUDA backend in static initialisers and is never
# referenced by symbol either, so it is forced in explicitly where it exists.
add_library(peftcpp_torch INTERFACE)
target_link_libraries(peftcpp_torch INTERFACE ${TORCH_LIBRARIES})
target_compile_options(peftcpp_torch INTERFACE ${TORCH_CXX_FLAGS})
target_link_options(peftcpp_torch INTERFACE "LINKER:--as-needed")
# The wheel's libtorch.so exports its own statically linked copy of
# std::filesystem (64 symbols). The dynamic linker binds each symbol to the
# first library in DT_NEEDED order that defines it, and torch comes first,
# so our std::filesystem::remove_all would run torch's copy, which crashes.
# Naming libstdc++ before anything else makes the system's copy win.
target_link_options(peftcpp_torch INTERFACE
  "SHELL:-Wl,--push-state,--no-as-needed -lstdc++ -Wl,--pop-state")
find_library(PEFTCPP_TORCH_CUDA_LIB torch_cuda PATHS "${PEFTCPP_TORCH_ROOT}/lib" NO_DEFAULT_PATH)
if(PEFTCPP_TORCH_CUDA_LIB)
  target_link_libraries(peftcpp_torch INTERFACE
    "-Wl,--no-as-needed" "${PEFTCPP_TORCH_CUDA_LIB}" "-Wl,--as-needed")
endif()
