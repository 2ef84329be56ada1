// CPU threads per rank: the ranks of an mpirun / srun job on one node share its cores, and OpenMP's default (every
// core the rank may run on) would start ranks x cores threads when the launcher does not pin ranks to cores
// (OpenMPI pins for up to 2 ranks, not for more, nor under --bind-to none), which spin against each other.
#pragma once

namespace plm::runtime {

// Threads for one of `local_ranks` ranks on a node of `online_cpus` cores whose affinity mask allows
// `affinity_cpus` of them: a rank pinned to fewer than all cores uses its own; otherwise the cores are divided
// among the node's ranks (at least 1 each).
int threads_per_rank(int affinity_cpus, int online_cpus, int local_ranks);

// Sets the OpenMP thread count by threads_per_rank for this process's launch (distributed/launch_env.h) unless
// OMP_NUM_THREADS is set or the launcher started one rank on the node. Call once, before any parallel region.
void set_cpu_threads_for_launch();

}  // namespace plm::runtime
