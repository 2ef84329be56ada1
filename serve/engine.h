// Engine: continuous-batching inference over one PlmModel. Requests go into a queue from any thread; the engine
// thread admits them between steps, plans each step with the Scheduler (decode first, chunked prefill, token and
// vision budgets, FCFS with aging), runs it with the ModelRunner (encoder cache, one forward over the KV cache),
// samples each sequence's next token with its own seeded sampler, and streams text to the request's callback.
// A request finishes on EOS or a stop string ("stop"), at max_tokens or the context limit ("length"), when
// cancelled, or on an error; its KV room is freed at once. Greedy requests give exactly `plm generate`'s tokens.
// Thread-safety: submit(), cancel(), stats() and the accessors may be called from any thread; callbacks run on
// the engine thread. Destroying the engine cancels what is in flight (each callback hears kCancelled) and joins.
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "data/tokenizer.h"
#include "model/plm_model.h"
#include "model/sampler.h"
#include "serve/encoder_cache.h"
#include "serve/engine_stats.h"
#include "serve/kv_space.h"
#include "serve/metrics.h"
#include "serve/model_runner.h"
#include "serve/request.h"
#include "serve/scheduler.h"
#include "serve/sequence.h"
#include "serve/text_output.h"

namespace plm::serve {

struct EngineConfig {
  SchedulerConfig scheduler;
  KvSpaceConfig kv;           // paged by default
  int64_t max_model_len = 0;  // longest prompt + reply; 0: the model's max_position_embeddings (then capped by bytes)
  int64_t encoder_cache_bytes = int64_t{256} << 20;
  // The tensor-parallel leader's end of the step mirror (step_mirror.h), outliving the engine; null on one rank.
  StepPublisher* publisher = nullptr;
};

class Engine {
 public:
  // The model, tokenizer and metrics (optional) must outlive the engine. Errors: a configuration that does not
  // fit (the arithmetic in the message).
  static absl::StatusOr<std::unique_ptr<Engine>> start(const model::PlmModel& model, const data::Tokenizer& tokenizer,
                                                       std::vector<int32_t> eos_ids, const EngineConfig& config,
                                                       Metrics* metrics = nullptr);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Queues a request. InvalidArgument: bad ids, parameters, or media that do not fill the placeholders;
  // OutOfRange: prompt + max_tokens beyond max_sequence_tokens(); AlreadyExists: the id is in flight;
  // Unavailable: the engine is stopping. On error the callback is never called.
  absl::Status submit(EngineRequest request);
  // Finishes the request with kCancelled and frees its KV room (soon, on the engine thread); unknown ids are
  // ignored (it may have finished already).
  void cancel(const std::string& id);

  EngineStats stats() const;
  // Submitted requests not yet admitted to the running batch (a cheap read for admission control).
  int num_queued() const { return num_queued_.load(std::memory_order_relaxed); }
  int64_t max_sequence_tokens() const { return kv_->max_sequence_tokens(); }

 private:
  struct RequestState {
    Sequence seq;
    GenerationParams params;
    UpdateCallback on_update;
    model::Sampler sampler;
    TextOutput output;
    Clock::time_point arrival;
    Clock::time_point first_token;
    bool has_first_token = false;

    RequestState(EngineRequest&& r, const data::Tokenizer& tokenizer);
  };

  Engine(const model::PlmModel& model, const data::Tokenizer& tokenizer, std::vector<int32_t> eos_ids,
         const EngineConfig& config, std::unique_ptr<KvSpace> kv, Metrics* metrics);
  absl::Status check(const EngineRequest& r) const;
  void loop();
  void add(EngineRequest&& r);
  void step();
  // Appends a sampled token, streams the new text, and finishes the request when it is done.
  void accept_token(RequestState& state, int32_t token, Clock::time_point now);
  // Sends the final update (with `last_token` when a sampled token ended it), frees the KV room and forgets it.
  void finish(RequestState& state, FinishReason reason, const absl::Status& error = absl::OkStatus(),
              std::optional<int32_t> last_token = std::nullopt);
  RequestUpdate update_of(RequestState& state, Clock::time_point now);
  void publish_stats();

  const model::PlmModel& model_;
  const data::Tokenizer& tokenizer_;
  const std::vector<int32_t> eos_ids_;
  const EngineConfig config_;
  Metrics* metrics_;
  std::unique_ptr<KvSpace> kv_;
  EncoderCache encoder_cache_;
  Scheduler scheduler_;
  ModelRunner runner_;

  // Engine thread only.
  absl::flat_hash_map<std::string, std::unique_ptr<RequestState>> requests_;
  uint64_t next_arrival_ = 0;
  EngineStats totals_;

  mutable std::mutex mutex_;  // guards everything below
  std::condition_variable wake_;
  std::vector<EngineRequest> inbox_;
  std::vector<std::string> cancels_;
  absl::flat_hash_set<std::string> ids_in_flight_;
  bool stopping_ = false;
  EngineStats published_;
  std::atomic<int> num_queued_{0};

  std::thread thread_;  // last: starts after everything above exists
};

}  // namespace plm::serve
