// CPU time of the whole process (every thread): the work done, free of the time spent waiting for a core on a
// machine shared with other jobs. With several OpenMP threads it includes their spinning at barriers.
#pragma once

namespace plm {

double process_cpu_seconds();

}  // namespace plm
