// `plm bench tokenizer` and `plm bench preprocess`: encode throughput of the Llama 3 tokenizer on a text,
// and image (decode + thumb+tile) / video (decode + sampling + resize) preprocessing times. The HF
// counterparts are tiktoken and tools/reference/bench_preprocessing.py on the same files.
// `plm bench sft-data`: how fast training samples come out of an SFT JSONL file or a `plm data pack` store.
#pragma once

#include <string>

namespace plm::bench {

struct TokenizerBenchOptions {
  std::string tokenizer;  // tokenizer.model, tokenizer.json or a model directory
  std::string text_file;  // the text to encode
  int repeat_mb = 20;     // the text is repeated up to this many megabytes
  int runs = 3;
};

struct PreprocessBenchOptions {
  std::string image;          // optional
  std::string video;          // optional
  int64_t num_frames = 32;    // sampled from the video (at most its length)
  int tile_size = 448;
  int max_num_tiles = 36;
  int runs = 3;
};

struct SftDataBenchOptions {
  std::string data;       // .jsonl or .h5
  std::string model_dir;  // tokenizer and processor settings
  int64_t num_frames = 0;  // 0: up to 32 per video
  int threads = 1;         // samples read concurrently
};

int run_tokenizer_bench(const TokenizerBenchOptions& options);
int run_preprocess_bench(const PreprocessBenchOptions& options);
int run_sft_data_bench(const SftDataBenchOptions& options);

}  // namespace plm::bench
