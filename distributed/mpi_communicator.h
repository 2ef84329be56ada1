// MpiCommunicator: collectives over MPI for CPU tensors (Debian's OpenMPI is not CUDA-aware; GPU tensors
// use NcclCommunicator, which is bootstrapped over this one). MPI errors return codes (MPI_ERRORS_RETURN)
// and are turned into a job abort naming the call; a watchdog aborts a call that stalls
// (PLM_COMM_TIMEOUT_S, default 300 s). bf16/f16 reductions use MPI user ops that add in f32.
#pragma once

#include <memory>
#include <string>

#include "distributed/communicator.h"

namespace plm::distributed {

// Initialises MPI once per process (thread level MPI_THREAD_MULTIPLE when available, so the watchdog
// may call MPI_Abort) and finalises it at exit; under `mpirun --enable-recovery`, where a dead rank can keep
// MPI_Finalize waiting, the process leaves without it after PLM_FINALIZE_TIMEOUT_S (default 20). Safe to call
// repeatedly.
void ensure_mpi_initialized();

// The world group of an mpirun/srun launch (or a single-process world when run without a launcher).
std::unique_ptr<Communicator> mpi_world();

// Prints "plm rank R: message" on stderr and aborts every rank of the job (MPI_Abort on the world).
[[noreturn]] void abort_job(const std::string& message);

// The same for a stalled operation, 2 s after printing: a stall usually stalls several ranks at once, and
// MPI_Abort kills them all, so the pause lets every stalled rank's watchdog name its own operation first
// (which rank waits on what locates the hang).
[[noreturn]] void abort_job_on_stall(const std::string& message);

}  // namespace plm::distributed
