#!/usr/bin/env python3
"""moto's server (S3, DynamoDB, SQS, ...) with DynamoDB's per-item atomicity.

    target/moto-venv/bin/python tests/moto_server.py -H 127.0.0.1 -p PORT

The same app as `moto_server -H HOST -p PORT` (werkzeug, one thread per request), with one
difference: DynamoDB requests (those whose X-Amz-Target starts with `DynamoDB_`) run one at a
time. moto's DynamoDB backend takes no lock of its own (moto 5.2.5,
moto/dynamodb/models/__init__.py):
- DynamoDBBackend.update_item checks the ConditionExpression (`condition_op.expr(item)`) and
  then applies the update (`UpdateExpressionExecutor(...).execute()`) as two steps, so two
  racing conditional writes on one item can both pass the check: one update is lost (put_item
  and delete_item alike);
- transact_write_items deep-copies every table it touches first and, when a condition fails,
  puts those copies back (`self.tables[table_name] = original_table_state[table_name]`), which
  undoes every write other requests made in the meantime, to any item of the table.
DynamoDB applies each conditional write and each transaction atomically, which is what the table
port suite asserts. Every other service stays concurrent (SQS long polls must not block the
rest). tests/chaos/moto_race.py measures the difference.
"""
import argparse
import os
import signal
import sys
import threading

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import run_simple


class SerializedDynamoDB:
    """WSGI middleware: one DynamoDB request at a time, the response body included."""

    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        if not environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
            return self.app(environ, start_response)
        with self.lock:
            result = self.app(environ, start_response)
            try:
                body = b"".join(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        return [body]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=int(os.environ.get("MOTO_PORT", 5000)))
    args = parser.parse_args()
    os.environ.setdefault("MOTO_PORT", str(args.port))  # as moto_server: moto calls itself there
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, lambda *_: sys.exit(0))
    app = DomainDispatcherApplication(create_backend_app)
    app.debug = True
    run_simple(args.host, args.port, SerializedDynamoDB(app), threaded=True,
               request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
