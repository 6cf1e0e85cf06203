#pragma once
// The definitions of dlb/core/cpu_count.hpp: included by that header where it holds them
// (header-only), compiled once into dlb::compiled otherwise (see dlb/core/linkage.hpp).

#include <sched.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "dlb/core/cpu_count.hpp"

namespace dlb::internal {

DLB_INLINE std::string_view TrimSpaces(std::string_view text) {
  const auto first = text.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos) return {};
  return text.substr(first, text.find_last_not_of(" \t\r\n") - first + 1);
}

DLB_INLINE std::optional<int> ParseThreadCount(std::string_view text, bool list) {
  if (list) text = text.substr(0, text.find(','));
  text = TrimSpaces(text);
  if (text.empty() || text.size() > 9) return std::nullopt;
  int value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + (c - '0');
  }
  if (value < 1 || value > kMaxEnvironmentThreads) return std::nullopt;
  return value;
}

DLB_INLINE int AffinityCpuCount() {
  // cpu_set_t holds 1024 CPUs; larger machines need a larger, allocated set.
  for (int cpus = CPU_SETSIZE; cpus <= (1 << 20); cpus *= 2) {
    cpu_set_t* set = CPU_ALLOC(static_cast<std::size_t>(cpus));
    if (set == nullptr) return 0;
    const std::size_t bytes = CPU_ALLOC_SIZE(static_cast<std::size_t>(cpus));
    const bool ok = sched_getaffinity(0, bytes, set) == 0;
    const int count = ok ? CPU_COUNT_S(bytes, set) : 0;
    CPU_FREE(set);
    if (ok) return count;
    if (errno != EINVAL) return 0;  // EINVAL: the kernel's mask is larger than ours
  }
  return 0;
}

DLB_INLINE std::optional<std::string> ReadSmallFile(const std::string& path) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) return std::nullopt;
  std::string text;
  char buffer[4096];
  std::size_t got = 0;
  while ((got = std::fread(buffer, 1, sizeof buffer, file)) > 0) text.append(buffer, got);
  const bool failed = std::ferror(file) != 0;
  std::fclose(file);
  if (failed) return std::nullopt;
  return text;
}

DLB_INLINE std::string RelativePart(std::string_view path) {
  while (!path.empty() && path.front() == '/') path.remove_prefix(1);
  return std::string(path);
}

DLB_INLINE std::string JoinPath(const std::string& dir, std::string_view name) {
  if (name.empty()) return dir;
  if (!dir.empty() && dir.back() == '/') return dir + std::string(name);
  return dir + "/" + std::string(name);
}

DLB_INLINE std::string ParentPath(const std::string& path) {
  std::size_t end = path.size();
  while (end > 1 && path[end - 1] == '/') --end;  // trailing slashes
  const std::size_t slash = path.find_last_of('/', end - (end > 0 ? 1 : 0));
  if (slash == std::string::npos) return "";
  if (slash == 0) return "/";
  std::size_t parent_end = slash;
  while (parent_end > 1 && path[parent_end - 1] == '/') --parent_end;
  return path.substr(0, parent_end);
}

DLB_INLINE bool IsDirectory(const std::string& path) {
  struct stat status {};
  return ::stat(path.c_str(), &status) == 0 && S_ISDIR(status.st_mode);
}

DLB_INLINE std::optional<double> ParseCgroupV2CpuMax(std::string_view text) {
  text = TrimSpaces(text);
  const auto space = text.find(' ');
  if (space == std::string_view::npos) return std::nullopt;
  const std::string quota(TrimSpaces(text.substr(0, space)));
  const std::string period(TrimSpaces(text.substr(space + 1)));
  if (quota == "max") return std::nullopt;
  char* end = nullptr;
  const double q = std::strtod(quota.c_str(), &end);
  if (end == quota.c_str() || *end != '\0') return std::nullopt;
  const double p = std::strtod(period.c_str(), &end);
  if (end == period.c_str() || *end != '\0') return std::nullopt;
  if (!(q > 0) || !(p > 0)) return std::nullopt;
  return q / p;
}

DLB_INLINE std::optional<double> ParseCgroupV1CpuQuota(std::string_view quota,
                                                       std::string_view period) {
  const std::string q_text(TrimSpaces(quota)), p_text(TrimSpaces(period));
  char* end = nullptr;
  const double q = std::strtod(q_text.c_str(), &end);
  if (end == q_text.c_str() || *end != '\0') return std::nullopt;
  const double p = std::strtod(p_text.c_str(), &end);
  if (end == p_text.c_str() || *end != '\0') return std::nullopt;
  if (!(q > 0) || !(p > 0)) return std::nullopt;
  return q / p;
}

DLB_INLINE std::optional<double> TighterLimit(std::optional<double> a, std::optional<double> b) {
  if (!a) return b;
  if (!b) return a;
  return std::min(*a, *b);
}

