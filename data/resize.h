// Antialiased bicubic resize of 8-bit RGB images, bit-exact with the PyTorch CPU uint8 kernel that HF
// transformers 5.x runs through torchvision v2 resize (antialias=True, Keys cubic a = -0.5; the filter
// widens by the scale when downscaling): spec/plm_spec.md §3.3. Separable: the width pass first, then the
// height pass, uint8 in between; an axis whose size does not change is copied. Each axis has int16
// fixed-point weights at a precision chosen from its largest weight. Thread-safe; uses OpenMP inside.
#pragma once

#include <cstdint>
#include <vector>

#include "data/rgb_image.h"

namespace plm::data {

// The filter of one axis: output i reads source samples [first[i], first[i] + count[i]) with weights
// weights[i * max_taps + j] (zero past count[i]), in fixed point with `precision` fractional bits.
struct ResampleAxis {
  int max_taps = 0;
  int precision = 0;
  std::vector<int> first;       // (out)
  std::vector<int> count;       // (out)
  std::vector<int16_t> weights;  // (out, max_taps)
};

ResampleAxis make_resample_axis(int in_size, int out_size);

RgbImage resize_bicubic_antialias(const RgbImage& src, int out_width, int out_height);

}  // namespace plm::data
