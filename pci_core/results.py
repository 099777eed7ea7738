"""Result files of a CIS run: a run folder with results.json and cis.csv, resumable and mergeable.

A run is identified by its header (everything but the seeds: concept, ks, steps, sigmas, threshold
and the settings that made the images). Seeds are added in blocks as they finish; after every block
both files are rewritten atomically (a temporary file in the same folder, then os.replace), so an
interrupted run leaves either the old or the new file, never half of one. Re-opening the folder with
the same header resumes (done_seeds); another header, or a file that does not parse, is an error
that names the file and leaves it untouched. Shards of one run (seed blocks from several machines)
combine with merge_runs.

Several writers may share one folder (two ComfyUI queues, command-line runs, a study driver): every
write holds the folder's file lock (filelock, .results.lock) and first merges what is on disk, so no
writer loses another's seeds; a seed that arrives again must bring the same scores; a writer with other
settings is refused by name.
"""
from __future__ import annotations

import json
import os
import re
import uuid
from pathlib import Path
from typing import Sequence

import numpy as np
from filelock import FileLock

from . import __version__, cis

FORMAT = "pci-cis-results"
VERSION = 1
RESULTS_FILE = "results.json"
CSV_FILE = "cis.csv"
LOCK_FILE = ".results.lock"
LOCK_TIMEOUT_S = 600  # a writer holds the lock for one file write; waiting longer means a stuck process

HEADER_KEYS = ("concept", "ks", "steps", "sigmas", "threshold", "settings")
# The settings that identify a run: two runs whose header (these included) differs in anything are
# different runs. Prompts that arrive as conditioning may be given as labels; judge = its description
# (backend, weights, contrast text); latent_size = [height, width] of the latent.
SETTINGS_KEYS = ("model", "sampler", "scheduler", "cfg", "base_prompt", "concept_prompt", "negative_prompt",
                 "judge", "latent_size")


def normalize_header(header: dict) -> dict:
    """The header as it reads back from JSON (lists, plain numbers), checked: the keys HEADER_KEYS,
    settings with at least SETTINGS_KEYS, ks/steps/sigmas consistent (as CISResult checks them)."""
    if not isinstance(header, dict):
        raise ValueError(f"header must be a dict with keys {list(HEADER_KEYS)}, got {type(header).__name__}")
    missing, unknown = [k for k in HEADER_KEYS if k not in header], [k for k in header if k not in HEADER_KEYS]
    if missing or unknown:
        raise ValueError(f"header: missing keys {missing}, unknown keys {unknown}; a header has exactly "
                         f"{list(HEADER_KEYS)} (the seeds are not part of it)")
    settings = header["settings"]
    if not isinstance(settings, dict) or any(k not in settings for k in SETTINGS_KEYS):
        have = list(settings) if isinstance(settings, dict) else settings
        raise ValueError(f"header['settings'] must name at least {list(SETTINGS_KEYS)}, got {have}")
    out = cis.CISResult.from_header(header).header()  # checked as a result would be
    try:
        return json.loads(json.dumps(out))
    except TypeError as e:
        raise ValueError(f"header['settings'] must hold JSON values (text, numbers, lists): {e}") from None


def header_differences(a: dict, b: dict) -> list[str]:
    """The keys in which two headers differ, settings by name: e.g. ['steps', 'settings.sampler']."""
    keys = [k for k in HEADER_KEYS if k != "settings" and a.get(k) != b.get(k)]
    sa, sb = a.get("settings", {}), b.get("settings", {})
    return keys + [f"settings.{k}" for k in sorted(set(sa) | set(sb), key=str) if sa.get(k) != sb.get(k)]


def results_text(header: dict, seeds: Sequence[int], scores: np.ndarray) -> str:
    """results.json: the header, then one record per seed on its own line (seed, per-k score and
    decision), so the file reads and diffs by seed. Floats are written exactly (repr round-trips)."""
    threshold = header["threshold"]
    records = [json.dumps({"seed": int(seed), "scores": [float(v) for v in row],
                           "decisions": [bool(v >= threshold) for v in row]})
               for seed, row in zip(seeds, np.asarray(scores, dtype=np.float64))]
    top = {"format": FORMAT, "version": VERSION, "pack_version": __version__, "header": header}
    records_text = "[" + ("\n  " + ",\n  ".join(records) + "\n ]" if records else "]")
    return _object_text(top, 1)[:-2] + f',\n "records": {records_text}\n}}\n'


def _object_text(d: dict, depth: int) -> str:
    """JSON of a dict, one key per line and nested dicts likewise; other values on one line."""
    pad = " " * depth
    items = [f"{pad}{json.dumps(k)}: " + (_object_text(v, depth + 1) if isinstance(v, dict) and v else json.dumps(v))
             for k, v in d.items()]
    return "{\n" + ",\n".join(items) + "\n" + " " * (depth - 1) + "}"


