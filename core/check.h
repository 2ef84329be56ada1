// PLM_CHECK: invariants that only a bug can break. A failed check prints file:line, the condition and
// any streamed context, then aborts. Recoverable failures (files, configs, requests) use absl::Status
// instead (core/status_macros.h); library code never calls exit().
#pragma once

#include <sstream>
#include <string>

namespace plm::internal {

class CheckFailure {
 public:
  CheckFailure(const char* file, int line, const char* condition);
  [[noreturn]] ~CheckFailure();
  CheckFailure(const CheckFailure&) = delete;
  CheckFailure& operator=(const CheckFailure&) = delete;

  template <typename T>
  CheckFailure& operator<<(const T& value) {
    message_ << value;
    return *this;
  }

 private:
  std::ostringstream message_;
};

// Lets `PLM_CHECK(x) << a << b` be a void expression in both branches of the conditional.
struct Voidify {
  void operator&(const CheckFailure&) {}
};

template <typename A, typename B>
std::string format_comparison(const char* expr, const A& a, const B& b) {
  std::ostringstream os;
  os << expr << " (" << a << " vs " << b << ") ";
  return os.str();
}

}  // namespace plm::internal

#define PLM_CHECK(cond)        \
  (cond) ? (void)0             \
         : ::plm::internal::Voidify() & ::plm::internal::CheckFailure(__FILE__, __LINE__, #cond)

#define PLM_CHECK_OP_(a, b, op)                                                          \
  ((a)op(b)) ? (void)0                                                                  \
             : ::plm::internal::Voidify() &                                             \
                   ::plm::internal::CheckFailure(__FILE__, __LINE__, "")                \
                       << ::plm::internal::format_comparison(#a " " #op " " #b, (a), (b))

#define PLM_CHECK_EQ(a, b) PLM_CHECK_OP_(a, b, ==)
#define PLM_CHECK_NE(a, b) PLM_CHECK_OP_(a, b, !=)
#define PLM_CHECK_LT(a, b) PLM_CHECK_OP_(a, b, <)
#define PLM_CHECK_LE(a, b) PLM_CHECK_OP_(a, b, <=)
#define PLM_CHECK_GT(a, b) PLM_CHECK_OP_(a, b, >)
#define PLM_CHECK_GE(a, b) PLM_CHECK_OP_(a, b, >=)
