"""The `laneway` command: one entry point, subcommands per component."""

from __future__ import annotations

import argparse
import sys


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="laneway", description="Endpoint-aware LLM serving.")
    sub = p.add_subparsers(dest="command", required=True)

    from gateway import main as gateway_main
    from laneway import serve
    from workers import main as worker_main

    w = sub.add_parser("worker", help="run one worker process (gRPC)")
    worker_main.add_arguments(w)
    w.set_defaults(func=worker_main.run)

    g = sub.add_parser("gateway", help="run the HTTP gateway")
    gateway_main.add_arguments(g)
    g.set_defaults(func=gateway_main.run)

    s = sub.add_parser("serve", help="run workers and a gateway on this machine (what `make run` calls)")
    serve.add_arguments(s)
    s.set_defaults(func=serve.run)

    from laneway import batch_cli

    b = sub.add_parser("batch", help="submit a JSONL batch to a gateway and fetch its results")
    batch_cli.add_arguments(b)

    pol = sub.add_parser("policy", help="validate a policy file, print its JSON Schema, hash an API key")
    pol_sub = pol.add_subparsers(dest="policy_command", required=True)
    c = pol_sub.add_parser("check", help="validate a policy YAML without starting anything")
    c.add_argument("file")
    c.set_defaults(func=lambda a: _policy().check(a.file))
    sch = pol_sub.add_parser("schema", help="print the policy JSON Schema (for editors)")
    sch.set_defaults(func=lambda a: _print(_policy().schema()))
    hk = pol_sub.add_parser("hash-key", help="print the SHA-256 of an API key for keys_sha256")
    hk.add_argument("key")
    hk.set_defaults(func=lambda a: _print(_policy().hash_key(a.key)))
    from laneway.review import cli as review_cli

    rv = sub.add_parser("review", help="per-endpoint latency review (TTFT, queue, TBT vs budget) from trace files")
    review_cli.add_arguments(rv)

    bench = sub.add_parser("bench", help="benchmarks that compare configurations side by side in one run")
    bench_sub = bench.add_subparsers(dest="bench_command", required=True)
    bl = bench_sub.add_parser("lanes", help="one trace replayed under lanes vs product-blind policies, "
                                             "steady or with a bulk backlog landing (--scenario)")
    from laneway.bench import lanes as bench_lanes

    bench_lanes.add_arguments(bl)
    bl.set_defaults(func=bench_lanes.main)
    from laneway.bench import serve as bench_serve

    bs = bench_sub.add_parser("serve", help="Laneway (gateway and direct gRPC) and peers on the same weights, "
                              "one client at concurrency 1, 8, 32; in-process engine rate as the ceiling")
    bench_serve.add_arguments(bs)
    bs.set_defaults(func=bench_serve.main)
    from laneway.bench import alternate as bench_alternate

    ba = bench_sub.add_parser("alternate", help="levels of c streams taking turns between servers already running, "
                              "the order rotating each round: A/B ratios on a drifting machine")
    bench_alternate.add_arguments(ba)
    ba.set_defaults(func=bench_alternate.main)
    bt = bench_sub.add_parser("tenants", help="fairness between tenants: a quiet tenant beside a noisy one on one "
                                               "lane (fair vs FCFS), and a small batch beside a huge one")
    from laneway.bench import tenants as bench_tenants

    bench_tenants.add_arguments(bt)
    bt.set_defaults(func=bench_tenants.main)
    from workers.bench import cli as bench_engine

    be = bench_sub.add_parser("engine", help="one worker's engine in-process: bandwidth, decode batch curve, "
                              "offline throughput vs transformers")
    bench_engine.add_arguments(be)
    be.set_defaults(func=bench_engine.main)

    from laneway.load import cli as load_cli
    from laneway.plan import cli as plan_cli
    from workers.sim import calibrate_cli

    ld = sub.add_parser("load", help="open-loop load against any OpenAI-compatible server, per endpoint")
    load_cli.add_arguments(ld)
    pl = sub.add_parser("plan", help="SIMULATED capacity plan: latency, throughput, cost, workers per workload")
    plan_cli.add_arguments(pl)
    cal = sub.add_parser("calibrate", help="fit the simulated worker's cost model to real engine measurements")
    calibrate_cli.add_arguments(cal)
    return p


def _policy():
    from lanes import cli as lanes_cli

    return lanes_cli


def _print(text: str) -> int:
    print(text)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
