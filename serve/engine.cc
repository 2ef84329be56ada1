#include "serve/engine.h"

#include <algorithm>
#include <chrono>
#include <span>

#include "absl/strings/str_cat.h"
#include "core/check.h"
#include "core/status_macros.h"

namespace plm::serve {

namespace {

// What stats() says before the first step.
EngineStats idle_stats(const KvSpace& kv, const EncoderCache& cache) {
  EngineStats s;
  s.kv = kv.usage();
  s.encoder_cache = cache.counters();
  return s;
}

double seconds_between(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

}  // namespace

Engine::RequestState::RequestState(EngineRequest&& r, const data::Tokenizer& tokenizer)
    : params(std::move(r.params)),
      on_update(std::move(r.on_update)),
      sampler(params.sampling),
      output(tokenizer, params.stop),
      arrival(r.arrival) {
  seq.id = std::move(r.id);
  seq.tokens = std::move(r.prompt.ids);
  seq.num_prompt_tokens = seq.num_tokens();
  seq.max_total_tokens = seq.num_prompt_tokens + params.max_tokens;
  seq.media_of(MediaKind::kImage).items = std::move(r.prompt.images);
  seq.media_of(MediaKind::kVideo).items = std::move(r.prompt.videos);
  if (r.pool_media_embeddings) seq.pooled_media.emplace();
}

absl::StatusOr<std::unique_ptr<Engine>> Engine::start(const model::PlmModel& model, const data::Tokenizer& tokenizer,
                                                      std::vector<int32_t> eos_ids, const EngineConfig& config,
                                                      Metrics* metrics) {
  if (absl::Status s = validate(config.scheduler); !s.ok()) return s;
  if (config.encoder_cache_bytes < 0) {
    return absl::InvalidArgumentError(absl::StrCat("encoder_cache_bytes is ", config.encoder_cache_bytes));
  }
  const int64_t context = config.max_model_len > 0 ? config.max_model_len : model.config().text.max_position_embeddings;
  PLM_ASSIGN_OR_RETURN(std::unique_ptr<KvSpace> kv,
                       make_kv_space(model, config.kv, config.scheduler.max_num_seqs, context));
  return std::unique_ptr<Engine>(new Engine(model, tokenizer, std::move(eos_ids), config, std::move(kv), metrics));
}

Engine::Engine(const model::PlmModel& model, const data::Tokenizer& tokenizer, std::vector<int32_t> eos_ids,
               const EngineConfig& config, std::unique_ptr<KvSpace> kv, Metrics* metrics)
    : model_(model),
      tokenizer_(tokenizer),
      eos_ids_(std::move(eos_ids)),
      config_(config),
      metrics_(metrics),
      kv_(std::move(kv)),
      encoder_cache_(config.encoder_cache_bytes),
      scheduler_(config.scheduler, *kv_, [this](const MediaKey& key) { return encoder_cache_.contains(key); }),
      runner_(model, kv_->cache(), encoder_cache_, config.publisher),
      published_(idle_stats(*kv_, encoder_cache_)),
      thread_([this] { loop(); }) {}

Engine::~Engine() {
  {
    const std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  thread_.join();
}

absl::Status Engine::check(const EngineRequest& r) const {
  const PreparedPrompt& p = r.prompt;
  const int64_t prompt = static_cast<int64_t>(p.ids.size());
  if (r.id.empty()) return absl::InvalidArgumentError("a request needs an id");
  if (!r.on_update) return absl::InvalidArgumentError(absl::StrCat(r.id, ": no update callback"));
  if (prompt == 0) return absl::InvalidArgumentError(absl::StrCat(r.id, ": empty prompt"));
  if (r.pool_media_embeddings && config_.kv.kind == KvCacheKind::kPaged && config_.kv.prefix_caching) {
    return absl::InvalidArgumentError(absl::StrCat(r.id, ": pooled media embeddings need prefix caching off"));
  }
  if (r.params.max_tokens < 1) {
    return absl::InvalidArgumentError(absl::StrCat(r.id, ": max_tokens is ", r.params.max_tokens, "; it must be >= 1"));
  }
  const model::SamplingParams& s = r.params.sampling;
  if (!(s.temperature >= 0.0f) || !(s.top_p > 0.0f && s.top_p <= 1.0f) || s.top_k < 0) {
    return absl::InvalidArgumentError(absl::StrCat(r.id, ": temperature ", s.temperature, ", top_p ", s.top_p, ", top_k ",
                                                   s.top_k, " (want temperature >= 0, 0 < top_p <= 1, top_k >= 0)"));
  }
  const model::PlmConfig& c = model_.config();
  for (int32_t id : p.ids) {
    if (id < 0 || id >= c.text.vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat(r.id, ": token id ", id, " outside the vocabulary"));
    }
  }
  for (const auto& [token, tiles, kind] : {std::tuple{c.image_token_id, &p.images, "image"},
                                            std::tuple{c.video_token_id, &p.videos, "video"}}) {
    const int64_t placeholders = std::count(p.ids.begin(), p.ids.end(), token);
    const int64_t rows = tiles->count() * c.tokens_per_tile();
    const int64_t pixel_rows = tiles->pixels.view().defined() ? tiles->pixels.size(0) : 0;
    if (placeholders != rows || pixel_rows != tiles->count()) {
      return absl::InvalidArgumentError(absl::StrCat(r.id, ": ", placeholders, " ", kind, " placeholders for ",
                                                     tiles->count(), " ", kind, " items (", pixel_rows,
                                                     " pixel rows) of ", c.tokens_per_tile(), " tokens"));
    }
  }
  if (prompt + r.params.max_tokens > max_sequence_tokens()) {
    return absl::OutOfRangeError(absl::StrCat("this server's context is ", max_sequence_tokens(), " tokens: the prompt has ",
                                              prompt, " and max_tokens asks for ", r.params.max_tokens, " more"));
  }
  return absl::OkStatus();
}

absl::Status Engine::submit(EngineRequest request) {
  if (absl::Status s = check(request); !s.ok()) return s;
  {
    const std::lock_guard lock(mutex_);
    if (stopping_) return absl::UnavailableError("the engine is stopping");
    if (!ids_in_flight_.insert(request.id).second) {
      return absl::AlreadyExistsError(absl::StrCat("request id ", request.id, " is already in flight"));
    }
    inbox_.push_back(std::move(request));
    num_queued_.fetch_add(1, std::memory_order_relaxed);
  }
  wake_.notify_one();
  return absl::OkStatus();
}

void Engine::cancel(const std::string& id) {
  {
    const std::lock_guard lock(mutex_);
    cancels_.push_back(id);
  }
  wake_.notify_one();
}

EngineStats Engine::stats() const {
  const std::lock_guard lock(mutex_);
  return published_;
}

void Engine::loop() {
  while (true) {
    std::vector<EngineRequest> arrivals;
    std::vector<std::string> cancels;
    bool stopping = false;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [&] { return stopping_ || !inbox_.empty() || !cancels_.empty() || scheduler_.has_work(); });
      arrivals.swap(inbox_);
      cancels.swap(cancels_);
      stopping = stopping_;
    }
    for (EngineRequest& r : arrivals) add(std::move(r));
    for (const std::string& id : cancels) {
      if (const auto it = requests_.find(id); it != requests_.end()) finish(*it->second, FinishReason::kCancelled);
    }
    if (stopping) {
      while (!requests_.empty()) finish(*requests_.begin()->second, FinishReason::kCancelled);
      publish_stats();
      return;
    }
    if (scheduler_.has_work()) step();
    publish_stats();
  }
}

