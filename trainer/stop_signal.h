// StopSignal: SIGTERM (Slurm's time limit, scancel, mpirun) and SIGUSR1 (`sbatch --signal=USR1@120`) ask the
// training loop to finish its step, save a checkpoint and exit 0. The handler only stores the signal number
// in a lock-free atomic (async-signal-safe); the loop polls requested() once per step. In a multi-rank job
// the loop all-reduces (max) the flag so every rank stops after the same step. The handler is one-shot per
// signal (SA_RESETHAND): a second SIGTERM while saving takes the default action and ends the process.
//
// Thread-safety: one StopSignal at a time per process (a second construction PLM_CHECK-fails); requested()
// may be called from any thread.
#pragma once

#include <signal.h>

namespace plm::trainer {

class StopSignal {
 public:
  // Installs the handlers; the destructor restores the previous ones.
  StopSignal();
  ~StopSignal();
  StopSignal(const StopSignal&) = delete;
  StopSignal& operator=(const StopSignal&) = delete;

  // The first stop signal received since construction, or 0.
  int requested() const;

 private:
  struct sigaction previous_term_ {};
  struct sigaction previous_usr1_ {};
};

}  // namespace plm::trainer
