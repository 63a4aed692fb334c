"""A signed zeep client that keeps working while proxies behind the load balancer die.

One thread submits --tasks text tasks in batches of --batch (each batch with its own clientKey and,
through zeep's WS-Addressing plugin, its own MessageID); another fetches with leased delivery,
acknowledging each fetch's outputs with the next fetch. The client itself never retries unless
--retry-retryable is given (then it retries faults marked retryable, with the same clientKey, as
the README tells clients to): with HAProxy retries plus idempotent submits and leased fetches,
a proxy killed mid-run must cost it nothing.

Usage:
  /usr/bin/python3 ha_client.py --wsdl URL --client-cert F --client-key F
      [--tasks 5000] [--batch 50] [--retry-retryable] [--deadline 240]
Prints {"event": "progress", "submitted": n, "received": m} lines while it runs, and one final JSON
line: ok, submitted, unique_ids, received, missing, wrong, duplicates, errors, client_retries.
Debian's python only (/usr/bin/python3): zeep 4.2.1 + xmlsec + lxml.
"""
import argparse
import json
import sys
import threading
import time
import traceback
import uuid

import requests
import xmlsec
from zeep import Client, Settings
from zeep.exceptions import Fault, TransportError
from zeep.transports import Transport
from zeep.wsa import WsAddressingPlugin
from zeep.wsse.signature import BinarySignature

from signed_flow import SignedTimestampWsse

lock = threading.Lock()
state = {"submitted": 0, "received": 0}


def emit(obj):
    with lock:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()


class UnverifiedResponses(SignedTimestampWsse):
    """Signs requests; response signatures are the subject of other tests."""

    def verify(self, envelope):
        return envelope


def make_client(args):
    signer = BinarySignature(
        args.client_key,
        args.client_cert,
        signature_method=xmlsec.constants.TransformRsaSha256,
        digest_method=xmlsec.constants.TransformSha256,
    )
    session = requests.Session()
    transport = Transport(session=session, timeout=60, operation_timeout=60)
    client = Client(
        args.wsdl,
        wsse=UnverifiedResponses(signer, None),
        plugins=[WsAddressingPlugin()],
        transport=transport,
        settings=Settings(strict=True),
    )
    binding = "{http://soapproxy.symphony/wsdl/v1}%sBindingSoap11"
    address = args.wsdl.split("?")[0]
    return {
        name: client.create_service(binding % name, address)
        for name in ("Connection", "Session", "TaskInput", "TaskOutput")
    }


class Caller:
    """Runs one call; with --retry-retryable, retries what the proxy marks retryable."""

    def __init__(self, args, errors):
        self.retry = args.retry_retryable
        self.errors = errors
        self.retries = 0

    def __call__(self, what, fn):
        for attempt in range(120):
            try:
                return fn()
            except Fault as f:
                detail = _text(f.detail)
                retryable = "<sym:retryable>true</sym:retryable>" in detail
                code = detail.split("<sym:code>")[1].split("<")[0] if "<sym:code>" in detail else None
                if self.retry and retryable:
                    self.retries += 1
                    time.sleep(0.5)
                    continue
                raise RuntimeError("%s: fault %s: %s" % (what, code, f.message))
            except TransportError as e:
                # The load balancer's own answer (no proxy could take the call), not a SOAP fault.
                if self.retry and e.status_code in (502, 503, 504):
                    self.retries += 1
                    time.sleep(0.5)
                    continue
                raise RuntimeError("%s: HTTP %s from the load balancer" % (what, e.status_code))
            except requests.RequestException as e:
                if self.retry:
                    self.retries += 1
                    time.sleep(0.5)
                    continue
                raise RuntimeError("%s: transport error %s" % (what, e))
        raise RuntimeError("%s: still failing after %d attempts" % (what, attempt + 1))


