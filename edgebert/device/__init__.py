"""How to time an ONNX file on a target device; knows nothing of BERT.

    fingerprint.py  what a device is (CPU, cores, ISA, versions, harness settings)
    spinning.py     ORT thread-spinning policies and the measured default
    runners.py      where jobs run (LocalRunner: a fresh subprocess per job)
    worker.py       the device-side script (stdlib + numpy + onnxruntime only)
    canary.py       the reference models every window runs (canary, empty model)
    stats.py        median / p90 / p99 / spread of run times
    timing.py       the one timing harness: TimingPolicy, Workload, measure()
"""
