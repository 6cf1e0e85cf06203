#pragma once
/// \file
/// How many threads the library starts with: the CPUs this process may use, or what the
/// environment asks for.
///
/// The default (DefaultThreadCount) is, in this order of precedence:
///  1. DLB_NUM_THREADS, a whole number >= 1;
///  2. OMP_NUM_THREADS, a whole number >= 1 or a list of them ("4,2": the first), as OpenMP
///     runtimes read it;
///  3. min(CPUs in the affinity mask, the cgroup's CPU quota rounded up), at least 1. The
///     affinity mask is what `taskset`, `numactl` or a container's cpuset allow; the quota is
///     what `docker --cpus`, Kubernetes CPU limits or systemd's CPUQuota= allow (cgroup v2
///     `cpu.max`, cgroup v1 `cpu.cfs_quota_us / cpu.cfs_period_us`). Rounding up follows the
///     JVM and .NET: a 1.5-CPU quota gets 2 threads.
/// A variable set to anything else is ignored, with one line on stderr saying so.
///
/// Every piece is a function of its inputs (texts, a directory) so that the tests can feed it
/// made-up environments and cgroup trees; DetectThreadCount puts the real ones together.
/// Paths are plain strings and files are read with std::fopen: this header is part of every
/// program (core/parallel.hpp), and the standard filesystem and fstream headers (which bring
/// locale and iomanip along) cost about half a second of compile time in each translation
/// unit.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dlb/core/linkage.hpp"

namespace dlb::internal {

/// Largest thread count an environment variable may ask for; larger values are rejected as
/// typos rather than starting that many threads.
inline constexpr int kMaxEnvironmentThreads = 1 << 16;

/// `text` without leading and trailing spaces, tabs and newlines.
DLB_INLINE std::string_view TrimSpaces(std::string_view text);

/// The thread count a variable's text asks for: a whole number in 1 .. kMaxEnvironmentThreads,
/// spaces around it allowed; with `list`, the first item of a comma-separated list (OpenMP's
/// "outer,inner" form). Empty for anything else ("", "0", "-2", "2.5", "4x", "99999999").
DLB_INLINE std::optional<int> ParseThreadCount(std::string_view text, bool list);

/// CPUs in this process's affinity mask (sched_getaffinity), or 0 when it cannot be read.
DLB_INLINE int AffinityCpuCount();

/// The whole content of a small file, or empty when it cannot be read. Reads to the end of
/// the file, since the files under /proc and /sys report a size of 0.
DLB_INLINE std::optional<std::string> ReadSmallFile(const std::string& path);

/// `path` without its leading slashes ("/user.slice/job" -> "user.slice/job", "/" -> "").
DLB_INLINE std::string RelativePart(std::string_view path);

/// `dir`/`name`; `dir` itself when `name` is empty.
DLB_INLINE std::string JoinPath(const std::string& dir, std::string_view name);

/// The directory above `path` ("/a/b" -> "/a", "/a" -> "/", "/" -> "/", "a" -> "").
DLB_INLINE std::string ParentPath(const std::string& path);

/// Whether `path` names a directory (following symbolic links).
DLB_INLINE bool IsDirectory(const std::string& path);

/// CPUs allowed by a cgroup v2 `cpu.max` text "QUOTA PERIOD" (e.g. "150000 100000": 1.5), or
/// empty when unlimited ("max 100000") or unreadable.
DLB_INLINE std::optional<double> ParseCgroupV2CpuMax(std::string_view text);

/// CPUs allowed by cgroup v1 `cpu.cfs_quota_us` and `cpu.cfs_period_us` texts, or empty when
/// unlimited (quota -1) or unreadable.
DLB_INLINE std::optional<double> ParseCgroupV1CpuQuota(std::string_view quota,
                                                       std::string_view period);

/// The smaller of two limits, either of which may be absent (unlimited).
DLB_INLINE std::optional<double> TighterLimit(std::optional<double> a, std::optional<double> b);

/// The CPU quota, in CPUs (fractional), of the cgroup a process is in, or empty when it has
/// none.
///
/// `root` is where the cgroup file systems are mounted (normally /sys/fs/cgroup) and
/// `self_cgroup` the text of that process's /proc/self/cgroup: lines "ID:CONTROLLERS:PATH".
/// cgroup v2 (the "0::PATH" line): `cpu.max` of ROOT/PATH and its ancestors. cgroup v1 (the
/// line whose controllers include "cpu"): `cpu.cfs_quota_us` and `cpu.cfs_period_us` under
/// ROOT/cpu/PATH, or ROOT/CONTROLLERS/PATH (e.g. "cpu,cpuacct"), and their ancestors. The
/// tightest limit found wins.
DLB_INLINE std::optional<double> CgroupCpuLimit(const std::string& root,
                                                std::string_view self_cgroup);

/// The thread count chosen from its sources (see the file comment): the texts of
/// DLB_NUM_THREADS and OMP_NUM_THREADS (nullptr when unset), the CPUs in the affinity mask
/// (0 when unknown: then `hardware_threads`) and the cgroup's CPU limit. Each variable that is
/// set but not a valid count adds a line to `ignored` (when given). Ensures a result >= 1.
DLB_INLINE int ChooseThreadCount(const char* dlb_num_threads, const char* omp_num_threads,
                                 int affinity_cpus, std::optional<double> cgroup_cpus,
                                 int hardware_threads, std::vector<std::string>* ignored = nullptr);

/// ChooseThreadCount of this process: its environment, affinity mask and cgroup (mounted at
/// /sys/fs/cgroup). Reads them anew on every call; ignored variables are reported on stderr.
DLB_INLINE int DetectThreadCount();

}  // namespace dlb::internal

#if DLB_HEADER_DEFINITIONS
#include "dlb/core/impl/cpu_count.ipp"
#endif
