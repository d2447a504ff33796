"""Speed of lamina.geo: embedding throughput and pretraining samples/s against this machine's matmul rate.

All rates are measured in the same run as the float32 matmul rate (a (4096 x 512) @ (512 x 512) product), so
the ratios hold on any machine. Writes benchmarks/results/geo_speed.{json,md}.

    python benchmarks/geo_speed.py                 # all measurements (~10 minutes on 2 cores)
    python benchmarks/geo_speed.py --memory-rows 10000000   # + peak memory of a 10M-row Parquet file

Targets (issue 2): embedding >= 80% of the matmul rate at large batches; pretraining >= 70% of the
matmul-derived bound (3 x forward FLOPs per sample); peak memory < 2 GB for a 10M-row Parquet file.
Targets (issue 12), section "shared machine": the bundled encoder on 200k points, quiet and while one competing
CPU-bound process (started by this benchmark) runs, for lamina's row-parallel path and the previous intra-op path
(each matrix product split across torch's threads), next to GeoCLIP's location encoder (fp32, same points, same
run): slowdown under load <= 2.5x, quiet >= 80% of the matmul rate, >= 10x GeoCLIP's points/s.

    python benchmarks/geo_speed.py --shared-only   # only the shared-machine section (~2 minutes)
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import best_time, machine, matmul_gflops, write_results
from lamina.geo.data.grid import Variable
from lamina.geo.encoder import ClimateEncoder, ClimateModule, EncoderConfig


def siren_rows_per_sample(cfg: EncoderConfig) -> int:
    """Rows the SIREN runs per pretraining sample: 2 with a month-free static path (the sample and its month-free
    copy go through in one pass, :meth:`ClimateModule.forward`), else 1. Embedding runs 1."""
    return 2 if cfg.static_variables else 1


def train_bound(gflops: float, cfg: EncoderConfig) -> float:
    """Samples/s if a pretraining step cost only its matrix products at ``gflops``: 3 x the forward FLOPs (forward,
    and the two products of the backward pass) of every row the SIREN runs per sample."""
    return gflops * 1e9 / (3 * forward_flops(cfg) * siren_rows_per_sample(cfg))


def forward_flops(cfg: EncoderConfig) -> int:
    """Matmul FLOPs of one point through the SIREN (2 x multiply-adds of every linear layer, head excluded)."""
    m = ClimateModule(cfg)
    return sum(2 * l.in_features * l.out_features for l in m.siren.modules() if isinstance(l, torch.nn.Linear))


def encoder(cfg: EncoderConfig) -> ClimateEncoder:
    torch.manual_seed(0)
    return ClimateEncoder(ClimateModule(cfg), [Variable(f"v{i}", "1") for i in range(cfg.n_variables)],
                          np.zeros(cfg.n_variables), np.ones(cfg.n_variables))


def embed_rates(enc: ClimateEncoder, batches, flops: int, gflops_ref: float, precision="float32") -> list[dict]:
    rng = np.random.default_rng(0)
    rows = []
    for n in batches:
        lon, lat = rng.uniform(-180, 180, n), rng.uniform(-90, 90, n)
        rounds = 1 if n >= 200_000 else 5
        t = best_time(lambda lon=lon, lat=lat: enc.embed(lon=lon, lat=lat, month=6, precision=precision),
                      repeat=rounds, min_time=0.3 if n < 200_000 else 0.0)
        rate = n / t
        rows.append({"batch": n, "precision": precision, "points_per_s": rate, "gflops": rate * flops / 1e9,
                     "fraction_of_matmul": rate * flops / 1e9 / gflops_ref})
    return rows


def _train_step(cfg: EncoderConfig, batch: int, wrap=lambda m: m):
    """One pretraining step (AdamW, clipping) on a fixed random batch of ``batch`` samples, as a closure."""
    torch.manual_seed(0)
    m = wrap(ClimateModule(cfg))
    opt = torch.optim.AdamW(m.parameters(), lr=1e-4)
    x, y = torch.rand(batch, cfg.dim_encoded) * 2 - 1, torch.randn(batch, cfg.n_variables)

    def step():
        loss = (m(x)[1] - y).square().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 0.5)
        opt.step()

    return step


def train_rate(cfg: EncoderConfig, batch: int, steps: int = 4) -> float:
    return batch / best_time(_train_step(cfg, batch), repeat=steps, min_time=0.0)


def matmul_only_rate(cfg: EncoderConfig, batch: int, steps: int = 4) -> float:
    """Samples/s of the same step with every sine, residual average and the head's loss reduced to a chain of the
    SIREN's linear layers (same shapes and rows per sample, AdamW and clipping kept): what the matrix products of
    one step cost alone."""
    torch.manual_seed(0)
    lins = [m for m in ClimateModule(cfg).siren.modules() if isinstance(m, torch.nn.Linear)]
    chain = torch.nn.Sequential(*[torch.nn.Linear(m.in_features, m.out_features) for m in lins])
    opt = torch.optim.AdamW(chain.parameters(), lr=1e-4)
    x = torch.rand(batch * siren_rows_per_sample(cfg), lins[0].in_features)  # the rows the real step runs

    def step():
        loss = chain(x).square().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(chain.parameters(), 0.5)
        opt.step()

    return batch / best_time(step, repeat=steps, min_time=0.0)


def compiled_rate(cfg: EncoderConfig, batch: int, steps: int = 4) -> tuple[float | None, str]:
    """Samples/s of the step with the module compiled by ``torch.compile`` (inductor, which fuses the elementwise
    sine / residual work into loops); None and the reason where it cannot compile here."""
    try:
        step = _train_step(cfg, batch, wrap=torch.compile)
        t0 = time.perf_counter()
        step()
        compile_s = time.perf_counter() - t0
        return batch / best_time(step, repeat=steps, min_time=0.0), f"compiled in {compile_s:.0f} s"
    except Exception as exc:  # no C++ compiler, an unsupported op: reported, not fatal
        return None, f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"


def _ddp_worker(rank: int, world: int, port: int, cfg_dict: dict, batch: int, steps: int, out) -> None:
    """One rank of a data-parallel pretraining step loop (gloo, one torch thread), as ``lamina geo pretrain``
    runs under torchrun; rank 0 puts its samples/s (all ranks' samples) in ``out``."""
    import os
    import time

    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)  # a benchmark process of its own
    dist.init_process_group("gloo", rank=rank, world_size=world)
    step = _train_step(EncoderConfig(**cfg_dict), batch // world, wrap=torch.nn.parallel.DistributedDataParallel)
    step()
    dist.barrier()
    best = float("inf")
    for _ in range(steps):
        t = time.perf_counter()
        for _ in range(3):
            step()
        dist.barrier()
        best = min(best, (time.perf_counter() - t) / 3)
    if rank == 0:
        out.put(batch / best)
    dist.destroy_process_group()


def ddp_train_rate(cfg: EncoderConfig, batch: int, world: int = 2, steps: int = 4) -> float:
    """Samples/s of data-parallel pretraining steps on ``world`` single-threaded processes (gloo on loopback)."""
    import socket

    import torch.multiprocessing as tmp

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    ctx = tmp.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_ddp_worker, args=(r, world, port, cfg.to_dict(), batch, steps, out))
             for r in range(world)]
    for p in procs:
        p.start()
    rate = out.get(timeout=600)
    for p in procs:
        p.join()
    return rate