def read_results(path: Path) -> tuple[dict, list[int], np.ndarray]:
    """(header, seeds, scores (S, K)) of a results.json; ValueError naming the file when it is not
    one (missing, a folder, truncated, not JSON, another format, records that disagree with the header)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path} is {'not a file' if path.exists() else 'missing'}: a run folder holds a "
                         f"{RESULTS_FILE} file")
    return parse_results(path.read_bytes().decode("utf-8", errors="replace"), path)


def parse_results(text: str, path) -> tuple[dict, list[int], np.ndarray]:
    """read_results of a results.json's text (from a file, or from a server); path names it in errors."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is corrupt or truncated ({e}); it was left as it is: repair it, move it away "
                         f"or choose another run name") from None

    def bad(why: str) -> ValueError:
        return ValueError(f"{path} is not a readable PCI result file: {why}; it was left as it is")

    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise bad(f"'format' is not {FORMAT!r}")
    if data.get("version") != VERSION:
        raise bad(f"version {data.get('version')!r}, this pack reads version {VERSION}")
    try:
        header = normalize_header(data["header"])
        records = data["records"]
        seeds = [int(r["seed"]) for r in records]
        scores = np.array([[float(v) for v in r["scores"]] for r in records], dtype=np.float64)
        decisions = [[bool(v) for v in r["decisions"]] for r in records]
    except (KeyError, TypeError, ValueError) as e:
        raise bad(f"{type(e).__name__}: {e}") from None
    if not seeds:
        scores = np.zeros((0, len(header["ks"])))
    if scores.shape != (len(seeds), len(header["ks"])) or any(len(d) != len(header["ks"]) for d in decisions):
        raise bad(f"every record needs {len(header['ks'])} scores and decisions (one per k)")
    if len(set(seeds)) != len(seeds):
        raise bad("a seed appears twice")
    if not np.isfinite(scores).all():
        row, col = (int(i) for i in np.argwhere(~np.isfinite(scores))[0])
        raise bad(f"seed {seeds[row]} has the score {scores[row, col]} at k={header['ks'][col]}; every score must "
                  "be a finite number")
    if decisions and not np.array_equal(np.array(decisions, dtype=bool), scores >= header["threshold"]):
        raise bad(f"the decisions are not score >= threshold {header['threshold']}")
    return header, seeds, scores


