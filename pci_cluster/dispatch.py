"""Units to workers until every unit is written, two ways: Ray actors that each start a ComfyUI server of
their own (pci_cluster.worker), or ComfyUI servers the user already runs (--servers), driven from this
process, one thread each. Either way a worker whose server dies in a unit gives the unit back to the
queue (attempts + 1; MAX_ATTEMPTS stops the study), and only the driver writes (writer.add).

- Ray: a dead actor, or a unit ending in ServerGone, is replaced by a fresh actor (max_restarts=0, so
  nothing runs again behind the driver's back).
- Servers: a server that goes away is asked again every few seconds for REVIVE_S; when it answers (it
  was restarted) it takes units again, and meanwhile the other servers take its unit.
"""
from __future__ import annotations

import collections
import concurrent.futures
import sys
import threading
import time

from .comfy_client import PromptFailed, ServerGone

MAX_ATTEMPTS = 3  # a unit whose worker died this often stops the study (something kills every worker)
REVIVE_S = 600.0  # how long a lost server is waited for
REVIVE_POLL_S = 2.0


def _bar(total: int, progress: bool):
    from tqdm import tqdm
    return tqdm(total=total, unit="unit", disable=not progress, file=sys.stderr)


def _requeue(queue, unit, bar, why: str) -> None:
    unit.attempts += 1
    if unit.attempts >= MAX_ATTEMPTS:
        raise ValueError(f"unit {unit}: its worker died {unit.attempts} times ({why}); stopping")
    bar.write(f"{why} during unit {unit}: the unit runs again on another worker", file=sys.stderr)
    queue.appendleft(unit)


# ---------------------------------------------------------------- Ray actors

def ray_units(ray, actors: list, make, units, template: dict, adaptive: bool, writer, progress: bool) -> None:
    """Units to free actors; a dead actor (or one whose server died) is replaced and its unit requeued."""
    queue, running, free = collections.deque(units), {}, list(range(len(actors)))
    with _bar(len(units), progress) as bar:
        while queue or running:
            while queue and free:
                i, unit = free.pop(), queue.popleft()
                method = actors[i].adaptive if adaptive else actors[i].full
                running[method.remote(template, unit.value, unit.seeds)] = (unit, i)
            (ref,), _ = ray.wait(list(running), num_returns=1)
            unit, i = running.pop(ref)
            try:
                data = ray.get(ref)
            except ray.exceptions.RayActorError:
                _requeue(queue, unit, bar, f"worker {i} died")
                actors[i] = make()
            except ray.exceptions.RayTaskError as e:
                if not isinstance(e.cause, ServerGone):
                    raise ValueError(f"unit {unit}: {e.cause if e.cause is not None else e}") from None
                _requeue(queue, unit, bar, f"worker {i}'s ComfyUI server died")
                ray.kill(actors[i])
                actors[i] = make()
            else:
                writer.add(unit, data)
                bar.update(1)
            free.append(i)


# ---------------------------------------------------------------- servers the user runs

def _revive(runner, stop: threading.Event) -> bool:
    """Wait for a lost server to answer again (restarted): True, or False after REVIVE_S or once stopped."""
    deadline = time.time() + REVIVE_S
    while time.time() < deadline and not stop.is_set():
        if runner.client.alive():
            return True
        stop.wait(REVIVE_POLL_S)
    return False


def server_units(runners: list, units, template: dict, adaptive: bool, writer, progress: bool) -> None:
    """Units to the servers, one at a time per server; a lost server's unit goes to the others while it
    is waited for. ValueError when a unit fails (ComfyUI's message) or every server is gone."""
    queue, running, reviving, free = collections.deque(units), {}, {}, list(range(len(runners)))
    pool, stop = concurrent.futures.ThreadPoolExecutor(2 * len(runners)), threading.Event()
    try:
        with _bar(len(units), progress) as bar:
            for runner in runners:  # the websocket's progress of each server's running unit, beside the bar
                runner.on_progress = lambda value, total, node, url=runner.client.url: bar.set_postfix_str(
                    f"{url}: step {value}/{total}", refresh=False)
            while queue or running:
                while queue and free:
                    i, unit = free.pop(), queue.popleft()
                    method = runners[i].adaptive if adaptive else runners[i].full
                    running[pool.submit(method, template, unit.value, unit.seeds)] = (unit, i)
                if not running and not reviving:
                    raise ValueError(f"every server is gone ({', '.join(r.client.url for r in runners)}); "
                                     f"{len(queue)} units were not run: re-run the same command to resume")
                done, _ = concurrent.futures.wait([*running, *reviving],
                                                  return_when=concurrent.futures.FIRST_COMPLETED)
                for future in done:
                    if future in reviving:
                        i = reviving.pop(future)
                        if future.result():
                            bar.write(f"server {runners[i].client.url} answers again", file=sys.stderr)
                            free.append(i)
                        continue
                    unit, i = running.pop(future)
                    try:
                        data = future.result()
                    except ServerGone as e:
                        _requeue(queue, unit, bar, f"server {runners[i].client.url} went away ({e})")
                        reviving[pool.submit(_revive, runners[i], stop)] = i
                    except PromptFailed as e:
                        raise ValueError(f"unit {unit} on {runners[i].client.url}: {e}") from None
                    else:
                        writer.add(unit, data)
                        bar.update(1)
                        free.append(i)
    finally:
        stop.set()
        pool.shutdown(wait=False, cancel_futures=True)
