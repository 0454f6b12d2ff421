"""Where library chatter goes: a log file by default, the terminal as well with `--verbose`.

TensorFlow 2.21 writes its C++ logs ("W0000 ...", "oneDNN custom operations are on ...") straight
to file descriptor 2, some of them whatever TF_CPP_MIN_LOG_LEVEL says. So the quiet mode points
fd 2 at the log file and gives Python's `sys.stderr` a copy of the terminal: our own messages
(one-line errors, Rich status) still reach the user; C/C++ writes, child processes' stderr,
Python logging and warnings land in the file. Call `route_library_output` from an entry point
before TensorFlow, MLflow or Prefect are imported; nothing here runs at import time.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

CLI_LOG = Path("reports/cli.log")
FILE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
TERMINAL_FORMAT = "%(levelname)s %(name)s: %(message)s"
# set unless the user set them; a child process (bentoml, mlflow ui, dvc) inherits them too
QUIET_ENV = {
    "TF_CPP_MIN_LOG_LEVEL": "2",  # TF C++: errors only (they still reach the file)
    "GIT_PYTHON_REFRESH": "quiet",  # MLflow's git probe: no warning without git
}
# INFO from these is one line per migration step or HTTP request (MLflow quiets alembic itself)
NOISY_LOGGERS = ("alembic", "httpx")


def cli_log_path(root: Path) -> Path:
    """The CLI's log file under a project root."""
    return root / CLI_LOG


def route_library_output(log_path: Path, verbose: bool = False) -> Path:
    """Send library logs, warnings and C-level stderr to `log_path` (appended).

    Args:
        log_path: the log file; its folder is created.
        verbose: also show logs and warnings on the terminal, and leave fd 2 and the
            libraries' log levels alone.

    Returns:
        `log_path`.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    # MLflow's own handler writes to stderr and stops propagation; let its records reach ours
    os.environ.setdefault("MLFLOW_CONFIGURE_LOGGING", "false")
    log = log_path.open("a", buffering=1, encoding="utf-8")  # open for the process's lifetime
    to_file = logging.StreamHandler(log)
    to_file.setFormatter(logging.Formatter(FILE_FORMAT))
    handlers: list[logging.Handler] = [to_file]
    if verbose:
        to_terminal = logging.StreamHandler(sys.stderr)
        to_terminal.setFormatter(logging.Formatter(TERMINAL_FORMAT))
        handlers.append(to_terminal)
    else:
        for key, value in QUIET_ENV.items():
            os.environ.setdefault(key, value)
        sys.stderr.flush()
        terminal = open(  # noqa: SIM115 - lives as long as the process, like the stderr it replaces
            os.dup(2), "w", buffering=1, encoding=sys.stderr.encoding, errors="backslashreplace"
        )
        os.dup2(log.fileno(), 2)
        sys.stderr = terminal
    # root handlers with a formatter: TensorFlow then adds none of its own, Prefect keeps them
    root = logging.getLogger()
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(logging.INFO)
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.captureWarnings(True)
    return log_path