def read_json(path, what: str, expected: str = ""):
    """A JSON file's content; ValueError naming the file (as `what`) when it is missing or not JSON."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{what} {str(path)!r} does not exist (or is not a file)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{what} {str(path)!r} is not JSON ({e}){'; expected ' + expected if expected else ''}") from None


_RUN_NAME = re.compile(r"[\w\-. ]+")


def check_run_name(run_name) -> str:
    """A run name as one folder name (letters, digits, '-', '_', '.' and spaces; not '.' or '..'), stripped;
    ValueError naming run_name otherwise: no separators, so no absolute path and no way out of the folder."""
    name = run_name.strip() if isinstance(run_name, str) else ""
    if not _RUN_NAME.fullmatch(name) or name in (".", ".."):
        raise ValueError(f"run_name={run_name!r}: give one folder name of letters, digits, '-', '_', '.' and spaces "
                         "(no path separators, not '..'), e.g. 'old-person-sd15'")
    return name


def write_atomic(path: Path, text: str) -> None:
    """Write text to path through a temporary file in the same folder and os.replace, so a reader
    (or a crash) sees the old file or the new one, never a part. A failed write (a full disk) is an
    OSError naming the file and saying the old one is intact."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")  # a plain open: the user's umask applies
    try:
        with open(tmp, "x", encoding="utf-8", newline="\n") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise OSError(e.errno, f"could not write {path} ({e.strerror or e}); nothing was lost: "
                               f"{'the previous file is intact' if path.exists() else 'it was not written'}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def csv_of(result: cis.CISResult) -> str:
    """cis.csv of a result: the per-k rows of cis.summarize (no crossings: they need no file row)."""
    return cis.csv_text(cis.summarize(result, levels=()))


class RunStore:
    """A run folder holding results.json and cis.csv (e.g. ComfyUI's output/pci/<run name>/), shared safely
    by several writers (see the module's docstring)."""

    def __init__(self, folder: Path, header: dict):
        self.folder = Path(folder)
        self.header = normalize_header(header)
        self.seeds: list[int] = []
        self.scores = np.zeros((0, len(self.header["ks"])))
        if self.folder.exists():  # a new folder is made at the first add, not before
            with self._locked():
                self._load()
                self._repair_csv()

    def _locked(self) -> FileLock:
        return FileLock(str(self.folder / LOCK_FILE), timeout=LOCK_TIMEOUT_S)

    def _load(self) -> None:
        """What the folder holds now (under the lock): its seeds, refused when its settings differ; a
        temporary file a killed writer left behind is removed."""
        for stale in (*self.folder.glob(f".{RESULTS_FILE}.*.tmp"), *self.folder.glob(f".{CSV_FILE}.*.tmp")):
            stale.unlink(missing_ok=True)
        path = self.folder / RESULTS_FILE
        if not (path.exists() or path.is_symlink()):
            return
        stored, seeds, scores = read_results(path)
        diff = header_differences(stored, self.header)
        if diff:
            raise ValueError(f"{path} holds a run with other settings (differing: {', '.join(diff)}); nothing "
                             f"was overwritten: use another run name (folder), or the same settings to resume")
        self.seeds, self.scores = seeds, scores

    def done_seeds(self) -> list[int]:
        """Seeds in results.json when last read (opened, or added to), in the order they were added."""
        return list(self.seeds)

    def add(self, seeds: Sequence[int], scores: np.ndarray) -> None:
        """Add finished seeds with their scores (n, K): under the folder's lock, merged with what other
        writers stored meanwhile, both files rewritten atomically. A seed already stored is skipped when
        its scores are the same and refused, by name, when they differ."""
        seeds = [int(s) for s in seeds]
        scores = np.asarray(scores, dtype=np.float64)
        k = len(self.header["ks"])
        if scores.shape != (len(seeds), k):
            raise ValueError(f"scores: shape {scores.shape}, need ({len(seeds)}, {k}) (one per seed and k)")
        if not np.isfinite(scores).all():
            raise ValueError("scores: every score must be a finite number")
        twice = sorted({s for s in seeds if seeds.count(s) > 1})
        if twice:
            raise ValueError(f"seeds {twice} are given twice")
        self.folder.mkdir(parents=True, exist_ok=True)
        with self._locked():
            self._load()
            stored = {s: row for s, row in zip(self.seeds, self.scores)}
            clash = [s for s, row in zip(seeds, scores) if s in stored and not np.array_equal(stored[s], row)]
            if clash:
                raise ValueError(f"seeds {clash} are already in {self.folder / RESULTS_FILE} with other scores: the "
                                 "same seed and settings made other images (another device or model file?); "
                                 "nothing was overwritten")
            new = [i for i, s in enumerate(seeds) if s not in stored]
            if not new:
                return
            self.seeds = self.seeds + [seeds[i] for i in new]
            self.scores = np.concatenate([self.scores, scores[new]])
            write_atomic(self.folder / RESULTS_FILE, results_text(self.header, self.seeds, self.scores))
            write_atomic(self.folder / CSV_FILE, csv_of(self.result()))

    def result(self) -> cis.CISResult:
        """Everything stored when last read, seeds in the order added."""
        return cis.CISResult.from_header(self.header, self.seeds, self.scores.copy())

    def _repair_csv(self) -> None:
        # cis.csv is derived from results.json; a crash between the two replaces leaves it one block
        # behind, and a resumed run with nothing left to compute would never rewrite it
        if not self.seeds:
            return
        path, text = self.folder / CSV_FILE, csv_of(self.result())
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            write_atomic(path, text)


def merge_runs(folders: Sequence[Path]) -> cis.CISResult:
    """One result from the shards of a run (folders with the same header, disjoint seeds, or the same
    seed with identical scores), seeds sorted: the same whatever order the folders come in."""
    folders = [Path(f) for f in folders]
    if not folders:
        raise ValueError("merge_runs: no folder given")
    runs = []
    for folder in folders:
        path = folder / RESULTS_FILE
        if not path.is_file():
            raise ValueError(f"{folder} has no {RESULTS_FILE}: not a run folder")
        runs.append(read_results(path))
    header = runs[0][0]
    for folder, (other, _, _) in zip(folders[1:], runs[1:]):
        diff = header_differences(header, other)
        if diff:
            raise ValueError(f"cannot merge {folders[0]} and {folder}: their runs differ in {', '.join(diff)}")
    scores_of: dict[int, np.ndarray] = {}
    source: dict[int, Path] = {}
    for folder, (_, seeds, scores) in zip(folders, runs):
        for seed, row in zip(seeds, scores):
            if seed in scores_of and not np.array_equal(scores_of[seed], row):
                raise ValueError(f"seed {seed} is in {source[seed]} and {folder} with different scores: "
                                 "the shards are not of the same run")
            scores_of.setdefault(seed, row)
            source.setdefault(seed, folder)
    seeds = sorted(scores_of)
    scores = np.array([scores_of[s] for s in seeds]).reshape(len(seeds), len(header["ks"]))
    return cis.CISResult.from_header(header, seeds, scores)