/// The CPU limit of `dir` and of each directory above it up to and including `top` (a cgroup
/// is limited by its ancestors too), read by `limit_of(directory)`. Directories that do not
/// exist are skipped: without a cgroup namespace, /proc/self/cgroup may name a path the
/// container's mount does not have, and the container's own limit then sits at `top`.
template <class LimitOf>
std::optional<double> TightestLimitUpTo(const std::string& top, const std::string& dir,
                                        LimitOf&& limit_of) {
  std::optional<double> tightest;
  std::string at = dir;
  while (true) {
    if (IsDirectory(at)) tightest = TighterLimit(tightest, limit_of(at));
    const std::string parent = ParentPath(at);
    if (at == top || RelativePart(at).empty() || parent == at) break;
    // Never climb above `top`.
    if (parent.size() < top.size()) break;
    at = parent;
  }
  return tightest;
}

DLB_INLINE std::optional<double> CgroupCpuLimit(const std::string& root,
                                                std::string_view self_cgroup) {
  std::optional<double> limit;
  while (!self_cgroup.empty()) {
    const auto newline = self_cgroup.find('\n');
    const std::string_view line = self_cgroup.substr(0, newline);
    self_cgroup = newline == std::string_view::npos ? std::string_view{}
                                                    : self_cgroup.substr(newline + 1);
    const auto first = line.find(':');
    const auto second = first == std::string_view::npos ? first : line.find(':', first + 1);
    if (second == std::string_view::npos) continue;
    const std::string_view controllers = line.substr(first + 1, second - first - 1);
    const std::string_view path = TrimSpaces(line.substr(second + 1));
    const std::string relative = RelativePart(path);
    const auto below = [&relative](const std::string& top) { return JoinPath(top, relative); };
    if (controllers.empty()) {  // cgroup v2
      limit = TighterLimit(limit, TightestLimitUpTo(root, below(root), [](const std::string& dir) {
        const auto text = ReadSmallFile(JoinPath(dir, "cpu.max"));
        return text ? ParseCgroupV2CpuMax(*text) : std::nullopt;
      }));
      continue;
    }
    bool has_cpu = false;
    std::string_view rest = controllers;
    while (!rest.empty()) {
      const auto comma = rest.find(',');
      if (rest.substr(0, comma) == "cpu") has_cpu = true;
      rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
    }
    if (!has_cpu) continue;
    const auto v1_limit = [](const std::string& dir) -> std::optional<double> {
      const auto quota = ReadSmallFile(JoinPath(dir, "cpu.cfs_quota_us"));
      const auto period = ReadSmallFile(JoinPath(dir, "cpu.cfs_period_us"));
      if (!quota || !period) return std::nullopt;
      return ParseCgroupV1CpuQuota(*quota, *period);
    };
    for (const std::string& mount : {JoinPath(root, "cpu"), JoinPath(root, controllers)}) {
      if (!IsDirectory(mount)) continue;
      limit = TighterLimit(limit, TightestLimitUpTo(mount, below(mount), v1_limit));
      break;
    }
  }
  return limit;
}

DLB_INLINE int ChooseThreadCount(const char* dlb_num_threads, const char* omp_num_threads,
                                 int affinity_cpus, std::optional<double> cgroup_cpus,
                                 int hardware_threads, std::vector<std::string>* ignored) {
  struct Variable {
    const char* name;
    const char* text;
    bool list;
  };
  for (const Variable& variable : {Variable{"DLB_NUM_THREADS", dlb_num_threads, false},
                                   Variable{"OMP_NUM_THREADS", omp_num_threads, true}}) {
    if (variable.text == nullptr) continue;
    if (const auto count = ParseThreadCount(variable.text, variable.list)) return *count;
    if (ignored != nullptr) {
      ignored->push_back(std::string("dlb: ignoring ") + variable.name + "='" + variable.text +
                         "': expected a whole number from 1 to " +
                         std::to_string(kMaxEnvironmentThreads));
    }
  }
  int count = affinity_cpus > 0 ? affinity_cpus : hardware_threads;
  if (cgroup_cpus && *cgroup_cpus > 0 && *cgroup_cpus < static_cast<double>(count)) {
    count = static_cast<int>(std::ceil(*cgroup_cpus));
  }
  return std::max(1, count);
}

DLB_INLINE int DetectThreadCount() {
  const auto self_cgroup = ReadSmallFile("/proc/self/cgroup");
  const std::optional<double> cgroup_cpus =
      self_cgroup ? CgroupCpuLimit("/sys/fs/cgroup", *self_cgroup) : std::nullopt;
  std::vector<std::string> ignored;
  const int count = ChooseThreadCount(
      std::getenv("DLB_NUM_THREADS"), std::getenv("OMP_NUM_THREADS"), AffinityCpuCount(),
      cgroup_cpus, static_cast<int>(std::thread::hardware_concurrency()), &ignored);
  for (const std::string& line : ignored) std::fprintf(stderr, "%s\n", line.c_str());
  return count;
}

}  // namespace dlb::internal
