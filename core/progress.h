// Progress arithmetic shared by the long-running commands (train's step line, caption's item bar): a duration as
// h:mm:ss and the time left at the average pace so far. Pure functions.
#pragma once

#include <cstdint>
#include <string>

namespace plm {

// "h:mm:ss" (hours unbounded), rounded to the second; "-:--:--" when not finite or negative.
std::string format_hms(double seconds);

// Seconds for `units_left` more units (steps, items) at the average pace of this run's `units_done` units.
double eta_seconds(int64_t units_done, double seconds_taken, int64_t units_left);

}  // namespace plm
