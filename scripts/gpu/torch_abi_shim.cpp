// openmm-torch 1.5's PyPI wheel was built against torch 2.9, where c10_cuda_check_implementation (called by every
// C10_CUDA_CHECK) takes the line number as int; torch 2.11 exports it with unsigned int only, so
// libOpenMMTorchCUDA.so fails with "undefined symbol". This library, LD_PRELOADed, defines the old symbol and
// forwards to the new one. Built on the device by scripts/gpu_check.sh (linked against that torch's libc10_cuda).
namespace c10::cuda {
void c10_cuda_check_implementation(int err, const char* file, const char* function, unsigned int line, bool assertions);

void c10_cuda_check_implementation(int err, const char* file, const char* function, int line, bool assertions) {
  c10_cuda_check_implementation(err, file, function, static_cast<unsigned int>(line), assertions);
}
}  // namespace c10::cuda