def train_only(cfg: EncoderConfig, batch: int = 4096) -> dict:
    """Pretraining step rates of the bundled size: one process with the machine's threads against data-parallel
    single-threaded processes (the way the shipped checkpoint was trained), both against the same matmul bound."""
    gflops = matmul_gflops()
    bound = train_bound(gflops, cfg)
    one = train_rate(cfg, batch)
    ddp = ddp_train_rate(cfg, batch, world=2)
    mm = matmul_only_rate(cfg, batch)
    comp, comp_note = compiled_rate(cfg, batch)
    return {"machine": machine(), "matmul_gflops_fp32": gflops, "batch": batch, "bound_samples_per_s": bound,
            "siren_rows_per_sample": siren_rows_per_sample(cfg),
            "one_process_samples_per_s": one, "ddp_2x1_samples_per_s": ddp,
            "one_process_fraction": one / bound, "ddp_fraction": ddp / bound,
            "matmul_only_samples_per_s": mm, "matmul_only_fraction": mm / bound,
            "compiled_samples_per_s": comp, "compiled_fraction": None if comp is None else comp / bound,
            "compiled_note": comp_note}


def peak_memory(rows: int, checkpoint: str | None) -> dict:
    with tempfile.TemporaryDirectory() as d:
        import pyarrow as pa
        import pyarrow.parquet as pq

        src, dst = Path(d) / "points.parquet", Path(d) / "out.parquet"
        rng = np.random.default_rng(0)
        with pq.ParquetWriter(src, pa.schema([("lon", pa.float64()), ("lat", pa.float64())])) as w:
            for s in range(0, rows, 1_000_000):
                n = min(1_000_000, rows - s)
                w.write_table(pa.table({"lon": rng.uniform(-180, 180, n), "lat": rng.uniform(-90, 90, n)}))
        cmd = [sys.executable, "-m", "lamina.cli", "geo", "embed", str(src), "-o", str(dst), "--month", "6",
               "--no-progress"] + (["-c", checkpoint] if checkpoint else [])
        t = time.perf_counter()
        subprocess.run(cmd, check=True)
        wall = time.perf_counter() - t
        peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        return {"rows": rows, "peak_rss_mb": peak_kb / 1024, "wall_s": wall, "output_mb": dst.stat().st_size / 2**20}


