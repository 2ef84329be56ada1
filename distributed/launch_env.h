// Where this process sits in the job, read from the launcher's environment: OpenMPI (mpirun),
// Slurm (srun), or neither (a single-process world). local_rank picks the GPU.
#pragma once

#include <string>

namespace plm::distributed {

struct LaunchEnv {
  int world_rank = 0;
  int world_size = 1;
  int local_rank = 0;      // rank within the node
  int local_size = 1;      // ranks on this node (1 when the launcher does not say)
  std::string launcher;    // "openmpi", "slurm" or "none"
  // The launcher keeps the other ranks running when one dies: `mpirun --enable-recovery`, which sets
  // OMPI_MCA_orte_enable_recovery (serve/README.md, "Failure").
  bool survives_rank_death = false;
};

// OMPI_COMM_WORLD_{RANK,SIZE,LOCAL_RANK,LOCAL_SIZE} first, then SLURM_{PROCID,NTASKS,LOCALID,NTASKS_PER_NODE},
// then LOCAL_RANK and LOCAL_WORLD_SIZE alone, else one rank.
LaunchEnv read_launch_env();

}  // namespace plm::distributed
