"""A stand-in OpenAI chat-completions server on 127.0.0.1 with scripted behaviours.

`StandIn.start()` serves `POST /v1/chat/completions` from a thread (stdlib `ThreadingHTTPServer`).
Its answer is the draft found between `<draft>` and `</draft>` in the last user message, with one
friendly sentence in the notice's language added, so it passes the guard; `mode` scripts
everything else (see `answer`). Every request body is kept in `requests`.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_DRAFT = re.compile(r"<draft>\s*(.*?)\s*</draft>", re.DOTALL)
GREETING = {"en": "We are glad you are with us.", "pt-BR": "Que bom ter você com a gente."}
MODES = (
    "ok",  # the draft + one friendly sentence
    "slow",  # answers after `delay` seconds (tests set it past the client's timeout)
    "429",  # always 429 with Retry-After: 0
    "429_once",  # 429 on each notice's first request, then ok
    "500",  # always 500
    "500_once",  # 500 on each notice's first request, then ok
    "drop_fact",  # the amount and date removed
    "add_number",  # an invented discount
    "foreign_url",  # a phishing link
    "wrong_locale",  # answers in the other language
    "refusal",  # an OpenAI-style refusal
    "not_json",  # a 200 with an HTML body
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _locale(messages: list[dict[str, Any]]) -> str:
    return "pt-BR" if "português" in messages[0].get("content", "") else "en"


def answer(mode: str, messages: list[dict[str, Any]], seen: int) -> tuple[int, dict, Any]:
    """(status, headers, JSON body) for `mode`; `seen` = earlier requests with the same draft."""
    match = _DRAFT.search(messages[-1]["content"])
    draft = match.group(1) if match else ""
    locale = _locale(messages)
    head, _, rest = draft.partition("\n")
    text = f"{head}\n{GREETING[locale]}\n{rest}".strip()
    if mode == "429" or (mode == "429_once" and seen == 0):
        return 429, {"Retry-After": "0"}, {"error": {"message": "rate limited"}}
    if mode == "500" or (mode == "500_once" and seen == 0):
        return 500, {}, {"error": {"message": "boom"}}
    if mode == "not_json":
        return 200, {}, "<html>gateway</html>"
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if mode == "drop_fact":
        message["content"] = re.sub(r"\d[\d.,]*|March|janeiro|\$|R\$", "", text)
    elif mode == "add_number":
        message["content"] = text + "\nGet 50% off if you reply today."
    elif mode == "foreign_url":
        message["content"] = text + "\nConfirm your card at http://paycycle-billing.evil.example/x"
    elif mode == "wrong_locale":
        other = "en" if locale == "pt-BR" else "pt-BR"
        message["content"] = text.replace(GREETING[locale], GREETING[other] * 6)
    elif mode == "refusal":
        message = {"role": "assistant", "content": None, "refusal": "I can't help with that."}
    usage = {"prompt_tokens": 120, "completion_tokens": 60, "total_tokens": 180}
    choice = {"index": 0, "message": message, "finish_reason": "stop"}
    return (
        200,
        {},
        {"id": "cmpl-1", "object": "chat.completion", "choices": [choice], "usage": usage},
    )


class StandIn:
    """The server; set `mode` (and `delay` for `slow`, `latency` for every answer) any time."""

    def __init__(self, mode: str = "ok", delay: float = 5.0, latency: float = 0.0) -> None:
        self.mode, self.delay, self.latency = mode, delay, latency
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self._seen: dict[str, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self._server: ThreadingHTTPServer | None = None

    @property
    def calls(self) -> int:
        return len(self.requests)

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = json.loads(handler.rfile.read(length) or b"{}")
        with self._lock:
            self.requests.append(body)
            self.headers.append(dict(handler.headers))
            draft = body["messages"][-1]["content"]
            seen = self._seen.get(draft, 0)
            self._seen[draft] = seen + 1
        if self.mode == "slow":
            self._stop.wait(self.delay)
        elif self.latency:
            time.sleep(self.latency)
        status, headers, payload = answer(self.mode, body["messages"], seen)
        raw = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
        try:
            handler.send_response(status)
            for k, v in headers.items():
                handler.send_header(k, v)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(raw)))
            handler.end_headers()
            handler.wfile.write(raw)
        except OSError:  # the client gave up (timeout): nothing to answer
            pass

    def start(self) -> StandIn:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server API
                if self.path.rstrip("/") != "/v1/chat/completions":
                    self.send_error(404)
                    return
                owner._handle(self)

            def log_message(self, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


# --- a small billing store and settings pointing at the stand-in ------------------------------

DAY = "2025-01-10"  # a billing day of the 2-month simulation below with every common kind


def make_store(root: Any, db_url: str | None = None) -> str:
    """Simulate 400 customers × 2 months under `root` and load them into a migrated store.

    Returns the store URL (a SQLite file under `root` unless `db_url` is given).
    """
    from pathlib import Path

    from paycycle.loader import load_raw
    from paycycle.sim.simulator import SimSpec, simulate
    from paycycle.store import make_engine, upgrade

    root = Path(root)
    spec = SimSpec(customers=400, months=2, seed=5, chunk_customers=400)
    simulate(spec, root / "sim" / "raw", root / "sim" / "truth")
    url = db_url or f"sqlite:///{root / 'store.db'}"
    upgrade(url)
    engine = make_engine(url)
    load_raw(engine, root / "sim" / "raw")
    engine.dispose()
    return url


def llm_settings(
    root: Any, db_url: str, llm_url: str | None, mlflow_db: Any = None, **llm: Any
) -> Any:
    """Settings rooted at `root`: the store, MLflow in `mlflow_db` (default `root/mlflow.db`),
    the model at `llm_url` (None: no model) and `notify.llm` params overridden by `llm`."""
    from pathlib import Path

    from paycycle import config

    root = Path(root)
    mlflow_db = mlflow_db or root / "mlflow.db"
    settings = config.load(
        root=root,
        database_url=db_url,
        mlflow_tracking_uri=f"sqlite:///{mlflow_db}",
        llm_url=llm_url,
        llm_model="stand-in-1" if llm_url else None,
        llm_api_key=llm.pop("api_key", None),
        link_secret="a-test-link-secret-of-32-chars!!",
    )
    notify = settings.params.notify
    params = settings.params.model_copy(
        update={"notify": notify.model_copy(update={"llm": notify.llm.model_copy(update=llm)})}
    )
    return settings.model_copy(update={"params": params})


def reset_outbox(settings: Any) -> None:
    """Empty the outbox, the text records, the cache and the file channel's output."""
    import shutil

    from sqlalchemy import text

    from paycycle.store import make_engine

    engine = make_engine(settings.db_url)
    with engine.begin() as conn:
        for table in ("notices", "notice_texts", "generated_texts"):
            conn.execute(text(f"DELETE FROM {table}"))
    engine.dispose()
    shutil.rmtree(settings.path(settings.params.notify.outbox_dir), ignore_errors=True)


def delivered(settings: Any) -> dict[str, dict[str, Any]]:
    """What the file channel delivered, by dedup key."""
    from notify.channels import OUTBOX_FILE, read_outbox_file

    out = settings.path(settings.params.notify.outbox_dir) / OUTBOX_FILE
    return {r["dedup_key"]: r for r in read_outbox_file(out)}


def text_records(settings: Any) -> dict[str, dict[str, Any]]:
    """`notice_texts` rows by dedup key, and the outbox status of each notice."""
    from sqlalchemy import text

    from paycycle.store import make_engine

    engine = make_engine(settings.db_url)
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT t.dedup_key, t.source, t.reason, t.prompt, n.status, n.kind "
                "FROM notice_texts t JOIN notices n ON n.dedup_key = t.dedup_key"
            )
        ).mappings()
        out = {r["dedup_key"]: dict(r) for r in rows}
    engine.dispose()
    return out


def flush_traces() -> None:
    """Wait for MLflow's background trace export (before a test module's store goes away)."""
    import mlflow

    mlflow.flush_trace_async_logging()
