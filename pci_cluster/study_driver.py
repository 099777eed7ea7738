"""`python -m pci_core study-ray WORKFLOW.json --values ... --seeds 0-49 --out DIR [--servers URL,...]`: a
PCI study of any ComfyUI workflow with one CIS Sweep node, run on ComfyUI servers through ComfyUI's public
API (POST /prompt, /history, /view, the websocket), so it runs on v0.3.64 and on today's ComfyUI alike.

Units are (concept value, block of seeds), or with --adaptive one concept (its rounds need every seed).
Workers are either ComfyUI servers the user already runs (--servers: one per GPU or machine, started with
--listen; only these URLs are contacted), or Ray actors that each start a server of their own on
loopback, one per GPU (num_gpus=1) or, without GPUs, one per CPU. Only plain data comes back: this driver
alone writes DIR, the study folder CIS Study writes (one run folder per concept, study.json, study.txt,
study.png), each finished unit at once, so a re-run resumes and `merge` / CIS Study read it. A worker or
server that dies mid-unit is replaced (Ray) or waited for (servers) and its unit runs again elsewhere; a
unit is written once, when it finishes. Files the workflow saves (SaveImage, videos) come back too, into
DIR/<concept>/outputs/.
"""
from __future__ import annotations

import collections
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from pci_core import arg_checks, results, study, sweep_plan, taxonomy
from pci_core.cis import CISResult

from . import dispatch, unit_runner, workflow
from .comfy_client import ComfyClient, ServerGone, check_url

UNITS_FILE = "study_units.json"  # where each unit ran, and how long it took


def add_arguments(p) -> None:
    p.add_argument("workflow", help="the workflow in ComfyUI's API format (Workflow -> Export (API)) with exactly one "
                   "CIS Sweep node; the concept prompt's text and the sweep's judge_text hold {} for each value")
    p.add_argument("--values", required=True, help="concept values: a comma list ('old,young'), a text file with "
                   "one per line, or a taxonomy JSON file with --path")
    p.add_argument("--path", default="", help="with a taxonomy file: the dotted path of one list (demographics.age)")
    p.add_argument("--seeds", default="0-49", help="seeds, e.g. '0-49' or '1,5,9-20'")
    p.add_argument("--out", required=True, help="the study folder (written by this command alone; re-run to resume)")
    p.add_argument("--servers", default=None, help="run on these ComfyUI servers (comma-separated URLs such as "
                   "http://10.0.0.5:8188, each started with --listen and the PCI pack installed) instead of Ray")
    p.add_argument("--workers", type=int, default=0, help="Ray: 0 = one per GPU of the cluster, else one per CPU")
    p.add_argument("--address", default=None, help="join a running Ray cluster ('auto', or the head's host:port "
                   "from `ray start --head`); default: start a local one on this machine")
    p.add_argument("--adaptive", action="store_true", help="the adaptive lock-in search (a unit per concept)")
    p.add_argument("--seed-block", type=int, default=8, help="seeds per unit of a full sweep")
    p.add_argument("--comfyui", default=None, help="the ComfyUI folder on the workers (default: COMFYUI_PATH)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per CPU worker")


def concept_values(values: str, path: str = "") -> list[str]:
    """Values from a comma list, a file with one per line, or a taxonomy JSON file and a dotted path."""
    file = Path(values)
    if file.is_file() and file.suffix.lower() == ".json":
        return taxonomy.one_taxonomy_list(taxonomy.load_taxonomy(file), path, "--path")
    if file.is_file():
        return study.parse_values(file.read_text(encoding="utf-8"), f"--values {values}")
    return study.parse_values(values.replace(",", "\n"), "--values")


@dataclass
class Unit:
    value: str
    seeds: list[int]
    attempts: int = 0

    def __str__(self) -> str:
        return f"{self.value!r} seeds {self.seeds[0]}..{self.seeds[-1]} ({len(self.seeds)})"


def plan(values: list[str], seeds: list[int], out: Path, block: int, adaptive: bool) -> list[Unit]:
    """The units still to run: seeds already in a concept's run folder are skipped (an adaptive concept is
    done when its folder holds it, over the same seeds)."""
    units = []
    for value in values:
        path = out / study.folder_name(value) / results.RESULTS_FILE
        done = set(results.read_results(path)[1]) if path.is_file() else set()
        if adaptive:
            if done and done != set(seeds):
                raise ValueError(f"{path} holds an adaptive run over other seeds; it resumes only with the same "
                                 "--seeds (or choose another --out)")
            units += [] if done else [Unit(value, list(seeds))]
        else:
            units += [Unit(value, b) for b in sweep_plan.seed_blocks([s for s in seeds if s not in done], block)]
    return units


