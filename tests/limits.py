"""Wall-clock limits of the test suite: guards against a hang, never a claim about speed.

Machines that run CI differ (AMX Intel, AMD without it, busy or idle), so no test asserts a timing,
a rate or a ratio to a measured peak. A wait that must end somewhere ends after HANG_S seconds: far
beyond what the slowest machine needs, and a wait returns as soon as its condition holds, so a large
limit costs nothing when the test passes. ``MBDPO_TEST_HANG_S`` changes it.
"""
import os

HANG_S = float(os.environ.get("MBDPO_TEST_HANG_S", "1800"))
