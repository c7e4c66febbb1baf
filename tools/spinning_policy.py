"""Choose ONNX Runtime's thread-spinning policy for edgebert's timing harness, by measurement.

    python tools/spinning_policy.py [--runs 20] [--quiet-rounds 4] [--md out.md]

The harness (edgebert.device.timing) keeps several sessions alive in one worker
process: the workloads, a canary and an empty model. ORT's default intra-op
spinning lets idle sessions' pools steal the cores the running one needs, so
the interleaved figures can stop describing a model that runs alone, which is
how it will be deployed. For each candidate policy (edgebert.device.spinning)
this script times a BERT-base-sized and a tinybert-4-sized model (random
weights; only their size matters)

  - interleaved: both in one harness window, with canary and empty model;
  - alternating: the same, switching model after every run (rounds = runs);
  - alone: each in a worker process of its own, no other session;

in rounds that rotate the policy order, because this machine's speed drifts
by up to 2x within a minute: compare only within a round, quote medians over
rounds, and count only quiet rounds (the worker reports how much CPU other
processes took meanwhile) once every policy has `--quiet-rounds` of them. The chosen policy is the one whose interleaved medians
deviate least from the alone medians; scores within noise of each other tie,
and the smallest empty-run overhead breaks the tie.
Writes a JSON record (default: $EDGEBERT_CACHE/spinning/spinning_policy.json).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgebert.device import spinning  # noqa: E402
from edgebert.device.canary import cache_dir  # noqa: E402
from edgebert.device.fingerprint import describe  # noqa: E402
from edgebert.device.stats import median  # noqa: E402
from edgebert.device.timing import InputSpec, TimingPolicy, Workload, measure  # noqa: E402

SEQ = 128
# (layers, hidden, intermediate, heads): BERT-base and TinyBERT-4.
MODELS = {"bert-base": (12, 768, 3072, 12), "tinybert-4": (4, 312, 1200, 12)}
TIE = 0.02  # scores closer than 2 points tie (declared before measuring; the md also shows each score's se)


def export(name: str, workdir: Path) -> Path:
    """A random-weight BertModel of that size as ONNX (opset 17, TorchScript exporter), cached."""
    path = workdir / f"{name}-seq{SEQ}.onnx"
    if path.exists():
        return path
    import torch
    from transformers import BertConfig, BertModel

    layers, hidden, inner, heads = MODELS[name]
    torch.manual_seed(0)
    config = BertConfig(num_hidden_layers=layers, hidden_size=hidden, intermediate_size=inner,
                        num_attention_heads=heads, attn_implementation="eager")
    model = BertModel(config).eval()
    ids = torch.randint(0, config.vocab_size, (1, SEQ))
    args = (ids, torch.ones_like(ids), torch.zeros_like(ids))
    tmp = path.with_suffix(".tmp")
    with torch.no_grad():
        torch.onnx.export(model, args, str(tmp), dynamo=False, opset_version=17,
                          input_names=["input_ids", "attention_mask", "token_type_ids"],
                          output_names=["last_hidden_state", "pooler_output"])
    tmp.rename(path)
    return path


def workload(name: str, path: Path) -> Workload:
    return Workload(name=name, onnx_path=path, inputs=[
        InputSpec(name="input_ids", shape=[1, SEQ], high=30522),
        InputSpec(name="attention_mask", shape=[1, SEQ], fill=1),
        InputSpec(name="token_type_ids", shape=[1, SEQ], fill=0),
    ])


MODES = ("interleaved", "alternating", "alone")


def one_round(policy_name: str, loads: list[Workload], runs: int, turn: int) -> dict:
    """Both models in each mode under one policy, adjacent in time: {model: {mode: figures}}.

    interleaved: the harness as it is (default rounds), with canary and empty model;
    alternating: the same, but switching model after every run (rounds = runs), the
                 worst case for sessions disturbing each other;
    alone:       each model in a worker process of its own, no other session.
    The order of the measurements rotates with `turn`, so that a machine slowing
    down (or speeding up) within a round biases no mode consistently.
    """
    record: dict = {w.name: {} for w in loads}
    loads_seen: list[float | None] = []

    def together(mode: str, policy: TimingPolicy):
        def step():
            report = measure(loads, policy=policy)
            record.setdefault("references", {})[mode] = {
                "canary_ms": report.canary_median_ms, "empty_ms": report.overhead_ms}
            loads_seen.append(report.foreign_load)
            record["session_options"], record["fingerprint"] = report.session_options, report.fingerprint
            for w in loads:
                record[w.name][mode] = {"median_ms": report[w.name].median_ms, "p90_ms": report[w.name].p90_ms}
        return step

    def alone(w: Workload, policy: TimingPolicy):
        def step():
            report = measure([w], policy=policy, references=False)
            t = report[w.name]
            record[w.name]["alone"] = {"median_ms": t.median_ms, "p90_ms": t.p90_ms}
            loads_seen.append(report.foreign_load)
        return step

    harness = TimingPolicy(spinning=policy_name, runs=runs)
    steps = [together("interleaved", harness),
             together("alternating", TimingPolicy(spinning=policy_name, runs=runs, rounds=runs)),
             *[alone(w, harness) for w in loads]]
    for step in steps[turn % len(steps):] + steps[:turn % len(steps)]:
        step()
    # The busiest of the four measurements: other processes' share of the CPU (None off Linux).
    known = [v for v in loads_seen if v is not None]
    record["foreign_load"] = max(known) if known else None
    return record


IDLE_MS = (5, 20, 100)


def linger_probe(policy_name: str, path: str, repeats: int = 5) -> dict:
    """CPU ms this process burns while idle for each of IDLE_MS after a Run() returns.

    CPU time, not wall time, so other tenants cannot inflate it: it shows the
    mechanism even on a busy machine. Under ORT's default spinning it is the
    core an idle session steals from whichever session the harness runs next.
    Runs in a fresh process (see `linger`), so no other thread pool is counted.
    """
    import numpy as np

    from edgebert.device.timing import make_session

    session = make_session(path, TimingPolicy(spinning=policy_name))
    ids = np.random.default_rng(0).integers(0, 30522, (1, SEQ))
    feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
    for _ in range(3):
        session.run(None, feeds)
    burnt = {}
    for idle in IDLE_MS:
        samples = []
        for _ in range(repeats):
            session.run(None, feeds)
            c0 = time.process_time()
            time.sleep(idle / 1000)
            samples.append((time.process_time() - c0) * 1000)
        burnt[str(idle)] = median(samples)
    return burnt


def cost_probe(path: str, cycles: int = 40) -> dict:
    """Median ms of a model alone under each policy, all in one process, so drift hits all alike.

    One session per policy; blocks of 10 timed runs rotate among them, each
    after a 150 ms pause in which any pool still spinning from the previous
    block goes to sleep: every block is a model alone, and the fine rotation
    makes the policies share whatever the machine does meanwhile.
    """
    import numpy as np

    from edgebert.device.canary import CANARY_INPUTS
    from edgebert.device.timing import make_session

    rng = np.random.default_rng(0)
    if path == "canary":
        from edgebert.device.canary import canary_path

        path, spec = str(canary_path()), CANARY_INPUTS[0]
        feeds = {"x": rng.uniform(-1, 1, spec["shape"]).astype(np.float32)}
    else:
        ids = rng.integers(0, 30522, (1, SEQ))
        feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
    policies = list(spinning.POLICIES)
    sessions = {p: make_session(path, TimingPolicy(spinning=p)) for p in policies}
    times: dict = {p: [] for p in policies}
    for cycle in range(cycles):
        for p in policies[cycle % 3:] + policies[:cycle % 3]:
            time.sleep(0.15)
            sessions[p].run(None, feeds)  # untimed: the first run after a pause wakes the pool
            for _ in range(10):
                t0 = time.perf_counter_ns()
                sessions[p].run(None, feeds)
                times[p].append((time.perf_counter_ns() - t0) / 1e6)
    return {p: median(t) for p, t in times.items()}


def _probe(*args: str) -> dict:
    """Run a probe of this script in a fresh process, so no other thread pool is counted."""
    import subprocess

    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def _quartiles(values: list[float]) -> list[float]:
    import numpy as np

    return [float(q) for q in np.percentile(values, [25, 75])]


def quiet(record: dict, threshold: float) -> bool:
    """True when other processes used at most `threshold` of the CPU during all four measurements."""
    return record["foreign_load"] is not None and record["foreign_load"] <= threshold


def summarize(rounds: list[dict], names: list[str], threshold: float, least: int) -> dict:
    """Per policy: medians over its rounds of each figure, and deviations and ratios computed per round.

    Only quiet rounds count when a policy has at least `least` of them (else all
    do, flagged). Deviations are per round, so that a machine drifting between
    rounds does not masquerade as one; their quartiles show the noise left.
    """
    big, small = names
    out = {}
    for policy in spinning.POLICIES:
        rows = [r[policy] for r in rounds if quiet(r[policy], threshold)]
        s: dict = {"quiet_only": len(rows) >= least}
        rows = rows if s["quiet_only"] else [r[policy] for r in rounds]
        s["rounds"] = len(rows)
        s["foreign_load"] = median([r["foreign_load"] or 0.0 for r in rows])
        for mode in ("interleaved", "alternating"):
            for key in ("canary_ms", "empty_ms"):
                s[f"{mode}.{key}"] = median([r["references"][mode][key] for r in rows])
        for mode in MODES:
            s[f"ratio.{mode}"] = median([r[big][mode]["median_ms"] / r[small][mode]["median_ms"] for r in rows])
            for n in names:
                for key in ("median_ms", "p90_ms"):
                    s[f"{n}.{mode}.{key}"] = median([r[n][mode][key] for r in rows])
        for n in names:
            for mode in ("interleaved", "alternating"):
                devs = [r[n][mode]["median_ms"] / r[n]["alone"]["median_ms"] - 1 for r in rows]
                s[f"{n}.{mode}.deviation"] = median(devs)
                s[f"{n}.{mode}.deviation_iqr"] = _quartiles(devs)
            # Does canary normalisation hold as the load changes? Spread of per-round
            # normalised values (IQR / median) over rounds; smaller is steadier.
            norm = [r[n]["interleaved"]["median_ms"] / r["references"]["interleaved"]["canary_ms"] for r in rows]
            q1, q3 = _quartiles(norm)
            s[f"{n}.interleaved.normalised_spread"] = (q3 - q1) / median(norm)
        worst = max(((n, m) for n in names for m in ("interleaved", "alternating")),
                    key=lambda nm: abs(s[f"{nm[0]}.{nm[1]}.deviation"]))
        s["score"] = abs(s[f"{worst[0]}.{worst[1]}.deviation"])
        # Standard error of that median, from its quartiles (normal approximation):
        # how far apart two scores must be before the difference means anything.
        q1, q3 = s[f"{worst[0]}.{worst[1]}.deviation_iqr"]
        s["score_se"] = 1.2533 * (q3 - q1) / 1.349 / len(rows) ** 0.5
        out[policy] = s
    for s in out.values():
        for n in names:
            # Against a model alone with ORT's defaults (spinning on): the usual deployment.
            s[f"{n}.interleaved.vs_ort_default_alone"] = (
                s[f"{n}.interleaved.median_ms"] / out["on"][f"{n}.alone.median_ms"] - 1)
    return out


def choose(summary: dict) -> str:
    """Lowest score; scores within noise of the best tie, and the tie goes to the smallest per-run overhead.

    Within noise: closer than TIE, or than the two scores' combined standard
    error, whichever is larger; on a busy machine the latter decides.
    """
    best = min(summary, key=lambda p: summary[p]["score"])
    b = summary[best]
    tied = [p for p, s in summary.items()
            if s["score"] - b["score"] <= max(TIE, (s["score_se"] ** 2 + b["score_se"] ** 2) ** 0.5)]
    return min(tied, key=lambda p: summary[p]["interleaved.empty_ms"])


def markdown(summary: dict, names: list[str], chosen: str, meta: dict, burnt: dict, alone_cost: dict) -> str:
    big, small = names
    lines = [
        f"Device: {meta['device']}  ",
        f"{meta['rounds']} rounds x {meta['runs']} runs per model per measurement, {meta['threads']} threads, "
        f"{meta['seconds']:.0f} s: `{meta['command']}`  ",
        "Rounds used per policy (quiet = other processes used <= "
        f"{meta['quiet']:.0%} of the CPU): "
        + ", ".join(f"{p} {s['rounds']}{' quiet' if s['quiet_only'] else ' (all; too few quiet)'} "
                    f"(median foreign load {s['foreign_load']:.0%})" for p, s in summary.items()),
        "",
        "Medians over rounds of each measurement's median ms (p90 in brackets):",
        "",
        f"| policy | {big} interleaved / alternating / alone | {small} interleaved / alternating / alone "
        f"| ratio {big}/{small} interleaved / alternating / alone | empty-run ms | canary ms |",
        "|---|---|---|---|---|---|",
    ]
    for p, s in summary.items():
        cells = [" / ".join(f"{s[f'{n}.{m}.median_ms']:.1f} ({s[f'{n}.{m}.p90_ms']:.1f})" for m in MODES)
                 for n in names]
        ratio = " / ".join(f"{s[f'ratio.{m}']:.2f}" for m in MODES)
        lines.append(f"| {p} | {cells[0]} | {cells[1]} | {ratio} | "
                     f"{s['interleaved.empty_ms']:.4f} | {s['interleaved.canary_ms']:.3f} |")
    lines += ["", "Deviation from the same model alone, median over rounds of per-round values "
              "[quartiles]; last column against alone with ORT's default spinning:", "",
              f"| policy | {big} interleaved | {big} alternating | {small} interleaved | {small} alternating "
              f"| interleaved vs ORT-default alone {big} / {small} | normalised spread over rounds {big} / {small} "
              "| score ± se |",
              "|---|---|---|---|---|---|---|---|"]
    for p, s in summary.items():
        cells = [f"{s[f'{n}.{m}.deviation']:+.1%} [{s[f'{n}.{m}.deviation_iqr'][0]:+.0%}, "
                 f"{s[f'{n}.{m}.deviation_iqr'][1]:+.0%}]" for n in names for m in ("interleaved", "alternating")]
        lines.append(f"| {'**' + p + '**' if p == chosen else p} | {' | '.join(cells)} | "
                     f"{s[f'{big}.interleaved.vs_ort_default_alone']:+.1%} / "
                     f"{s[f'{small}.interleaved.vs_ort_default_alone']:+.1%} | "
                     f"{s[f'{big}.interleaved.normalised_spread']:.2f} / "
                     f"{s[f'{small}.interleaved.normalised_spread']:.2f} | {s['score']:.1%} ± {s['score_se']:.1%} |")
    lines += ["", f"CPU ms a tinybert-4 session burns while idle for {' / '.join(map(str, IDLE_MS))} ms "
              "after a Run() returns (process CPU time, immune to other tenants): "
              + "; ".join(f"{p} {' / '.join(f'{v:.1f}' for v in b.values())}" for p, b in burnt.items()) + "."]
    lines += ["", "Each policy's cost to a model alone (one process, policies in rotated blocks after "
              "150 ms pauses, so drift hits all alike), median ms: "
              + "; ".join(f"{n} " + ", ".join(f"{p} {v:.3f} ({v / c['on']:.2f}x on)" for p, v in c.items())
                          for n, c in alone_cost.items()) + "."]
    lines += ["", f"Chosen: **{chosen}** (score = worst |deviation| over models and both interleaved modes; "
              f"scores closer to the best than {TIE:.0%} or than their combined standard error tie, "
              "and the tie goes to the smallest empty-run overhead)."]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="timed runs per model per measurement")
    parser.add_argument("--quiet", type=float, default=0.15,
                        help="a round is quiet when other processes used at most this share of the CPU")
    parser.add_argument("--quiet-rounds", type=int, default=4, help="stop once every policy has this many")
    parser.add_argument("--max-rounds", type=int, default=20, help="stop after this many rounds regardless")
    parser.add_argument("--workdir", type=Path, default=None, help="where models and the JSON go")
    parser.add_argument("--md", type=Path, default=None, help="also write the Markdown tables here")
    parser.add_argument("--from-json", type=Path, default=None,
                        help="re-summarize the rounds of an earlier JSON record instead of measuring them")
    parser.add_argument("--linger-probe", nargs=2, metavar=("POLICY", "ONNX"), help=argparse.SUPPRESS)
    parser.add_argument("--cost-probe", metavar="ONNX", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.linger_probe:
        print(json.dumps(linger_probe(*args.linger_probe)))
        return 0
    if args.cost_probe:
        print(json.dumps(cost_probe(args.cost_probe)))
        return 0
    workdir = args.workdir or cache_dir() / "spinning"
    workdir.mkdir(parents=True, exist_ok=True)

    names = list(MODELS)
    loads = [workload(n, export(n, workdir)) for n in names]
    policies = list(spinning.POLICIES)
    earlier = json.loads(args.from_json.read_text()) if args.from_json else {}
    # Cheap and immune to slow drift: measured first (or taken from the earlier record).
    burnt = earlier.get("idle_cpu_ms") or {
        p: _probe("--linger-probe", p, str(loads[-1].onnx_path)) for p in policies}
    print(f"CPU ms burnt while idle {IDLE_MS} ms after a run: {burnt}", file=sys.stderr, flush=True)
    alone_cost = earlier.get("alone_cost_ms") or {
        n: _probe("--cost-probe", path) for n, path in (("canary", "canary"), (names[-1], str(loads[-1].onnx_path)))}
    print(f"alone, same process, rotated blocks (ms): {alone_cost}", file=sys.stderr, flush=True)
    start = time.time()
    rounds = earlier["rounds"] if earlier else []
    for w in range(0 if earlier else args.max_rounds):
        order = policies[w % len(policies):] + policies[:w % len(policies)]
        rounds.append({p: one_round(p, loads, args.runs, w) for p in order})
        brief = "  ".join(f"{p} (load {rounds[-1][p]['foreign_load'] or 0:.2f}): " + " ".join(
            f"{n} " + "/".join(f"{rounds[-1][p][n][m]['median_ms']:.1f}" for m in MODES) for n in names)
            for p in policies)
        print(f"round {w + 1} (interleaved/alternating/alone ms)  {brief}", file=sys.stderr, flush=True)
        if all(sum(quiet(r[p], args.quiet) for r in rounds) >= args.quiet_rounds for p in policies):
            break

    summary = summarize(rounds, names, args.quiet, args.quiet_rounds)
    chosen = choose(summary)
    fp = rounds[0][chosen]["fingerprint"]
    meta = earlier["meta"] if earlier else {
        "device": describe(fp), "rounds": len(rounds), "runs": args.runs, "threads": fp["threads"],
        "seconds": time.time() - start, "command": "python " + " ".join(sys.argv)}
    meta.update(quiet=args.quiet, device=describe(fp))
    record = {"chosen": chosen, "summary": summary, "rounds": rounds, "meta": meta, "tie": TIE,
              "idle_cpu_ms": burnt, "alone_cost_ms": alone_cost}
    (workdir / "spinning_policy.json").write_text(json.dumps(record, indent=1))
    text = markdown(summary, names, chosen, meta, burnt, alone_cost)
    if args.md:
        args.md.write_text(text + "\n")
    print(text)
    print(f"\nJSON: {workdir / 'spinning_policy.json'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
