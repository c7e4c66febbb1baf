"""ONNX Runtime thread-spinning policies, and the one chosen by measurement.

After a parallel section, ORT's intra-op pool threads spin (busy-wait) for a
while before sleeping, so that the next section starts without a wake-up. With
one session that is a small win; with several sessions alive in one process
(the harness keeps a canary and an empty model beside what it measures) the
idle pools spin on the cores the running session needs. These are the three
candidates `tools/spinning_policy.py` compared; `DEFAULT` is its verdict (the
numbers are in `tools/spinning_policy.md` and in `TimingPolicy`'s docstring).

The keys were checked against ONNX Runtime's own header
(`onnxruntime_session_options_config_keys.h`): `session.force_spinning_stop` is
a *session* config key ("forces any TP threads spinning stop immediately when
the last of concurrent Run() call returns"), not a RunOptions key; the
RunOptions header has no spinning key at all.

Only `TimingPolicy.session_options()` turns a policy name into session options.
"""

from __future__ import annotations

from edgebert.errors import EdgebertError, nearest

# name -> ORT session config entries. Every entry is spelled out, defaults
# included, so a recorded policy never depends on what ORT's defaults were.
POLICIES: dict[str, dict[str, str]] = {
    # Pool threads never spin: they sleep as soon as a section ends.
    "off": {
        "session.intra_op.allow_spinning": "0",
        "session.inter_op.allow_spinning": "0",
        "session.force_spinning_stop": "0",
    },
    # Spin while a Run() is in flight, stop the moment the last Run() returns.
    "stop": {
        "session.intra_op.allow_spinning": "1",
        "session.inter_op.allow_spinning": "1",
        "session.force_spinning_stop": "1",
    },
    # ORT's default: spin after every section, also after Run() returns.
    "on": {
        "session.intra_op.allow_spinning": "1",
        "session.inter_op.allow_spinning": "1",
        "session.force_spinning_stop": "0",
    },
}

# Chosen by tools/spinning_policy.py on the 2-core Xeon (AVX-512 VNNI) dev box;
# the numbers are in TimingPolicy's docstring and tools/spinning_policy.md.
DEFAULT = "off"


def config_entries(policy: str) -> dict[str, str]:
    """The session config entries of a spinning policy (a copy)."""
    if policy not in POLICIES:
        raise EdgebertError(
            f"unknown spinning policy {policy!r}{nearest(policy, POLICIES)}; "
            f"choose one of {', '.join(POLICIES)}"
        )
    return dict(POLICIES[policy])
