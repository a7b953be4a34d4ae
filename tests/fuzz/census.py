"""The fuzz tests' census for docs/reliability.md: per command, how many generated inputs ran, how many
were refused with one line (exit 2), accepted (exit 0, or reached the stubbed work), and tracebacks.

    python -m tests.fuzz.census            # from the repository root; prints a markdown table

It runs the same hypothesis tests with the same seeds and example counts as the suite, counting every
call of the CLI; a traceback would fail the test (and this script) as it does in the suite.
"""

from __future__ import annotations

import collections
from typing import Any, Callable

from hypothesis import HealthCheck, settings

import tests.fuzz.mutations as mutations

settings.register_profile("census", deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("census")

Counts = collections.Counter[tuple[str, str, str]]


def census() -> tuple[Counts, collections.Counter[str]]:
    from tests.fuzz import test_fuzz_argv, test_fuzz_files

    counts: Counts = collections.Counter()
    messages: collections.Counter[str] = collections.Counter()
    original = mutations.run_cli
    current = {"suite": ""}

    def spy(argv: Any) -> tuple[int | str, str, str, list[str]]:
        try:
            result = original(argv)
        except Exception as e:                  # only an older throughput gets here: counted, not raised
            counts[(current["suite"], argv[0], "traceback")] += 1
            messages[f"traceback: {type(e).__name__}: {str(e).splitlines()[0][:80] if str(e) else ''}"] += 1
            return 2, "", "throughput: error: (traceback)\n", []
        status = {0: "accepted", 2: "refused", "reached": "accepted"}.get(result[0], f"exit {result[0]}")
        if result[0] == 2 and (result[2].count("\n") != 1 or not result[2].startswith("throughput: error: ")):
            status = "usage block" if "usage:" in result[2] else "not one line"
            result = (2, "", "throughput: error: (not one line)\n", [])
        counts[(current["suite"], argv[0], status)] += 1
        if status == "refused":
            messages[result[2].split(": ", 2)[-1].split(" (")[0][:60]] += 1
        return result

    mutations.run_cli = spy  # type: ignore[assignment]
    tests: list[tuple[str, Callable[[], None]]] = [
        ("damaged sessions", test_fuzz_files.test_damaged_sessions),
        ("damaged plans", test_fuzz_files.test_damaged_plans),
        ("damaged recipe configs", test_fuzz_files.test_damaged_recipe_configs),
        ("argv", test_fuzz_argv.test_profile_argv),
        ("argv", test_fuzz_argv.test_report_compare_ranks_argv),
        ("argv", test_fuzz_argv.test_advise_argv),
        ("argv", test_fuzz_argv.test_train_ablate_demo_argv),
    ]
    try:
        for suite, test in tests:
            current["suite"] = suite
            test()
    finally:
        mutations.run_cli = original  # type: ignore[assignment]
    return counts, messages


def main() -> None:
    counts, messages = census()
    rows = sorted({(suite, command) for suite, command, _ in counts})
    print("| inputs | command | generated | refused (exit 2, one line) | accepted | usage block or several lines "
          "| tracebacks |")
    print("|---|---|---|---|---|---|---|")
    for suite, command in rows:
        n = {k: counts[(suite, command, k)] for k in ("refused", "accepted", "usage block", "not one line",
                                                       "traceback")}
        total = sum(v for (s, c, _), v in counts.items() if (s, c) == (suite, command))
        print(f"| {suite} | {command} | {total} | {n['refused']} | {n['accepted']} | "
              f"{n['usage block'] + n['not one line']} | {n['traceback']} |")
    print(f"\n{len(messages)} distinct error messages; most frequent:")
    for text, n in messages.most_common(8):
        print(f"- {n} x `{text}`")
    for text, n in sorted(messages.items()):
        if text.startswith("traceback: "):
            print(f"- {n} x {text}")


if __name__ == "__main__":
    main()
