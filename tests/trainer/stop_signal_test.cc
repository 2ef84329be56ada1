#include "trainer/stop_signal.h"

#include <gtest/gtest.h>

#include <csignal>

namespace plm::trainer {
namespace {

TEST(StopSignal, NothingRequestedUntilASignalArrives) {
  const StopSignal stop;
  EXPECT_EQ(stop.requested(), 0);
}

TEST(StopSignal, SigtermSetsTheFlag) {
  const StopSignal stop;
  ASSERT_EQ(std::raise(SIGTERM), 0);  // the handler runs before raise returns
  EXPECT_EQ(stop.requested(), SIGTERM);
}

TEST(StopSignal, TheFirstSignalWins) {
  const StopSignal stop;
  ASSERT_EQ(std::raise(SIGUSR1), 0);
  ASSERT_EQ(std::raise(SIGTERM), 0);
  EXPECT_EQ(stop.requested(), SIGUSR1);
}

TEST(StopSignal, ANewInstanceStartsClearAndTheOldHandlersComeBack) {
  static volatile std::sig_atomic_t custom_calls = 0;
  struct sigaction custom {};
  custom.sa_handler = [](int) { custom_calls = custom_calls + 1; };
  sigemptyset(&custom.sa_mask);
  struct sigaction before {};
  ASSERT_EQ(::sigaction(SIGUSR1, &custom, &before), 0);
  {
    const StopSignal stop;
    ASSERT_EQ(std::raise(SIGUSR1), 0);
    EXPECT_EQ(stop.requested(), SIGUSR1);
    EXPECT_EQ(custom_calls, 0);
  }
  {
    const StopSignal stop;
    EXPECT_EQ(stop.requested(), 0);
  }
  ASSERT_EQ(std::raise(SIGUSR1), 0);
  EXPECT_EQ(custom_calls, 1);
  ASSERT_EQ(::sigaction(SIGUSR1, &before, nullptr), 0);
}

TEST(StopSignalDeathTest, ASecondSigtermEndsTheProcess) {
  EXPECT_EXIT(
      {
        const StopSignal stop;
        std::raise(SIGTERM);
        if (stop.requested() != SIGTERM) std::_Exit(3);
        std::raise(SIGTERM);
        std::_Exit(0);
      },
      ::testing::KilledBySignal(SIGTERM), "");
}

TEST(StopSignalDeathTest, OnlyOneAtATime) {
  EXPECT_DEATH(
      {
        const StopSignal first;
        const StopSignal second;
      },
      "only one StopSignal");
}

}  // namespace
}  // namespace plm::trainer