def _competitor() -> subprocess.Popen:
    """One CPU-bound process (a pure-Python loop: one core, no BLAS threads), as another user of the machine."""
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def shared_machine(n: int = 200_000) -> dict:
    """Points/s of the bundled encoder quiet and under one competing process, row-parallel vs intra-op."""
    from lamina.geo.encoder import load

    enc = load()
    rng = np.random.default_rng(1)
    lon, lat = rng.uniform(-180, 180, n), rng.uniform(-90, 90, n)
    with torch.no_grad():
        x = enc.module.siren_inputs(enc._inputs(lon, lat, 6, False))  # the SIREN's inputs (learned grid included)
    siren = enc.module.siren
    out = torch.empty(n, siren.last.out_features)
    paths = {  # name -> (function, points per call)
        "row-parallel (lamina)": (lambda: siren.forward_inference(x, out=out), n),
        "intra-op (previous)": (lambda: siren._rows(x, out, 0, n, 1024, None), n),
        "embed(), end to end": (lambda: enc.embed(lon=lon, lat=lat, month=6), n),
    }
    try:
        from lamina.geo.eval.geoclip import GeoCLIPEncoder, geoclip_available

        if geoclip_available():
            gc, m = GeoCLIPEncoder(), n // 10  # ~20x slower per point: a tenth of the points, same points first
            paths["GeoCLIP location encoder"] = (lambda: gc.embed(lon=lon[:m], lat=lat[:m]), m)
    except ImportError:
        pass
    flops = forward_flops(enc.config)
    gflops = matmul_gflops()
    res = {"points": n, "torch_threads": torch.get_num_threads(), "matmul_gflops_fp32": gflops,
           "forward_mflop_per_point": flops / 1e6, "paths": {}}
    for name, (fn, points) in paths.items():
        quiet = points / best_time(fn, repeat=3, min_time=0.0)
        proc = _competitor()
        try:
            time.sleep(0.5)
            loaded = points / best_time(fn, repeat=3, min_time=0.0)
        finally:
            proc.kill()
            proc.wait()
        res["paths"][name] = {"points": points, "quiet_points_per_s": quiet, "loaded_points_per_s": loaded,
                              "slowdown": quiet / loaded}
        print(name, f"quiet {quiet:,.0f}/s, loaded {loaded:,.0f}/s ({quiet / loaded:.2f}x slower)", flush=True)
    lam = res["paths"]["row-parallel (lamina)"]
    lam["fraction_of_matmul"] = lam["quiet_points_per_s"] * flops / 1e9 / gflops
    end = res["paths"]["embed(), end to end"]  # input encoding and grid lookup included
    end["fraction_of_matmul"] = end["quiet_points_per_s"] * flops / 1e9 / gflops
    if "GeoCLIP location encoder" in res["paths"]:
        g = res["paths"]["GeoCLIP location encoder"]
        res["ratio_to_geoclip_quiet"] = lam["quiet_points_per_s"] / g["quiet_points_per_s"]
        res["ratio_to_geoclip_loaded"] = lam["loaded_points_per_s"] / g["loaded_points_per_s"]
    return res


