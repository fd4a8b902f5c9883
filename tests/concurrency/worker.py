"""The one worker of the concurrency tests: a separate Python process that makes deskctl
calls one after the other, each with its own App, engine, connection and transaction, as
separate `deskctl` runs would; only the interpreter start-up is shared, so hundreds of
calls per worker fit in a test run.

Run as a script, `python tests/concurrency/worker.py PLAN OUT`: PLAN is a JSON list of
steps, OUT gets a JSON list with one result per call made. A step is

- {"cli": [ARGS...]}: `deskctl ARGS` through the real entry point (`deskctl.cli:main`,
  as `python -m deskctl` runs it); the result is {"args", "code", "out", "err"};
  with "repeat": N it is made up to N times, stopping after a call that exits "until";
- {"route": true}: one routing pass (services.conversations.routing.route) in its own
  App and transaction, as one run of the `route` job but without the job runner's lock,
  so that passes really overlap; the result is {"ok", "counts"} or {"ok": false, "error"}.

The database, user and configuration come from the environment (DESKCTL_DATABASE_URL,
DESKCTL_USER, DESKCTL_CONFIG), as for any deskctl process. The test side is `start` and
`finish` below.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path


def _cli(args: list[str]) -> dict:
    from deskctl.cli import cli

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            cli.main(args, prog_name="deskctl")
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException as exc:  # noqa: BLE001 - a crash must reach the test, not end the worker
            code = -1
            err.write(repr(exc))
    return {"args": args, "code": code, "out": out.getvalue(), "err": err.getvalue()[-500:]}


def _route() -> dict:
    from deskctl.app import App
    from deskctl.services.conversations import routing

    app = App(db_url=os.environ["DESKCTL_DATABASE_URL"], config_file=os.environ.get("DESKCTL_CONFIG"))
    try:
        with app.transaction() as session:
            return {"ok": True, "counts": routing.route(session, now=app.now(), settings=app.settings)}
    except Exception as exc:  # noqa: BLE001 - recorded: the test fails on any
        return {"ok": False, "error": repr(exc)[:300]}
    finally:
        app.close()


def main(plan_path: str, out_path: str) -> None:
    results = []
    for step in json.loads(Path(plan_path).read_text()):
        for _ in range(step.get("repeat", 1)):
            result = _route() if step.get("route") else _cli(step["cli"])
            results.append(result)
            if "until" in step and result["code"] == step["until"]:
                break
    Path(out_path).write_text(json.dumps(results))


# -- the test side ---------------------------------------------------------------------------

def agents(desk, prefix: str, n: int, *, groups=("billing",), state: str = "available") -> list[str]:
    """Add n agents (PREFIX00, PREFIX01, ...; paris, in `groups`), each set `state` by themselves."""
    handles = [f"{prefix}{i:02d}" for i in range(n)]
    for handle in handles:
        desk.ok("user", "add", handle, "--location", "paris", *[a for g in groups for a in ("--group", g)])
        desk.ok("availability", "set", state, as_=handle)
    return handles


def env(desk, user: str = "root", **extra) -> dict[str, str]:
    """The environment of a deskctl process on `desk`'s database as `user`: none of the
    test process's DESKCTL_* settings but those given."""
    out = {k: v for k, v in os.environ.items() if not k.startswith("DESKCTL_")}
    out.update(DESKCTL_DATABASE_URL=desk.url, DESKCTL_USER=user, PYTHONUNBUFFERED="1")
    out.update({k: str(v) for k, v in extra.items()})
    return out


def start(desk, name: str, steps: list[dict], user: str = "root", **extra_env) -> tuple:
    """Start one worker process on `desk` with its plan; `finish` collects it."""
    plan = desk.tmp_path / f"worker-{name}.plan.json"
    out = desk.tmp_path / f"worker-{name}.json"
    plan.write_text(json.dumps(steps))
    proc = subprocess.Popen([sys.executable, __file__, str(plan), str(out)], env=env(desk, user, **extra_env),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=desk.tmp_path)
    return name, out, proc


def finish(workers: list[tuple], timeout: float = 900) -> dict[str, list[dict]]:
    """Wait for every worker (started together, so that they race); their results by name.
    A worker that did not exit 0 fails the test with its stderr."""
    results = {}
    for name, out, proc in workers:
        _, err = proc.communicate(timeout=timeout)
        assert proc.returncode == 0, err.decode()[-3000:]
        results[name] = json.loads(out.read_text())
    return results


def run(desk, plans: dict[str, tuple[str, list[dict]]], timeout: float = 900, **extra_env) -> dict[str, list[dict]]:
    """Start one worker per name at once, {name: (user, steps)}, and wait for them all."""
    return finish([start(desk, name, steps, user, **extra_env) for name, (user, steps) in plans.items()], timeout)


def deskctl(desk, *args, user: str = "root", **extra_env) -> subprocess.Popen:
    """A real `python -m deskctl ARGS` process on `desk` (for races between whole runs)."""
    return subprocess.Popen([sys.executable, "-m", "deskctl", *map(str, args)], env=env(desk, user, **extra_env),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=desk.tmp_path)


if __name__ == "__main__":
    main(*sys.argv[1:3])
