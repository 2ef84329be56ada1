#include "model/lora.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "absl/strings/str_cat.h"
#include "core/kernels/counter_random.h"
#include "core/kernels/ops.h"
#include "core/status_macros.h"

namespace plm::model {

namespace {

constexpr std::array<std::string_view, 3> kAdapterSuffixes = {".lora_A.weight", ".lora_B.weight",
                                                              ".lora_magnitude_vector"};

// The last part of a module name: "self_attn.q_proj" -> "q_proj".
std::string_view target_of(std::string_view module) { return module.substr(module.rfind('.') + 1); }

// U(-1/sqrt(in), 1/sqrt(in)) for every element of a (r, in) host tensor, keyed by (seed, site, element).
OwnedTensor kaiming_uniform(int64_t rank, int64_t in, uint64_t seed, uint64_t site) {
  OwnedTensor a({rank, in}, DType::kF32);
  const float bound = 1.0f / std::sqrt(static_cast<float>(in));
  const uint64_t stream = mix64(seed, site);
  float* values = a.data_as<float>();
  for (int64_t i = 0; i < a.numel(); ++i) {
    values[i] = (2.0f * uniform01(mix64(stream, static_cast<uint64_t>(i))) - 1.0f) * bound;
  }
  return a;
}

}  // namespace

absl::Status validate_lora_spec(const LoraSpec& spec) {
  if (spec.rank < 1) return absl::InvalidArgumentError(absl::StrCat("lora rank ", spec.rank, " < 1"));
  if (!(spec.alpha > 0.0)) return absl::InvalidArgumentError(absl::StrCat("lora alpha ", spec.alpha, " <= 0"));
  if (!(spec.dropout >= 0.0 && spec.dropout < 1.0)) {
    return absl::InvalidArgumentError(absl::StrCat("lora dropout ", spec.dropout, " outside [0, 1)"));
  }
  if (spec.targets.empty()) return absl::InvalidArgumentError("lora targets: none given");
  std::set<std::string> seen;
  for (const std::string& t : spec.targets) {
    if (std::find(kLoraTargets.begin(), kLoraTargets.end(), t) == kLoraTargets.end()) {
      std::string known;
      for (const std::string_view name : kLoraTargets) known += (known.empty() ? "" : ", ") + std::string(name);
      return absl::InvalidArgumentError(absl::StrCat("lora target '", t, "' is not one of ", known));
    }
    if (!seen.insert(t).second) return absl::InvalidArgumentError(absl::StrCat("lora target '", t, "' given twice"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<OwnedTensor>> attach_lora_adapters(DecoderWeights& weights, const LoraSpec& spec,
                                                               DType dtype) {
  PLM_RETURN_IF_ERROR(validate_lora_spec(spec));
  std::vector<OwnedTensor> storage;
  const auto owned = [&](Shape shape, Device device) -> Tensor {
    storage.emplace_back(shape, dtype, device);
    return storage.back().view();
  };
  for (size_t i = 0; i < weights.layers.size(); ++i) {
    const int layer = weights.first_layer + static_cast<int>(i);
    weights.layers[i].for_each_projection([&](const char* module, Linear& linear) {
      const std::string_view target = target_of(module);
      if (std::find(spec.targets.begin(), spec.targets.end(), target) == spec.targets.end()) return;
      PLM_CHECK(!linear.lora.attached()) << "layer " << layer << " " << module << " has an adapter already";
      const int64_t in = linear.in_features(), out = linear.out_features(), r = spec.rank;
      const Device device = linear.weight.device();
      const auto target_index = std::find(kLoraTargets.begin(), kLoraTargets.end(), target) - kLoraTargets.begin();
      LoraAdapter& lora = linear.lora;
      lora.rank = r;
      lora.dora = spec.dora;
      lora.scaling = spec.scaling();
      lora.dropout = static_cast<float>(spec.dropout);
      lora.site = static_cast<uint64_t>(layer) * kLoraTargets.size() + static_cast<uint64_t>(target_index);
      lora.a = owned({r, in}, device);
      const OwnedTensor a = kaiming_uniform(r, in, spec.init_seed, lora.site);
      if (dtype == DType::kF32) {
        copy_tensor(lora.a, a);
      } else {
        const OwnedTensor a_device = to_device(a, device);
        cast(lora.a, a_device);
      }
      lora.b = owned({out, r}, device);
      fill(lora.b, 0.0f);
      if (spec.dora) {
        lora.magnitude = owned({out}, device);
        row_norms(lora.magnitude, linear.weight);
      }
    });
  }
  return storage;
}

bool is_lora_parameter(const std::string& name) {
  return std::any_of(kAdapterSuffixes.begin(), kAdapterSuffixes.end(),
                     [&](std::string_view suffix) { return name.ends_with(suffix); });
}

std::string lora_base_weight_name(const std::string& adapter_name) {
  for (const std::string_view suffix : kAdapterSuffixes) {
    if (adapter_name.ends_with(suffix)) {
      return adapter_name.substr(0, adapter_name.size() - suffix.size()) + ".weight";
    }
  }
  PLM_CHECK(false) << "'" << adapter_name << "' is not an adapter tensor's name";
  return {};
}

uint64_t lora_dropout_key(uint64_t seed, int64_t step, int64_t sample) {
  return mix64(mix64(seed, static_cast<uint64_t>(step)), static_cast<uint64_t>(sample));
}

}  // namespace plm::model
