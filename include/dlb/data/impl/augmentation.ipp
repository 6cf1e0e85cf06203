#pragma once
// The definitions of dlb/data/augmentation.hpp: included by that header where it holds them
// (header-only), compiled once into dlb::compiled otherwise (see dlb/core/linkage.hpp).

#include <algorithm>
#include <cmath>
#include <exception>
#include <string>
#include <variant>
#include <vector>

#include "dlb/data/augmentation.hpp"

namespace dlb {

DLB_INLINE std::vector<ImageTransform> ParseAugmentation(const std::string& text) {
  std::vector<ImageTransform> transforms;
  if (text.empty() || text == "none") return transforms;
  std::size_t start = 0;
  while (start <= text.size()) {
    const std::size_t end = std::min(text.find(',', start), text.size());
    const std::string item = text.substr(start, end - start);
    const std::size_t colon = item.find(':');
    const std::string name = item.substr(0, colon);
    const bool has_value = colon != std::string::npos;
    const std::string value = has_value ? item.substr(colon + 1) : "";
    auto fail = [&](const std::string& why) {
      return ArgumentError("ParseAugmentation: item '" + item + "' of '" + text + "': " + why +
                           " (expected e.g. crop:2,flip,erase:0.25)");
    };
    auto number = [&](double low, double high) {
      std::size_t used = 0;
      double x = 0;
      try {
        x = std::stod(value, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (value.empty() || used != value.size() || !(x >= low && x <= high)) {
        throw fail("the value must be a number from " + std::to_string(low) + " to " +
                   std::to_string(high));
      }
      return x;
    };
    if (name == "crop") {
      const double pad = has_value ? number(0, 64) : 2;
      if (pad != std::floor(pad)) throw fail("the padding must be a whole number of pixels");
      transforms.emplace_back(RandomCrop{static_cast<Index>(pad)});
    } else if (name == "flip") {
      transforms.emplace_back(HorizontalFlip{has_value ? number(0, 1) : 0.5});
    } else if (name == "erase") {
      RandomErasing erase;
      erase.p = has_value ? number(0, 1) : 0.5;
      transforms.emplace_back(erase);
    } else {
      throw fail("unknown transform '" + name + "'; known: crop, flip, erase");
    }
    if (end == text.size()) break;
    start = end + 1;
  }
  return transforms;
}

DLB_INLINE std::string DescribeAugmentation(const std::vector<ImageTransform>& transforms) {
  auto number = [](double x) {
    std::string text = std::to_string(x);
    text.erase(text.find_last_not_of('0') + 1);
    if (text.back() == '.') text.pop_back();
    return text;
  };
  std::string text;
  for (const ImageTransform& transform : transforms) {
    if (!text.empty()) text += ",";
    if (const auto* crop = std::get_if<RandomCrop>(&transform)) {
      text += "crop:" + std::to_string(crop->pad);
    } else if (const auto* flip = std::get_if<HorizontalFlip>(&transform)) {
      text += "flip:" + number(flip->p);
    } else {
      text += "erase:" + number(std::get<RandomErasing>(transform).p);
    }
  }
  return text.empty() ? "none" : text;
}

}  // namespace dlb
