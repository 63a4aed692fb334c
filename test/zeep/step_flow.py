"""What resources_flow.py and enumeration_flow.py share (not a script of its own): a zeep client
that signs every request and verifies every response signature with signed_flow.py's helpers, the
Wire plugin that shows the envelopes zeep does not, a Flow of named steps that records each one,
its expected faults and the WS-Addressing headers of each reply, and the JSON line the mocha tests
read (the last stdout line; the reasons of failed steps go to stderr).

Each script subclasses Flow with its reply actions (reply_action) and the fields of its faults
(new_fault, read_fault, fault_key). Debian's python only (/usr/bin/python3): standard library +
zeep 4.2.1 + xmlsec + lxml, and signed_flow.py next to this file.
"""
import json
import os
import sys
from collections import namedtuple

from lxml import etree
from zeep import Client, Plugin
from zeep.exceptions import Fault, SignatureVerificationFailed

from signed_flow import FlowFailure, ProxySignatureVerifier, SignedTimestampWsse, rsa_sha256_signer

SYM = "http://soapproxy.symphony/v1"
WSDL_NS = "http://soapproxy.symphony/wsdl/v1"
WSA = "http://www.w3.org/2005/08/addressing"
XPATH_10 = "http://www.w3.org/TR/1999/REC-xpath-19991116"
UNKNOWN_DIALECT = "urn:example:no-such-dialect"


def clark(ns, local):
    return "{%s}%s" % (ns, local)


def script_name():
    """The running script's file name, which prefixes its messages on stderr."""
    return os.path.basename(sys.argv[0])


class Wire(Plugin):
    """Sees each request after zeep's WS-Addressing headers and before signing, and each response
    after zeep verified its signature: what the flow checks beyond zeep's object model."""

    def __init__(self):
        self.request = None
        self.response = None
        self.requests = 0

    def egress(self, envelope, http_headers, operation, binding_options):
        self.request = envelope
        self.response = None
        self.requests += 1
        return envelope, http_headers

    def ingress(self, envelope, http_headers, operation):
        self.response = envelope
        return envelope, http_headers

    @staticmethod
    def _part(envelope, local):
        return envelope.find(etree.QName(etree.QName(envelope).namespace, local))

    def request_payload(self):
        body = self._part(self.request, "Body")
        return body[0] if body is not None and len(body) else None

    def request_header(self, ns, local):
        header = self._part(self.request, "Header")
        return None if header is None else header.findtext(etree.QName(ns, local))

    def response_payload(self):
        if self.response is None:
            raise FlowFailure("no verified response envelope was seen")
        body = self._part(self.response, "Body")
        return body[0] if body is not None and len(body) else None

    def response_header(self, ns, local):
        header = self._part(self.response, "Header")
        return None if header is None else header.findtext(etree.QName(ns, local))


Signed = namedtuple("Signed", "client wire verifier signers")


def open_client(args, result, consumers=None, transport=None):
    """The client of --wsdl, signing as --client-* (the consumer "main"; `consumers` maps more names
    to (cert, key)) and verifying every response with --proxy-cert, faults included. Records in
    `result` where each schema came from. Returns a Signed, or None once a failure is printed as
    the JSON line (the script then exits 1)."""
    try:
        pairs = {"main": (args.client_cert, args.client_key), **(consumers or {})}
        signers = {name: rsa_sha256_signer(cert, key) for name, (cert, key) in pairs.items()}
        verifier = ProxySignatureVerifier(args.proxy_cert, allow_unsigned_faults=False)
        wire = Wire()
        client = Client(
            args.wsdl,
            wsse=SignedTimestampWsse(signers["main"], verifier),
            plugins=[wire],
            transport=transport,
        )
    except Exception as e:
        message = "setup failed: %s: %s" % (type(e).__name__, e)
        print("%s: %s" % (script_name(), message), file=sys.stderr)
        result["error"] = message
        print(json.dumps(result))
        return None

    # Every schema came through the proxy's ?xsd= (symphony.xsd and the WS-* ones it imports).
    locations = {d._location for d in client.wsdl.types.documents if d._location} - {args.wsdl}
    result["xsd"] = sorted(u.split("?xsd=", 1)[1] for u in locations if "?xsd=" in u)
    result["schemasNotFromProxy"] = sorted(u for u in locations if "?xsd=" not in u)
    return Signed(client, wire, verifier, signers)