@dataclass
class Writer:
    """The study folder: one RunStore per concept; every unit is checked against its concept's folder (its
    settings, and the scores of a seed it holds already), and study_units.json keeps every run's log."""
    out: Path
    template: dict
    adaptive: bool
    stores: dict = field(default_factory=dict)
    units: list = field(default_factory=list)

    def __post_init__(self):
        log = self.out / UNITS_FILE
        if log.is_file():  # an earlier run's units stay in the log
            self.units = list(results.read_json(log, UNITS_FILE).get("units", []))

    def add(self, unit: Unit, data: dict) -> None:
        folder, result = self.out / study.folder_name(unit.value), CISResult.from_json(data)
        header = result.header()
        header["settings"].update(concept_text=workflow.concept_texts(self.template, unit.value),
                                  search="adaptive" if self.adaptive else "full")
        store = self.stores.get(folder) or self.stores.setdefault(folder, results.RunStore(folder, header))
        diff = results.header_differences(store.header, header)
        if diff:
            raise ValueError(f"unit {unit} came back with other settings than {folder} holds (differing: "
                             f"{', '.join(diff)}): workers of different models or devices? nothing was written")
        store.add(result.seeds, result.scores)  # a seed stored already must bring the same scores
        self._save_files(folder, unit, data.get("files", []))
        self.units.append({"value": unit.value, "seeds": unit.seeds, "attempts": unit.attempts + 1,
                           "node": data["node"], "pid": data["pid"], "gpus": data["gpus"], "seconds": data["seconds"]})
        results.write_atomic(self.out / UNITS_FILE, json.dumps({"units": self.units}, indent=1) + "\n")

    @staticmethod
    def _save_files(folder: Path, unit: Unit, files: list[dict]) -> None:
        """Files the workflow saved for this unit (SaveImage, videos), under <concept>/outputs/<seeds>/."""
        for f in files:
            name = Path(str(f["filename"])).name  # a server's file name, never a path of ours
            target = folder / "outputs" / f"seeds-{unit.seeds[0]}-{unit.seeds[-1]}" / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(f["bytes"])


def start_ray(address: str | None, workers: int):
    """Ray, started locally (workers CPUs) or joined at address; quiet, and with no network call of its own."""
    try:
        import ray
        ray.init  # noqa: B018  (a folder named ray on sys.path, e.g. Ray's own /tmp/ray, imports as an empty namespace)
    except (ImportError, AttributeError):
        raise ValueError("study-ray needs Ray: install the extra into the Python that runs ComfyUI, "
                         "python -m pip install 'prompt-conditioned-intervention[ray]' (or: pip install ray tqdm)") from None
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # no token written to ~/.ray for a local cluster
    import logging
    options = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING,
                   configure_logging=True)
    if address:
        ray.init(address=address, **options)
    else:
        ray.init(num_cpus=max(workers, 1), object_store_memory=256 * 1024 * 1024, **options)
    return ray


def run(template: dict, values: list[str], seeds: list[int], out: Path, workers: int = 0, address: str | None = None,
        adaptive: bool = False, block: int = 8, comfy_path: str | None = None, threads: int = 1,
        progress: bool = True, servers: list[str] | None = None) -> dict:
    """The study (see the module's docstring); returns timings and where the units ran."""
    sweep_id, _ = workflow.check(template)
    units = plan(values, seeds, out, block, adaptive)
    out.mkdir(parents=True, exist_ok=True)
    study.write_index(out, [(study.folder_name(v), v) for v in values])
    writer, t0 = Writer(out, template, adaptive), time.time()
    stored = [out / study.folder_name(v) for v in values if (out / study.folder_name(v) / results.RESULTS_FILE).is_file()]
    if not units and not stored:
        return {"units": 0, "workers": [], "ready_s": 0.0, "run_s": 0.0, "writer": writer}
    key = unit_runner.study_key(template, str(out.resolve()))
    check = workflow.unit_prompt(template, values[0], seeds[:1], unit_runner.run_name(key, values[0], "0"),
                                 insert_steps="0")  # k = 0 and T: the smallest run of the graph
    if servers:
        runners = [unit_runner.UnitRunner(ComfyClient(url), key, {"node": url, "pid": None, "gpus": [],
                                                                   "device": url}) for url in servers]
        _same_workflow(_check_on_servers(runners, check, sweep_id), stored)
        ready_s, t1 = time.time() - t0, time.time()
        dispatch.server_units(runners, units, template, adaptive, writer, progress)
        return {"units": len(units), "workers": [r.where for r in runners], "ready_s": ready_s,
                "run_s": time.time() - t1, "writer": writer}
    ray = start_ray(address, workers or os.cpu_count() or 1)
    try:
        gpus = int(ray.cluster_resources().get("GPU", 0))
        count = workers or gpus or int(ray.cluster_resources().get("CPU", 1))
        from .worker import StudyWorker
        actor = ray.remote(StudyWorker).options(num_gpus=1 if gpus else 0, num_cpus=1, max_restarts=0)
        make = lambda: actor.remote(comfy_path, not gpus, key, None if gpus else threads)
        actors = [make() for _ in range(max(1, min(count, len(units))))]
        where = _ready(ray, actors)
        checked = ray.get(actors[0].check.remote(check, sweep_id))
        if checked["problem"]:
            raise ValueError(f"workflow: {checked['problem']}")
        _same_workflow(checked["header"], stored)
        ready_s, t1 = time.time() - t0, time.time()
        dispatch.ray_units(ray, actors, make, units, template, adaptive, writer, progress)
        return {"units": len(units), "workers": where, "ready_s": ready_s, "run_s": time.time() - t1, "writer": writer}
    finally:
        ray.shutdown()