void Engine::add(EngineRequest&& r) {
  auto state = std::make_unique<RequestState>(std::move(r), tokenizer_);
  Sequence& seq = state->seq;
  seq.arrival_order = next_arrival_++;
  const model::PlmConfig& c = model_.config();
  for (SequenceMedia& m : seq.media) m.tokens_per_item = c.tokens_per_tile();
  index_media_positions(seq, c.image_token_id, c.video_token_id);
  scheduler_.add(&seq);
  requests_.emplace(seq.id, std::move(state));
}

void Engine::step() {
  const Clock::time_point start = Clock::now();
  const StepPlan plan = scheduler_.schedule();
  PLM_CHECK(!plan.chunks.empty()) << scheduler_.num_waiting() << " waiting and " << scheduler_.num_running()
                                  << " running sequences, but the step is empty";
  absl::StatusOr<StepResult> out = runner_.run(plan);
  if (!out.ok()) {
    for (const ScheduledChunk& c : plan.chunks) finish(*requests_.at(c.seq->id), FinishReason::kError, out.status());
    return;
  }
  scheduler_.complete(plan);
  ++totals_.num_steps;
  totals_.num_preemptions = scheduler_.num_preemptions();
  totals_.media_items_encoded += out->num_media_encoded;
  totals_.vision_s += out->vision_s;
  totals_.forward_s += out->forward_s;
  int64_t generated = 0;  // also the logits row of the next sampling chunk
  const Clock::time_point now = Clock::now();
  for (const ScheduledChunk& c : plan.chunks) {
    if (c.length > 1 || !c.samples) totals_.prompt_tokens_computed += c.length;
    if (!c.samples) continue;
    RequestState& state = *requests_.at(c.seq->id);
    const int64_t vocab = out->logits.size(1);
    const std::span<const float> row(out->logits.data_as<float>() + generated * vocab, vocab);
    accept_token(state, state.sampler.sample(row), now);
    ++generated;
  }
  totals_.generated_tokens += generated;
  if (metrics_ != nullptr) metrics_->record_generated(generated, now);
  totals_.step_s += seconds_between(start, Clock::now());
}