class Flow:
    """Named steps, each recorded whether it passed or not, the faults they expect, and the
    WS-Addressing headers of every reply. A subclass gives reply_action, and new_fault / read_fault
    / fault_key for the faults of its standard."""

    # The field of a fault's entry that must equal the expected Clark QName.
    fault_key = None

    def __init__(self, wire):
        self.wire = wire
        self.steps = []
        self.faults = {}
        self.addressing = []

    def step(self, name, run):
        """Runs one step; records it, passed or not, and returns its value (None if it failed)."""
        record = {"step": name, "ok": False}
        self.steps.append(record)
        try:
            value, details = run()
        except (FlowFailure, SignatureVerificationFailed, Fault) as e:
            record["error"] = "%s: %s%s" % (type(e).__name__, getattr(e, "message", None) or e, fault_note(e))
            return None
        except Exception as e:  # transport, WSDL, xmlsec: a failure of this step too
            record["error"] = "%s: %s" % (type(e).__name__, e)
            return None
        record.update(details or {})
        record["ok"] = True
        return value

    def reply_action(self, operation, fault):
        """The wsa:Action the reply to `operation` (a fault or not) must carry."""
        raise NotImplementedError

    def check_addressing(self, operation, fault):
        """Design doc §7.4: a response to a request with WS-Addressing carries wsa:RelatesTo (the
        request's MessageID) and its own wsa:Action. Recorded, not a step: the test asserts on it."""
        message_id = self.wire.request_header(WSA, "MessageID")
        if message_id is None or self.wire.response is None:
            return
        want = self.reply_action(operation, fault)
        got_action = self.wire.response_header(WSA, "Action")
        got_relates = self.wire.response_header(WSA, "RelatesTo")
        problems = []
        if got_action != want:
            problems.append("wsa:Action %r, want %r" % (got_action, want))
        if got_relates != message_id:
            problems.append("wsa:RelatesTo %r, want the request's MessageID" % got_relates)
        self.addressing.append({"operation": operation, "fault": fault, "problems": problems})

    def call(self, service, operation, *args, **kwargs):
        try:
            value = getattr(service, operation)(*args, **kwargs)
        except Fault:
            self.check_addressing(operation, True)
            raise
        self.check_addressing(operation, False)
        return value

    def new_fault(self, want):
        """The JSON entry of an expected fault, before the call."""
        raise NotImplementedError

    def read_fault(self, fault, entry):
        """Fills `entry` from the zeep Fault raised (and the verified envelope on self.wire)."""
        raise NotImplementedError

    def expect_fault(self, name, service, operation, want, *args, **kwargs):
        """A call that must fail with a fault whose entry[fault_key] is `want` (a Clark QName)."""
        entry = self.new_fault(want)
        self.faults[name] = entry
        key = self.fault_key

        def run():
            try:
                self.call(service, operation, *args, **kwargs)
            except Fault as f:
                entry["raisedZeepFault"] = True
                self.read_fault(f, entry)
            else:
                raise FlowFailure("%s answered, want a fault with %s %s" % (operation, key, want))
            if entry[key] != want:
                raise FlowFailure("fault %s %s, want %s" % (key, entry[key], want))
            return None, {key: entry[key]}

        return self.step(name, run)


def fault_note(e):
    if isinstance(e, Fault) and e.detail is not None and len(e.detail):
        return " [detail %s]" % etree.QName(e.detail[0]).text
    return ""


def qname_as_sent(el):
    """The QName text an element carried, and the element that declares its prefix."""
    text = (el.text or "").strip()
    prefix = text.split(":", 1)[0] if ":" in text else None
    declared_on = None
    node = el
    while node is not None and prefix is not None:
        parent = node.getparent()
        if prefix in node.nsmap and (parent is None or parent.nsmap.get(prefix) != node.nsmap[prefix]):
            declared_on = etree.QName(node).localname
            break
        node = parent
    return {"text": text, "prefixDeclaredOn": declared_on}


def finish(result, flow, signed):
    """Prints the JSON line: every step, every expected fault, the signature and WS-Addressing
    counts. Returns the exit status: 0 when every step passed."""
    failed = [s for s in flow.steps if not s["ok"]]
    verifier = signed.verifier
    result.update(
        ok=not failed,
        steps=flow.steps,
        faults=flow.faults,
        requests=signed.wire.requests,
        verifiedResponses=verifier.verified,
        signedFaults=verifier.signed_faults,
        unsignedFaults=verifier.unsigned_faults,
        responseSignatureMethods=sorted(verifier.signature_methods),
        addressing={
            "checked": len(flow.addressing),
            "wrong": [a for a in flow.addressing if a["problems"]],
        },
    )
    for s in failed:
        print("%s: %s failed: %s" % (script_name(), s["step"], s.get("error")), file=sys.stderr)
    # default=str: zeep values a step keeps as they were parsed (dates, durations) print as text.
    print(json.dumps(result, default=str))
    return 0 if result["ok"] else 1
