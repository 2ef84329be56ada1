#include "data/ffmpeg_log.h"

extern "C" {
#include <libavutil/log.h>
}

#include <mutex>

namespace plm::data {

void quiet_ffmpeg_log() {
  static std::once_flag quiet;
  std::call_once(quiet, [] { av_log_set_level(AV_LOG_FATAL); });
}

}  // namespace plm::data
