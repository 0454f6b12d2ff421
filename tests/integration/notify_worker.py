"""A delivery worker process for the outbox crash tests (run as a script, not collected).

Usage: python notify_worker.py DB_URL OUTBOX_DIR FILENAME BATCH_SIZE DELAY_S
Delivers every due `file` notice; sleeps DELAY_S after each message so a test can SIGKILL it
mid-batch or run two at once.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from notify.channels import FileChannel  # noqa: E402
from notify.outbox import deliver  # noqa: E402
from paycycle.config import NotifyParams  # noqa: E402
from paycycle.store import make_engine  # noqa: E402


def main() -> None:
    url, outbox_dir, filename, batch, delay = sys.argv[1:6]
    engine = make_engine(url)
    channel = FileChannel(Path(outbox_dir), filename)
    params = NotifyParams(batch_size=int(batch), lease_seconds=600)
    stats = deliver(engine, channel, params, on_sent=lambda row: time.sleep(float(delay)))
    print(f"sent={stats.sent} already={stats.already_delivered} batches={stats.batches}")


if __name__ == "__main__":
    main()
