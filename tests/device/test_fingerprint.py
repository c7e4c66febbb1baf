from edgebert.device.fingerprint import (DRIFTING, IDENTITY, _caches_kib, describe, differences, fingerprint, machine_key,
                                        machine_name, match_key)
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


def test_identity_is_recorded_and_not_a_setting():
    fp = fingerprint(2)
    assert fp["fingerprint_version"] == 2 and "cpu_id" in fp and isinstance(fp["caches_kib"], dict)
    assert "fingerprint_version" not in match_key(fp)
    assert differences(fp, fingerprint(2)) == []


def test_two_cpus_under_one_masked_name_differ():
    a = fingerprint(2)
    b = {**a, "cpu_id": "GenuineIntel family 6 model 143 stepping 8", "caches_kib": {"L2": 2048, "L3": 107520}}
    a = {**a, "cpu_id": "GenuineIntel family 6 model 167 stepping 1"}
    assert set(differences(a, b)) == {"caches_kib", "cpu_id"}
    assert machine_key(a) != machine_key(b) and "[" in machine_name(a)


def test_a_version_1_fingerprint_is_told_apart_by_its_clock():
    here = {**fingerprint(2), "cpu_freq_mhz": 2600.0}
    old = {k: v for k, v in here.items() if k not in IDENTITY}
    old["fingerprint_version"] = 1
    assert differences({**old, "cpu_freq_mhz": 2596.1}, here) == []  # within CLOCK_TOLERANCE
    assert differences({**old, "cpu_freq_mhz": 2100.0}, here) == ["cpu_freq_mhz"]
    assert differences({**old, "cpu_freq_mhz": None}, here) == []  # no clock recorded: nothing to tell


def test_caches_are_read_from_sysfs(tmp_path):
    for i, (level, kind, size) in enumerate([("1", "Data", "48K"), ("2", "Unified", "2048K"), ("3", "Unified", "1M")]):
        d = tmp_path / f"index{i}"
        d.mkdir()
        for name, value in (("level", level), ("type", kind), ("size", size)):
            (d / name).write_text(value + "\n")
    assert _caches_kib(tmp_path) == {"L1d": 48, "L2": 2048, "L3": 1024}
    assert _caches_kib(tmp_path / "absent") == {}
