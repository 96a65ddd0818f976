"""A real SMTP server for the tests (aiosmtpd, from PyPI): every message it
takes is written to DIR as NNNN.eml. Prints "ready" once listening; stops
when its stdin closes.

    python smtp_sink.py DIR PORT
"""
import os
import sys

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, out):
        self.out = out
        self.n = 0

    async def handle_DATA(self, server, session, envelope):
        self.n += 1
        path = os.path.join(self.out, f"{self.n:04d}.eml")
        with open(path + ".part", "wb") as f:
            f.write(envelope.original_content or envelope.content)
        os.rename(path + ".part", path)
        return "250 OK"


def main():
    out, port = sys.argv[1], int(sys.argv[2])
    os.makedirs(out, exist_ok=True)
    controller = Controller(Sink(out), hostname="127.0.0.1", port=port)
    controller.start()
    print("ready", flush=True)
    sys.stdin.read()
    controller.stop()


if __name__ == "__main__":
    main()
