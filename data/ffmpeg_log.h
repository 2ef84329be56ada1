// FFmpeg's library log, turned down to fatal messages once per process: the readers and writers of data/
// report failures as a Status, so FFmpeg's own lines (concealed slices, deprecated formats, libx264's
// statistics) would only interleave on stderr. Thread-safe.
#pragma once

namespace plm::data {

void quiet_ffmpeg_log();

}  // namespace plm::data