def _text(el):
    """The fault detail as text; zeep leaves it None (or not an element) for non-SOAP replies."""
    from lxml import etree

    try:
        return etree.tostring(el, encoding="unicode")
    except TypeError:
        return ""


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--wsdl", required=True)
    p.add_argument("--client-cert", required=True)
    p.add_argument("--client-key", required=True)
    p.add_argument("--tasks", type=int, default=5000)
    p.add_argument("--batch", type=int, default=50)
    p.add_argument("--retry-retryable", action="store_true")
    p.add_argument("--deadline", type=float, default=240.0)
    p.add_argument("--pace-ms", type=float, default=0.0, help="pause between batches")
    args = p.parse_args()

    errors = []
    expected = {}  # task id -> input text
    received = {}  # task id -> output text
    duplicates = [0]
    ids_submitted = []
    sender_done = threading.Event()
    deadline = time.monotonic() + args.deadline

    main_services = make_client(args)
    call = Caller(args, errors)
    connection_id = call(
        "connect",
        lambda: main_services["Connection"].connect(applicationName="echo", username="u", password="p").connectionId,
    )
    session_id = call(
        "createSession",
        lambda: main_services["Session"]
        .createSession(connectionId=connection_id, sessionCreationAttributes={"name": "ha"})
        .sessionId,
    )

    def sender():
        services = make_client(args)
        c = Caller(args, errors)
        try:
            for start in range(0, args.tasks, args.batch):
                n = min(args.batch, args.tasks - start)
                texts = ["t-%d" % (start + i) for i in range(n)]
                key = str(uuid.uuid4())
                ids = c(
                    "sendTaskInputBatch",
                    lambda: services["TaskInput"].sendTaskInputBatch(
                        sessionId=session_id,
                        taskSubmissionAttributes=[{"taskInput": {"text": t}} for t in texts],
                        clientKey=key,
                    ),
                )
                if len(ids) != n:
                    raise RuntimeError("sendTaskInputBatch returned %d ids for %d tasks" % (len(ids), n))
                with lock:
                    for tid, text in zip(ids, texts):
                        expected[tid] = text
                    ids_submitted.extend(ids)
                    state["submitted"] += n
                emit({"event": "progress", **state})
                time.sleep(args.pace_ms / 1000.0)
        except Exception as e:  # noqa: BLE001 - reported in the final JSON
            traceback.print_exc()
            errors.append(str(e))
        finally:
            call.retries += c.retries
            sender_done.set()

    def fetcher():
        services = make_client(args)
        c = Caller(args, errors)
        token = None
        try:
            while time.monotonic() < deadline:
                with lock:
                    done = sender_done.is_set() and len(received) >= len(expected)
                if done or (sender_done.is_set() and errors):
                    break
                reply = c(
                    "fetchTaskOutput",
                    lambda: services["TaskOutput"].fetchTaskOutput(
                        sessionId=session_id, countMax=500, timeoutMillis=1000, leaseMillis=20000, acknowledge=token
                    ),
                )
                token = reply.deliveryToken
                with lock:
                    for o in reply.taskOutput or []:
                        if o.taskId in received:
                            duplicates[0] += 1
                        received[o.taskId] = o.taskOutput.text if o.successful and o.taskOutput is not None else None
                    state["received"] = len(received)
                emit({"event": "progress", **state})
            if token is not None:
                c("acknowledgeTaskOutput", lambda: services["TaskOutput"].acknowledgeTaskOutput(
                    sessionId=session_id, deliveryToken=token))
        except Exception as e:  # noqa: BLE001 - reported in the final JSON
            traceback.print_exc()
            errors.append(str(e))
        finally:
            call.retries += c.retries

    threads = [threading.Thread(target=sender), threading.Thread(target=fetcher)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    try:
        call("closeSession", lambda: main_services["Session"].closeSession(sessionId=session_id))
        call("closeConnection", lambda: main_services["Connection"].closeConnection(connectionId=connection_id))
    except Exception as e:  # noqa: BLE001
        errors.append(str(e))

    missing = [tid for tid in expected if tid not in received]
    wrong = [tid for tid, text in expected.items() if tid in received and received[tid] != text]
    result = {
        "ok": not errors and not missing and not wrong and len(expected) == args.tasks,
        "submitted": len(ids_submitted),
        "unique_ids": len(set(ids_submitted)),
        "received": len(received),
        "missing": len(missing),
        "wrong": len(wrong),
        "duplicates": duplicates[0],
        "errors": errors[:20],
        "client_retries": call.retries,
        "session_id": session_id,
    }
    emit(result)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