def _check_on_servers(runners: list, check: dict, sweep_id: str) -> dict:
    """The smallest run of the graph on the first server that answers: its header; ValueError naming what is
    wrong."""
    gone = []
    for runner in runners:
        try:
            checked = runner.check(check, sweep_id)
        except ServerGone as e:
            gone.append(str(e))
            continue
        if checked["problem"]:
            raise ValueError(f"workflow: {checked['problem']}")
        return checked["header"]
    raise ValueError(f"--servers: no server answered ({'; '.join(gone)})")


def _same_workflow(header: dict, stored: list[Path]) -> None:
    """ValueError when the study folder was made with another workflow (other model, sampler, cfg, steps,
    judge...), read from the smallest run's header against every concept's stored one; even when nothing
    is left to run, the old table is never printed as the new one."""
    for folder in stored:
        old = results.read_results(folder / results.RESULTS_FILE)[0]
        diff = [k for k in study.study_differences(old, header) if k not in ("settings.search",)]
        if diff:
            raise ValueError(f"{folder} was made with another workflow (differing: {', '.join(diff)}); nothing was "
                             "run or written: use another --out, or the workflow that made it")


def _ready(ray, actors) -> list[dict]:
    """Every worker started (its ComfyUI server answers): where each runs; a worker that cannot start is an
    error."""
    try:
        return ray.get([a.where.remote() for a in actors])
    except ray.exceptions.RayActorError as e:
        raise ValueError(f"a worker could not start ComfyUI (set COMFYUI_PATH or --comfyui on every machine): "
                         f"{str(e).strip().splitlines()[-1]}") from None


def summary(stats: dict) -> str:
    """Where each unit ran: per worker (node, process, device) its units and seconds."""
    units = stats["writer"].units
    by_worker = collections.defaultdict(list)
    for u in units:
        by_worker[(u["node"], u["pid"], ",".join(u["gpus"]) or ("server" if u["pid"] is None else "cpu"))].append(u)
    lines = [f"{stats['units']} units in {stats['run_s']:.1f} s after {len(stats['workers'])} workers were ready "
             f"({stats['ready_s']:.1f} s)" + (f": {stats['units'] / stats['run_s']:.3f} units/s" if stats['run_s'] else "")]
    for (node, pid, device), done in sorted(by_worker.items()):
        again = sum(u["attempts"] > 1 for u in done)
        lines.append(f"  node {node}" + (f" pid {pid}" if pid is not None else "") + f" ({device}): {len(done)} units, "
                     f"{sum(u['seconds'] for u in done):.1f} s"
                     + (f", {again} of them run again after a worker died" if again else ""))
    return "\n".join(lines)


def main(args) -> int:
    template = workflow.load(args.workflow)
    workflow.check(template)
    values = concept_values(args.values, args.path)
    study.check_distinct_folders(values, "--values")
    seeds = sweep_plan.parse_seeds(args.seeds, "--seeds")
    out = arg_checks.check_out_folder(args.out)
    workers = arg_checks.check_whole(args.workers, "--workers", 0)
    block = arg_checks.check_whole(args.seed_block, "--seed-block", 1)
    threads = arg_checks.check_whole(args.threads, "--threads", 1)
    servers = [check_url(u) for u in args.servers.split(",") if u.strip()] if args.servers else None
    if args.servers is not None and not servers:
        raise ValueError("--servers: empty; give one or more ComfyUI URLs, e.g. http://127.0.0.1:8188")
    stats = run(template, values, seeds, out, workers, args.address, args.adaptive, block, args.comfyui, threads,
                servers=servers)
    print(summary(stats))
    found = [(key, label, results.merge_runs([folder])) for key, label, folder in study.run_folders(out)]
    print(study.write_study_files(found, out, f"CIS(k) of {len(found)} concepts ({Path(args.workflow).name})"))
    print(f"wrote {out.resolve()}/study.txt, study.png, study.json, {UNITS_FILE} and one run folder per concept")
    return 0
