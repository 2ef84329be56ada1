#include "distributed/launch_env.h"

#include <cstdlib>
#include <string>

namespace plm::distributed {

namespace {

// The integer value of an environment variable, or `fallback` when unset or not a number.
int env_int(const char* name, int fallback) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') return fallback;
  char* end = nullptr;
  const long parsed = std::strtol(value, &end, 10);
  return (end != value && *end == '\0') ? static_cast<int>(parsed) : fallback;
}

bool env_set(const char* name) { return std::getenv(name) != nullptr; }

bool env_true(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr) return false;
  const std::string v = value;
  return v == "1" || v == "true" || v == "yes";
}

}  // namespace

LaunchEnv read_launch_env() {
  LaunchEnv env;
  if (env_set("OMPI_COMM_WORLD_RANK")) {
    env.launcher = "openmpi";
    env.world_rank = env_int("OMPI_COMM_WORLD_RANK", 0);
    env.world_size = env_int("OMPI_COMM_WORLD_SIZE", 1);
    env.local_rank = env_int("OMPI_COMM_WORLD_LOCAL_RANK", 0);
    env.local_size = env_int("OMPI_COMM_WORLD_LOCAL_SIZE", 1);
    env.survives_rank_death = env_true("OMPI_MCA_orte_enable_recovery");
  } else if (env_set("SLURM_PROCID") && env_set("SLURM_NTASKS")) {
    env.launcher = "slurm";
    env.world_rank = env_int("SLURM_PROCID", 0);
    env.world_size = env_int("SLURM_NTASKS", 1);
    env.local_rank = env_int("SLURM_LOCALID", 0);
    env.local_size = env_int("SLURM_NTASKS_PER_NODE", 1);
  } else {
    env.launcher = "none";
    env.local_rank = env_int("LOCAL_RANK", 0);
    env.local_size = env_int("LOCAL_WORLD_SIZE", 1);
  }
  return env;
}

}  // namespace plm::distributed
