// dlb::Generator: the standard's MT19937-64 sequence, its state as words, and a saved state
// that cannot be a generator's refused by name.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <random>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "dlb/core/random.hpp"
#include "dlb/core/state.hpp"

using dlb::Generator;

TEST_CASE("Generator draws std::mt19937_64's sequence", "[random]") {
  // The standard fixes this value: the 10000th draw of a default-constructed mt19937_64.
  Generator standard_check;
  for (int i = 1; i < 10000; ++i) standard_check();
  CHECK(standard_check() == 9981545732273789042ULL);

  for (const std::uint64_t seed : {0ULL, 1ULL, 42ULL, 5489ULL, 0xFFFFFFFFFFFFFFFFULL}) {
    Generator ours(seed);
    std::mt19937_64 theirs(seed);
    for (int i = 0; i < 2000; ++i) REQUIRE(ours() == theirs());
    ours.seed(seed + 7);  // reseeding restarts the sequence
    theirs.seed(seed + 7);
    for (int i = 0; i < 700; ++i) REQUIRE(ours() == theirs());
  }
  STATIC_REQUIRE(std::uniform_random_bit_generator<Generator>);
}

TEST_CASE("Generator's words are the state and position, and continue the stream", "[random]") {
  Generator gen(3);
  for (int i = 0; i < 500; ++i) gen();  // mid-way through the second block of 312
  const auto words = gen.Words();
  REQUIRE(words.size() == 313);
  CHECK(words[312] == 500 - 312);

  const auto copy = Generator::FromWords(words);
  REQUIRE(copy.has_value());
  CHECK(*copy == gen);
  Generator resumed = *copy;
  for (int i = 0; i < 1000; ++i) REQUIRE(resumed() == gen());

#if defined(__GLIBCXX__)
  // The layout libstdc++ writes for std::mt19937_64, so checkpoints written when Generator
  // was that type still resume.
  std::mt19937_64 standard(3);
  standard.discard(500);
  std::ostringstream text;
  text << standard;
  std::istringstream in(text.str());
  std::vector<std::uint64_t> standard_words;
  for (std::uint64_t word; in >> word;) standard_words.push_back(word);
  const auto ours = Generator(3);
  Generator advanced = ours;
  for (int i = 0; i < 500; ++i) advanced();
  const auto our_words = advanced.Words();
  CHECK(std::vector<std::uint64_t>(our_words.begin(), our_words.end()) == standard_words);
#endif
}

TEST_CASE("A saved generator state that cannot be one is refused, naming the tensor", "[random]") {
  Generator live(11);
  const Generator before = live;
  std::vector<dlb::StateRef<float>> refs{{"data.generator", &live}};

  auto state_with = [](std::vector<std::uint64_t> words) {
    dlb::StateDict state;
    state.Insert("data.generator",
                 dlb::Tensor::FromValues(dlb::DType::U64,
                                         {static_cast<std::int64_t>(words.size())}, words));
    return state;
  };
  const auto good = Generator(5).Words();

  std::vector<std::uint64_t> position_too_far(good.begin(), good.end());
  position_too_far[312] = 313;
  std::vector<std::uint64_t> all_zero(313, 0);
  std::vector<std::uint64_t> short_state(good.begin(), good.begin() + 312);
  const std::vector<std::pair<std::vector<std::uint64_t>, std::string>> cases{
      {position_too_far, "position (the last word) is above 312"},
      {all_zero, "all zero"},
      {short_state, "expected U64 [313], found U64 [312]"}};
  for (const auto& [words, problem] : cases) {
    CHECK_THROWS_AS(
        dlb::RestoreState(refs, dlb::StateScope::Checkpoint, state_with(words), "DataSet"),
        dlb::StateError);
    CHECK_THROWS_WITH(
        dlb::RestoreState(refs, dlb::StateScope::Checkpoint, state_with(words), "DataSet"),
        Catch::Matchers::Contains("data.generator") && Catch::Matchers::Contains(problem));
    CHECK(live == before);
  }

  dlb::RestoreState(refs, dlb::StateScope::Checkpoint,
                    state_with(std::vector<std::uint64_t>(good.begin(), good.end())), "DataSet");
  CHECK(live == Generator(5));
}
