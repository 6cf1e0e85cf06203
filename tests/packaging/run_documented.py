#!/usr/bin/env python3
"""Runs the install and consumption instructions of a documentation page exactly as written,
with only the paths replaced by the test's own, so that the page cannot drift from what works.

    run_documented.py install DOC SOURCE WORK [CMAKE_ARG...]
        Runs, in SOURCE, the lines of DOC's first ```sh block that contains `cmake --install`,
        with `build` -> WORK/build and `/opt/dlb` -> WORK/prefix. CMAKE_ARGs are appended to
        its `cmake -S` line (e.g. to hide Catch2 and CLI11 for the dependency check).
    run_documented.py consume DOC WAY SOURCE WORK VERSION
        WAY: find_package | fetch_content | add_subdirectory. Copies tests/packaging/consumer to
        WORK/WAY, writes DOC's ```cmake block for that way (the one holding `find_package(dlb`,
        `FetchContent_Declare(` or `add_subdirectory(`) to its dlb_snippet.cmake, then
        configures (CMAKE_PREFIX_PATH=WORK/prefix), builds and runs the consumer. For
        add_subdirectory, third_party/dlblocks is a link to SOURCE; for fetch_content the
        snippet's GIT_REPOSITORY is replaced by a local git repository of SOURCE's files whose
        HEAD carries the annotated tag vVERSION.
        WAY compiled: add_subdirectory as above, plus the ```cmake block of building.md (beside
        DOC) that links dlb::compiled, so that the consumer's program takes the library's
        templates and functions from the compiled part, built with the consumer's flags.
        WAY precompiled: add_subdirectory as above, plus building.md's ```cmake block that
        precompiles <dlb/dlb.hpp> (target_precompile_headers); the build must leave the
        precompiled header (GCC's .gch, clang's .pch) in the consumer's build tree.
"""

import os
import pathlib
import re
import shutil
import subprocess
import sys

FENCE = re.compile(r"^\s*```(\w*)\s*$")
CONSUMER = pathlib.Path(__file__).resolve().parent / "consumer"


def blocks(doc, language):
    """The text of each ```language block of doc (indented blocks of list items too)."""
    lines = pathlib.Path(doc).read_text().splitlines()
    found, current = [], None
    for line in lines:
        match = FENCE.match(line)
        if current is None and match and match.group(1) == language:
            current = []
        elif current is not None and match and not match.group(1):
            found.append("\n".join(l.strip() for l in current) + "\n")
            current = None
        elif current is not None:
            current.append(line)
    return found


def block_with(doc, language, needle):
    for text in blocks(doc, language):
        if needle in text:
            return text
    sys.exit(f"run_documented.py: {doc} has no ```{language} block containing '{needle}'")


def run(command, cwd, **kwargs):
    print("+ " + (command if isinstance(command, str) else " ".join(map(str, command))), flush=True)
    subprocess.run(command, cwd=cwd, check=True, **kwargs)


def install(doc, source, work, extra):
    work = pathlib.Path(work)
    text = block_with(doc, "sh", "cmake --install")
    text = re.sub(r"(-B|--install)\s+build\b", lambda m: f"{m.group(1)} {work / 'build'}", text)
    text = text.replace("/opt/dlb", str(work / "prefix"))
    shutil.rmtree(work / "build", ignore_errors=True)
    shutil.rmtree(work / "prefix", ignore_errors=True)
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if extra and "cmake -S" in line:
            line += " " + " ".join(extra)
        run(line, source, shell=True)
    print("run_documented.py: every command succeeded", flush=True)


def git_repository(source, repo, version):
    """A git repository of SOURCE's files (tracked and untracked, not ignored), tagged."""
    shutil.rmtree(repo, ignore_errors=True)
    files = subprocess.run(["git", "-C", source, "ls-files", "-co", "--exclude-standard", "-z"],
                           check=True, capture_output=True).stdout.decode().split("\0")
    for name in filter(None, files):
        src = pathlib.Path(source) / name
        if src.is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, repo / name)
    git = ["git", "-c", "user.name=dlb-test", "-c", "user.email=dlb-test@invalid", "-C", str(repo)]
    run(git + ["init", "-q"], repo)
    run(git + ["add", "-A"], repo)
    run(git + ["commit", "-q", "-m", "DLBlocks for the FetchContent test"], repo)
    run(git + ["tag", "-a", f"v{version}", "-m", f"DLBlocks {version}"], repo)


def consume(doc, way, source, work, version):
    work = pathlib.Path(work)
    needle = {"find_package": "find_package(dlb", "fetch_content": "FetchContent_Declare(",
              "add_subdirectory": "add_subdirectory(", "compiled": "add_subdirectory(",
              "precompiled": "add_subdirectory("}[way]
    snippet = block_with(doc, "cmake", needle)
    building = pathlib.Path(doc).parent / "building.md"
    if way == "compiled":
        snippet += block_with(building, "cmake", "dlb::compiled")
    if way == "precompiled":
        snippet += block_with(building, "cmake", "target_precompile_headers(")
    project = work / way
    shutil.rmtree(project, ignore_errors=True)
    shutil.copytree(CONSUMER, project / "src")
    if way in ("add_subdirectory", "compiled", "precompiled"):
        (project / "src" / "third_party").mkdir()
        os.symlink(source, project / "src" / "third_party" / "dlblocks")
    if way == "fetch_content":
        repo = work / "dlb-git"
        git_repository(source, repo, version)
        snippet, count = re.subn(r"GIT_REPOSITORY\s+\S+", f"GIT_REPOSITORY file://{repo}", snippet)
        if count != 1:
            sys.exit(f"run_documented.py: the FetchContent block of {doc} has no GIT_REPOSITORY")
    (project / "src" / "dlb_snippet.cmake").write_text(snippet)
    print(f"dlb_snippet.cmake ({way}, from {doc}):\n{snippet}", flush=True)
    # No build type: CMake's default flags (no optimisation, assertions on). What these tests
    # check is the CMake plumbing; the way "compiled" builds the compiled part for the consumer,
    # which took 165 s at Release's -O3 and 132 s unoptimised (one slow core, 2026-12-05).
    run(["cmake", "-S", project / "src", "-B", project / "build",
         f"-DCMAKE_PREFIX_PATH={work / 'prefix'}", "-DFETCHCONTENT_QUIET=ON"], work)
    run(["cmake", "--build", project / "build"], work)
    if way == "precompiled":
        built = [path for pattern in ("*.gch", "*.pch")
                 for path in (project / "build").rglob(pattern)]
        if not built:
            sys.exit("run_documented.py: the build made no precompiled header")
        print(f"precompiled header: {built[0]}", flush=True)
    run([project / "build" / "app"], work)


def main():
    if len(sys.argv) >= 5 and sys.argv[1] == "install":
        install(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:])
    elif len(sys.argv) == 7 and sys.argv[1] == "consume":
        consume(*sys.argv[2:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