RequestUpdate Engine::update_of(RequestState& state, Clock::time_point now) {
  RequestUpdate u;
  u.text = state.output.take_delta();
  u.usage = {.prompt_tokens = state.seq.num_prompt_tokens,
             .completion_tokens = state.seq.num_generated(),
             .cached_prompt_tokens = state.seq.num_cached_prompt_tokens,
             .cached_media_items = state.seq.num_media_cached,
             .encoded_media_items = state.seq.num_media_encoded};
  u.ttft_s = state.has_first_token ? seconds_between(state.arrival, state.first_token) : 0.0;
  u.latency_s = seconds_between(state.arrival, now);
  return u;
}

void Engine::accept_token(RequestState& state, int32_t token, Clock::time_point now) {
  Sequence& seq = state.seq;
  seq.tokens.push_back(token);
  if (!state.has_first_token) {
    state.has_first_token = true;
    state.first_token = now;
  }
  const absl::StatusOr<bool> stopped = state.output.push(token);
  if (!stopped.ok()) {
    finish(state, FinishReason::kError, stopped.status());
    return;
  }
  std::optional<FinishReason> reason;
  if (*stopped) {
    reason = FinishReason::kStop;
  } else if (std::find(eos_ids_.begin(), eos_ids_.end(), token) != eos_ids_.end()) {
    state.output.finish();
    reason = FinishReason::kStop;
  } else if (seq.num_generated() >= state.params.max_tokens || seq.num_tokens() >= max_sequence_tokens()) {
    reason = state.output.finish() ? FinishReason::kStop : FinishReason::kLength;
  }
  if (reason) {
    finish(state, *reason, absl::OkStatus(), token);
    return;
  }
  RequestUpdate u = update_of(state, now);
  u.token_ids = {token};
  state.on_update(u);
}

void Engine::finish(RequestState& state, FinishReason reason, const absl::Status& error,
                    std::optional<int32_t> last_token) {
  const Clock::time_point now = Clock::now();
  RequestUpdate u = update_of(state, now);
  if (last_token) u.token_ids = {*last_token};
  u.finish = reason;
  u.error = error;
  if (state.seq.pooled_media) u.media_embedding = state.seq.pooled_media->mean();
  scheduler_.remove(&state.seq);
  switch (reason) {
    case FinishReason::kStop:
    case FinishReason::kLength:
      ++totals_.requests_finished;
      if (metrics_ != nullptr) metrics_->record_request(u);
      break;
    case FinishReason::kCancelled: ++totals_.requests_cancelled; break;
    case FinishReason::kError: ++totals_.requests_failed; break;
  }
  const std::string id = state.seq.id;
  const UpdateCallback callback = std::move(state.on_update);
  requests_.erase(id);
  {
    const std::lock_guard lock(mutex_);
    ids_in_flight_.erase(id);
  }
  callback(u);
}

void Engine::publish_stats() {
  EngineStats s = totals_;
  s.num_waiting = scheduler_.num_waiting();
  s.num_running = scheduler_.num_running();
  s.kv = kv_->usage();
  s.encoder_cache = encoder_cache_.counters();
  const std::lock_guard lock(mutex_);
  s.num_waiting += static_cast<int>(inbox_.size());
  published_ = s;
  num_queued_.store(s.num_waiting, std::memory_order_relaxed);
}

}  // namespace plm::serve
