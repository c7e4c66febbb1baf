from edgebert.device.fingerprint import DRIFTING, describe, fingerprint, match_key
from edgebert.device.spinning import DEFAULT


def test_fields():
    fp = fingerprint(2)
    for key in ("cpu_model", "physical_cores", "logical_cores", "isa", "os", "kernel", "machine", "python",
                "onnxruntime", "numpy", "threads", "precision", "spinning", "cpu_freq_mhz"):
        assert key in fp
    assert fp["threads"] == 2 and fp["precision"] == "fp32" and fp["spinning"] == DEFAULT
    assert all(isinstance(v, bool) for v in fp["isa"].values())


def test_match_key_ignores_frequency():
    a, b = fingerprint(2), fingerprint(2)
    b["cpu_freq_mhz"] = (a["cpu_freq_mhz"] or 1000.0) * 0.5  # a throttled minute later
    assert match_key(a) == match_key(b)
    assert not set(DRIFTING) & set(match_key(a))


def test_match_key_sees_settings():
    assert match_key(fingerprint(2)) != match_key(fingerprint(1))
    assert match_key(fingerprint(2, "int8")) != match_key(fingerprint(2, "fp32"))
    assert match_key(fingerprint(2, spinning="off")) != match_key(fingerprint(2, spinning="on"))


def test_describe_is_one_line():
    line = describe(fingerprint(2, "int8"))
    assert "\n" not in line and "int8" in line and "2 thr" in line
