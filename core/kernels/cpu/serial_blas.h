// SerialBlasScope: while one is alive, each BLAS call runs on its calling thread. The blocked CPU attention
// (forward and backward) runs blocks on OpenMP threads, and a threaded GEMM from each would put 4 threads on 2
// cores (measured 5x slower, and 1.5x slower than threaded GEMMs one block at a time). The OpenMP build of
// OpenBLAS (the one core/CMakeLists.txt links) already runs serially inside an OpenMP region, and its
// openblas_set_num_threads would shrink our OpenMP team too; the pthread build gets its process-wide thread
// count set to 1, with one save/restore for concurrent scopes (thread-safe).
#pragma once

#ifdef PLM_HAVE_OPENBLAS
#include <cblas.h>

#include <mutex>
#endif

namespace plm::cpu {

#ifdef PLM_HAVE_OPENBLAS
class SerialBlasScope {
 public:
  SerialBlasScope() {
    if (!pthread_openblas()) return;
    const std::lock_guard<std::mutex> lock(mutex_);
    if (depth_++ == 0) {
      saved_threads_ = openblas_get_num_threads();
      openblas_set_num_threads(1);
    }
  }
  ~SerialBlasScope() {
    if (!pthread_openblas()) return;
    const std::lock_guard<std::mutex> lock(mutex_);
    if (--depth_ == 0) openblas_set_num_threads(saved_threads_);
  }
  SerialBlasScope(const SerialBlasScope&) = delete;
  SerialBlasScope& operator=(const SerialBlasScope&) = delete;

 private:
  static bool pthread_openblas() { return openblas_get_parallel() == 1; }  // 0 serial, 1 pthreads, 2 OpenMP
  static inline std::mutex mutex_;
  static inline int depth_ = 0;
  static inline int saved_threads_ = 1;
};
#else
// Without OpenBLAS, sgemm's loop has its own OpenMP region, which runs serially inside ours.
struct SerialBlasScope {
  SerialBlasScope() {}
};
#endif

}  // namespace plm::cpu