def shared_markdown(r: dict) -> list[str]:
    md = [f"## Shared machine: bundled encoder, {r['points']:,} points, one month, {r['torch_threads']} torch threads",
          "", "One competing CPU-bound process (a Python busy loop) started by the benchmark for the 'loaded' "
          "column.", "", "| path | quiet points/s | loaded points/s | slowdown |", "|---|---|---|---|"]
    md += [f"| {k} | {v['quiet_points_per_s']:,.0f} | {v['loaded_points_per_s']:,.0f} | {v['slowdown']:.2f}x |"
           for k, v in r["paths"].items()]
    lam = r["paths"]["row-parallel (lamina)"]
    md += ["", f"Quiet: {lam['fraction_of_matmul']:.0%} of the fp32 matmul rate measured in the same run "
           f"({r['matmul_gflops_fp32']:.1f} GFLOP/s, {r['forward_mflop_per_point']:.3f} MFLOP per point); "
           f"`embed()` end to end (input encoding and learned-grid lookup included): "
           f"{r['paths']['embed(), end to end']['fraction_of_matmul']:.0%}."]
    if "ratio_to_geoclip_quiet" in r:
        md += [f"Against GeoCLIP's location encoder: {r['ratio_to_geoclip_quiet']:.1f}x its points/s quiet, "
               f"{r['ratio_to_geoclip_loaded']:.1f}x loaded."]
    return md + [""]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--large", type=int, default=1_000_000, help="points of the largest embedding batch")
    ap.add_argument("--memory-rows", type=int, default=0, help="rows of the Parquet peak-memory test (0: skip)")
    ap.add_argument("--checkpoint", default=None, help="checkpoint for the memory test (default: bundled)")
    ap.add_argument("--shared-only", action="store_true", help="only the shared-machine section")
    ap.add_argument("--train-only", action="store_true", help="only the pretraining rates of the bundled size: one "
                    "process vs two data-parallel single-threaded ones (geo_speed_train.md)")
    args = ap.parse_args()
    if args.train_only:
        from lamina.geo.encoder import load

        r = train_only(load().config)
        md = [f"# lamina.geo pretraining speed, bundled size ({r['machine']['cpus']} CPUs)", "",
              "`python benchmarks/geo_speed.py --train-only`: AdamW steps with clipping on batches of "
              f"{r['batch']:,}, against the 3 x forward matmul bound of the same run "
              f"({r['matmul_gflops_fp32']:.1f} GFLOP/s float32: {r['bound_samples_per_s']:,.0f} samples/s; the "
              f"SIREN runs {r['siren_rows_per_sample']} rows per sample, the sample and its month-free copy for the "
              "static path).", "",
              "| path | samples/s | of the bound |", "|---|---|---|",
              f"| one process, {torch.get_num_threads()} threads | {r['one_process_samples_per_s']:,.0f} | "
              f"{r['one_process_fraction']:.0%} |",
              f"| 2 data-parallel processes x 1 thread (torchrun's way; gloo) | {r['ddp_2x1_samples_per_s']:,.0f} | "
              f"{r['ddp_fraction']:.0%} |",
              f"| one process, the module under torch.compile ({r['compiled_note']}) | "
              + ("not measured | |" if r["compiled_samples_per_s"] is None else
                 f"{r['compiled_samples_per_s']:,.0f} | {r['compiled_fraction']:.0%} |"),
              f"| one process, the step's linear layers alone (no sine, no residual; AdamW, clipping) | "
              f"{r['matmul_only_samples_per_s']:,.0f} | {r['matmul_only_fraction']:.0%} |", "",
              "The last row is what the step's matrix products cost at these shapes on their own: the ceiling any "
              "fusion of the elementwise work could reach in this process."]
        write_results("geo_speed_train", r, "\n".join(md) + "\n")
        print("\n".join(md))
        return
    if args.shared_only:
        r = {"machine": machine(), "shared_machine": shared_machine()}
        md = [f"# lamina.geo speed on a shared machine ({r['machine']['cpus']} CPUs)", "",
              *shared_markdown(r["shared_machine"])]
        write_results("geo_speed_shared", r, "\n".join(md))
        print("\n".join(md))
        return
    gflops = matmul_gflops()
    gflops_bf16 = matmul_gflops(dtype=torch.bfloat16)
    paper = EncoderConfig(n_variables=10)  # 16 x 512 -> 256, the paper's architecture
    results = {"machine": machine(), "matmul_gflops_fp32": gflops, "matmul_gflops_bf16": gflops_bf16,
               "architectures": {}}
    from lamina.geo.encoder import load

    bundled = load().config
    configs = {"paper 16x512": paper}
    if (bundled.num_layers, bundled.dim_hidden) != (16, 512):
        configs[f"bundled {bundled.num_layers}x{bundled.dim_hidden}"] = bundled
    for name, cfg in configs.items():
        enc = encoder(cfg)
        flops = forward_flops(cfg)
        rows = embed_rates(enc, [1, 64, 4096, args.large], flops, gflops)
        rows += embed_rates(enc, [4096, args.large], flops, gflops, precision="bfloat16")
        tr = train_rate(cfg, 8192)
        bound = train_bound(gflops, cfg)
        results["architectures"][name] = {
            "config": cfg.to_dict(), "forward_mflop_per_point": flops / 1e6, "embed": rows,
            "train_samples_per_s": tr, "train_bound_samples_per_s": bound, "train_fraction_of_bound": tr / bound,
        }
        print(name, f"train {tr:,.0f}/s = {tr / bound:.0%} of bound", flush=True)
    results["shared_machine"] = shared_machine()
    if args.memory_rows:
        results["peak_memory"] = peak_memory(args.memory_rows, args.checkpoint)
    md = [f"# lamina.geo speed ({results['machine']['cpus']} CPUs, torch {results['machine']['torch']})", "",
          f"float32 matmul rate, same run: **{gflops:.1f} GFLOP/s** (bfloat16: {gflops_bf16:.1f})", ""]
    for name, a in results["architectures"].items():
        md += [f"## {name} ({a['forward_mflop_per_point']:.2f} MFLOP per point)", "",
               "| batch | precision | points/s | GFLOP/s | of fp32 matmul rate |", "|---|---|---|---|---|"]
        md += [f"| {r['batch']:,} | {r['precision']} | {r['points_per_s']:,.0f} | {r['gflops']:.1f} | "
               f"{r['fraction_of_matmul']:.0%} |" for r in a["embed"]]
        md += ["", f"pretraining (batch 8192, AdamW, clipping): **{a['train_samples_per_s']:,.0f} samples/s**, "
               f"{a['train_fraction_of_bound']:.0%} of the matmul bound ({a['train_bound_samples_per_s']:,.0f}/s)",
               ""]
    md += shared_markdown(results["shared_machine"])
    if "peak_memory" in results:
        p = results["peak_memory"]
        md += [f"Embedding a {p['rows']:,}-row Parquet file (bundled encoder, one month): peak RSS "
               f"**{p['peak_rss_mb']:,.0f} MB**, {p['wall_s']:.0f} s.", ""]
    write_results("geo_speed", results, "\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
