"""``python -m bench.sink_child``: the SMTP sink in its own process, reporting what arrives.

Run as a child of the bench so the sink's SMTP handling and MIME parsing do not share the
bench process's interpreter (and GIL) with the engine. Prints its port, then one line per
received message, ``<recipient>\\t<subject>\\t<arrival>``, the arrival in Unix seconds taken the
moment the sink hands the message over; exits when its standard input closes.
"""

from __future__ import annotations

import sys
import threading
import time

from journeyman.channels import SmtpSink


def main() -> None:
    sink = SmtpSink()
    print(sink.start(), flush=True)
    closed = threading.Event()

    def watch_stdin() -> None:
        sys.stdin.read()  # returns at end of file: the parent is gone or done
        closed.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    seen = 0
    try:
        while not closed.is_set():
            try:
                messages = sink.wait_for_messages(seen + 1, timeout=0.2)
            except TimeoutError:
                continue
            # The wall clock, so the bench compares it with the time it got an HTTP answer.
            at = f"{time.time():.6f}"
            lines = [
                f"{m['To'].addresses[0].addr_spec}\t{m['Subject']}\t{at}\n" for m in messages[seen:]
            ]
            seen = len(messages)
            sys.stdout.write("".join(lines))
            sys.stdout.flush()
    finally:
        sink.stop()


if __name__ == "__main__":
    main()
