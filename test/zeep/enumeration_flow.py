"""A zeep client of the WS-Enumeration ports (the 2004/09 submission and the W3C 2011
Recommendation), generated from the WSDL the proxy serves, that signs every request and verifies
every response signature exactly as signed_flow.py does, and runs one scenario per call:

  outputs-2004  25 tasks; 2004/09 Enumerate at the session's EPR Address, Pull (MaxElements 4) to
                the end, one Pull sent twice (repeat), GetStatus, Renew, Release, and the Pull
                after Release (wsen:InvalidEnumerationContext)
  optimized     10 tasks; Enumerate with wsman:OptimizeEnumeration and wsman:MaxElements: the
                first page comes in wsman:Items, Pull fetches the rest
  outputs-2011  12 tasks; 2011 Enumerate(NewContext, MaxItems 5), then Enumerate(EnumerationContext,
                MaxItems 5) to the end; GetStatus, Renew, Release and the Enumerate after Release
  sessions      the consumer's sessions at .../sessions (the WSDL's own address): a 2004/09 Filter
                "s:State = 'Open'" + Pull, and an unfiltered 2011 Enumerate; another consumer's
                session (--foreign-client-*) must never show
  faults        FilteringNotSupported, InvalidExpirationTime, FilterDialectRequestedUnavailable

Usage:
  /usr/bin/python3 enumeration_flow.py --scenario NAME --wsdl URL --client-cert F --client-key F
      --proxy-cert F [--soap12] [--foreign-client-cert F --foreign-client-key F]

The last stdout line is one JSON object: every step with its outcome, every expected fault with
its code, and the signature and WS-Addressing counts the mocha test asserts on. Exits non-zero,
with the reasons on stderr, when a step fails. Debian's python only (/usr/bin/python3): standard
library + zeep 4.2.1 + xmlsec + lxml, and signed_flow.py / step_flow.py next to this file.

How zeep sees WS-Enumeration (what the WSDL alone does not make obvious):
  * The EnumerationContext: the proxy writes its cursor as a sym:EnumerationCursor element inside
    the (mixed) context. That element is deliberately undeclared, so zeep keeps it as an lxml
    element ({_value_1: [<element>], _attr_1: None}) and the parsed context goes back unchanged
    (probed once, outputs-2004, as "contextEcho"). The script reads the cursor from it and
    builds the element again to send, so that it can also send stale or repeated contexts.
  * Items: sym:Output (and sym:SessionResourceProperties) are declared in symphony.xsd, so
    zeep's lax xs:any parses every item into a typed object (TaskOutput: taskId, tag,
    successful, exception, taskOutput.text ...). The wsman:Items of an optimized
    EnumerateResponse are in no schema the WSDL imports: zeep hands them over as an lxml
    element in the response's _value_1; its children are parsed with
    client.get_element("sym:Output").parse(child, client.wsdl.types).
  * wsman:OptimizeEnumeration / wsman:MaxElements are ##other extensions of wsen:Enumerate: pass
    lxml elements in the Enumerate's _value_1 list.
  * The mixed Filter: as the QueryExpression of resources_flow.py, {"_value_1":
    xsd.AnyObject(xsd.String(), expression), "Dialect": ...}; the prefix "s" is declared on the
    Envelope by client.set_ns_prefix("s", SYM).
  * Empty elements parse as None: zeep shows EndOfSequence as None whether it was sent or not.
    The script reads it (and the Items' element names, a 2004/09 Release's empty Body, fault
    codes) from the verified response envelope (the ingress plugin of step_flow.py, which zeep
    calls after wsse.verify).
  * A 2004/09 Release answers an empty Body; the WSDL's output message has no part, so zeep
    returns None. 2011's Release answers wsen:ReleaseResponse.
  * SOAP 1.1 fault codes: zeep's Fault.code is the faultcode text ("wsen:..."); its prefix is
    resolved on the verified envelope. SOAP 1.2: zeep resolves the subcodes (Fault.subcodes).
    zeep does not expose a fault's HTTP status: a Transport subclass records it ("httpStatus").
"""
import datetime
import os
import re
import sys
import time

from lxml import etree
from zeep import xsd
from zeep.helpers import serialize_object
from zeep.transports import Transport

# signed_flow.py and step_flow.py sit next to this file; leave no __pycache__ in the source tree.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from signed_flow import FlowFailure, client_parser, utc_now  # noqa: E402  (next to this file)
from step_flow import (  # noqa: E402
    SYM,
    UNKNOWN_DIALECT,
    WSDL_NS,
    XPATH_10,
    Flow,
    clark,
    finish,
    open_client,
    qname_as_sent,
)

WSEN_2004 = "http://schemas.xmlsoap.org/ws/2004/09/enumeration"
WSEN_2011 = "http://www.w3.org/2011/03/ws-enu"
WSMAN = "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"
SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
SCENARIOS = ("outputs-2004", "optimized", "outputs-2011", "sessions", "faults")

# Task-done wait and paging bounds.
DONE_WAIT = datetime.timedelta(seconds=30)
MAX_PAGES = 40


class StatusTransport(Transport):
    """zeep's transport, keeping the HTTP status of the last response (a fault's class in SOAP 1.2)."""

    status = None

    def post(self, address, message, headers):
        response = super().post(address, message, headers)
        self.status = response.status_code
        return response


def version_of(service):
    """The WS-Enumeration namespace a bound service speaks (from its binding's name)."""
    return WSEN_2011 if "2011" in service._binding.name.localname else WSEN_2004


class EnumerationFlow(Flow):
    """step_flow.Flow (steps, calls) with the WS-Enumeration actions and fault codes: the SOAP 1.1
    faultcode, or the first SOAP 1.2 subcode (the sender's fault, design doc §7.7)."""

    fault_key = "code"

    def __init__(self, wire, soap12, transport):
        super().__init__(wire)
        self.soap12 = soap12
        self.transport = transport
        self.service_of_call = None

    def call(self, service, operation, *args, **kwargs):
        self.service_of_call = service
        return super().call(service, operation, *args, **kwargs)

    def reply_action(self, operation, fault):
        """{ns}/{Op}Response, or the standard's {ns}/fault (design doc §7.4)."""
        ns = version_of(self.service_of_call)
        return "%s/fault" % ns if fault else "%s/%sResponse" % (ns, operation)

    def fault_codes(self):
        """(SOAP code, the standard's code) of the verified fault envelope, as Clark QNames."""
        env = self.wire.response
        soap = etree.QName(env).namespace
        fault = env.find("{%s}Body/{%s}Fault" % (soap, soap))
        if fault is None:
            raise FlowFailure("the verified response holds no soap Fault")

        def resolve(el):
            text = (el.text or "").strip() if el is not None else ""
            prefix, _, local = text.rpartition(":")
            ns = el.nsmap.get(prefix or None) if el is not None else None
            return clark(ns, local) if ns else text or None

        if soap == SOAP11:
            code = resolve(fault.find("faultcode"))
            return code, code
        value = fault.find("{%s}Code/{%s}Value" % (SOAP12, SOAP12))
        sub = fault.find("{%s}Code/{%s}Subcode/{%s}Value" % (SOAP12, SOAP12, SOAP12))
        return resolve(value), resolve(sub)

    def new_fault(self, want):
        return {
            "want": want,
            "code": None,
            "soapCode": None,
            "raisedZeepFault": False,
            "zeepCode": None,
            "httpStatus": None,
            "zeepSubcodes": None,
            "errorCode": None,
            "detail": [],
            "supportedDialects": [],
        }

    def read_fault(self, fault, entry):
        entry["zeepCode"] = fault.code
        entry["httpStatus"] = self.transport.status
        entry["zeepSubcodes"] = [q.text for q in fault.subcodes or []] if self.soap12 else None
        entry["soapCode"], entry["code"] = self.fault_codes()
        detail = list(fault.detail) if fault.detail is not None else []
        entry["detail"] = [etree.QName(el).text for el in detail]
        for el in detail:
            if etree.QName(el).localname == "ProxyFault":
                entry["errorCode"] = el.findtext(etree.QName(SYM, "code"))
            if etree.QName(el).localname == "SupportedDialect":
                entry["supportedDialects"].append((el.text or "").strip())


class Run:
    """One scenario: the client, its ports, the flow, and what the steps share."""

    def __init__(self, args, client, wire, flow, signers):
        self.args = args
        self.client = client
        self.wire = wire
        self.flow = flow
        self.signers = signers
        self.suffix = "Soap12" if args.soap12 else ""
        self.binding = "Soap12" if args.soap12 else "Soap11"
        self.conn = client.bind("SymphonyService", "ConnectionPort" + self.suffix)
        self.sess = client.bind("SymphonyService", "SessionPort" + self.suffix)
        self.tin = client.bind("SymphonyService", "TaskInputPort" + self.suffix)
        self.output_element = client.get_element(clark(SYM, "Output"))
        self.opened = []  # the connections and sessions to close at the end
        self.tag = "%s-%s" % (args.scenario, "12" if args.soap12 else "11")

    # --- the API ports -------------------------------------------------------------------

    def as_consumer(self, name):
        self.client.wsse.signer = self.signers[name]

    def open_session(self, label, tasks=0, consumer="main"):
        """connect + createSession (+ tasks, waited for): steps named after `label`."""
        state = {}

        def connect():
            self.as_consumer(consumer)
            try:
                r = self.conn.connect(applicationName="echo", username="zeep-enum", password="pw")
            finally:
                self.as_consumer("main")
            state["connection"] = r.connectionId
            self.opened.append(
                {"consumer": consumer, "connection": r.connectionId, "sessions": [], "closed": False}
            )
            return r, {}

        def create():
            self.as_consumer(consumer)
            try:
                r = self.sess.createSession(
                    connectionId=state["connection"],
                    sessionCreationAttributes={"name": self.tag, "priority": 5, "compressionEnable": False},
                )
            finally:
                self.as_consumer("main")
            address = r.EndpointReference.Address._value_1
            if not address.endswith("/sessions/" + r.sessionId):
                raise FlowFailure("EPR Address %s does not name session %s" % (address, r.sessionId))
            state.update(session=r.sessionId, address=address)
            self.opened[-1]["sessions"].append(r.sessionId)
            return r, {"address": address}

        if self.flow.step("connect" + label, connect) is None:
            return None
        if self.flow.step("createSession" + label, create) is None:
            return None
        if tasks == 0:
            return state

        texts = ["%s-%02d" % (self.tag, i) for i in range(tasks)]

        def send():
            batch = [{"tag": "t%02d" % i, "taskInput": {"text": t}} for i, t in enumerate(texts)]
            ids = self.tin.sendTaskInputBatch(sessionId=state["session"], taskSubmissionAttributes=batch)
            if len(ids) != tasks:
                raise FlowFailure("sendTaskInputBatch returned %d ids for %d tasks" % (len(ids), tasks))
            state["texts"] = dict(zip(ids, texts))
            return ids, {"tasks": len(ids)}

        def done():
            until = utc_now() + DONE_WAIT
            polls = 0
            while True:
                polls += 1
                st = self.sess.getSessionStatus(sessionId=state["session"])
                if st.doneTasks == tasks:
                    return st, {"doneTasks": st.doneTasks, "polls": polls}
                if utc_now() > until:
                    raise FlowFailure("%d of %d tasks done after %s" % (st.doneTasks, tasks, DONE_WAIT))
                time.sleep(0.1)

        if self.flow.step("sendTaskInputBatch" + label, send) is None:
            return None
        if self.flow.step("tasks done" + label, done) is None:
            return None
        return state

    def cleanup(self):
        """Closes what the scenario opened, so that the sessions scenario of the next run (same
        consumer) finds only its own sessions."""

        def run():
            closed = 0
            for opened in self.opened:
                self.as_consumer(opened["consumer"])
                try:
                    for sid in opened["sessions"]:
                        self.sess.closeSession(sessionId=sid, closeFlags="DestroyOnClose")
                        closed += 1
                    if not opened["closed"]:
                        self.conn.closeConnection(connectionId=opened["connection"])
                finally:
                    self.as_consumer("main")
            return None, {"sessionsClosed": closed}

        self.flow.step("cleanup", run)

    # --- WS-Enumeration ------------------------------------------------------------------

    def enumeration_service(self, version, address=None):
        """The 2004/09 or 2011 port: at an EPR Address, or at the WSDL's own (…/sessions)."""
        if address is None:
            return self.client.bind("SymphonyService", "EnumerationSource%sPort%s" % (version, self.suffix))
        return self.client.create_service(
            "{%s}EnumerationSource%sBinding%s" % (WSDL_NS, version, self.binding), address
        )

    @staticmethod
    def echo(cursor):
        """The EnumerationContext to send: the cursor as the sym:EnumerationCursor element."""
        element = etree.Element(etree.QName(SYM, "EnumerationCursor"), nsmap={"sym": SYM})
        element.text = cursor
        return {"_value_1": [element]}

    @staticmethod
    def cursor_of(context):
        """The cursor of a context as zeep parsed it (an lxml element), or None when there is none."""
        if context is None:
            return None
        values = context["_value_1"] or []
        if len(values) != 1 or not hasattr(values[0], "tag") or values[0].tag != clark(SYM, "EnumerationCursor"):
            raise FlowFailure("zeep parsed the EnumerationContext as %r, want one sym:EnumerationCursor" % context)
        return values[0].text

    def response_page(self, local, ns):
        """What zeep does not show of the verified response: its Items' element names, whether
        EndOfSequence was sent, and whether a context was."""
        root = self.wire.response_payload()
        if root is None or etree.QName(root).text != clark(ns, local):
            raise FlowFailure("the response Body holds %s, want %s" % (root, clark(ns, local)))
        items = root.find(etree.QName(ns, "Items"))
        if items is None:
            items = root.find(etree.QName(WSMAN, "Items"))
        end = root.find(etree.QName(ns, "EndOfSequence"))
        if end is None:
            end = root.find(etree.QName(WSMAN, "EndOfSequence"))
        return {
            "itemNames": sorted({etree.QName(c).text for c in items}) if items is not None else [],
            "itemCount": len(items) if items is not None else 0,
            "endOfSequence": end is not None,
            "context": root.find(etree.QName(ns, "EnumerationContext")) is not None,
        }

    def outputs_of(self, items, seen):
        """The (taskId, text) of each sym:Output as zeep parsed it (a typed TaskOutput)."""
        got = []
        for item in items or []:
            if isinstance(item, etree._Element):
                raise FlowFailure("zeep left an item unparsed: %s" % etree.tostring(item)[:200])
            seen.add(item._xsd_type.qname.text if hasattr(item, "_xsd_type") else type(item).__name__)
            if not item.successful or item.taskOutput is None or item.taskOutput.text is None:
                raise FlowFailure("task %s: not a successful text output: %r" % (item.taskId, item))
            got.append((item.taskId, item.taskOutput.text))
        return got


def expect_all_once(state, got):
    """Every task's text exactly once, each under its task id."""
    texts = [text for _, text in got]
    dupes = sorted({t for t in texts if texts.count(t) > 1})
    wrong = sorted(tid for tid, text in got if state["texts"].get(tid) != text)
    missing = sorted(set(state["texts"].values()) - set(texts))
    if dupes or wrong or missing:
        raise FlowFailure(
            "outputs: duplicated %s, under a wrong task id %s, missing %s" % (dupes, wrong, missing)
        )
    return sorted(texts)


def duration_seconds(text):
    m = re.fullmatch(r"PT(\d+)S", text or "")
    if not m:
        raise FlowFailure("expiry %r is not PT<n>S" % text)
    return int(m.group(1))


def text_of(value):
    """A simple-content value as zeep parsed it: a str, or {_value_1, _attr_1} (2011's expiries)."""
    if value is not None and not isinstance(value, str):
        return value["_value_1"]
    return value


# --- the scenarios -----------------------------------------------------------------------


def pull_to_end(run, en, cursor, max_elements, got, pages, seen):
    """Pulls (2004/09) until the answer has no EnumerationContext; records every page."""
    for _ in range(MAX_PAGES):
        r = run.flow.call(en, "Pull", EnumerationContext=run.echo(cursor), MaxElements=max_elements)
        page = run.response_page("PullResponse", WSEN_2004)
        items = r.Items._value_1 if r.Items is not None else []
        outs = run.outputs_of(items, seen)
        if len(outs) != page["itemCount"] or len(outs) > max_elements:
            raise FlowFailure(
                "a page of %d items (zeep parsed %d), MaxElements %d"
                % (page["itemCount"], len(outs), max_elements)
            )
        got.extend(outs)
        pages.append(len(outs))
        cursor = run.cursor_of(r.EnumerationContext)
        if cursor is None:
            if not page["endOfSequence"]:
                raise FlowFailure("the last PullResponse has no context and no EndOfSequence")
            return {"zeepEndOfSequence": r.EndOfSequence}
        if page["endOfSequence"]:
            raise FlowFailure("EndOfSequence with an EnumerationContext")
    raise FlowFailure("no end after %d pages" % MAX_PAGES)


def outputs_2004(run, result):
    flow = run.flow
    state = run.open_session("", tasks=25)
    if state is None:
        return
    en = run.enumeration_service("2004", state["address"])
    ctx = {}
    seen = set()

    def enumerate_():
        r = flow.call(en, "Enumerate", Expires="PT5M")
        if r.Expires != "PT300S":
            raise FlowFailure("Expires %r, want PT300S" % r.Expires)
        ctx["parsed"] = r.EnumerationContext
        ctx["cursor"] = run.cursor_of(r.EnumerationContext)
        return r, {"expires": r.Expires, "zeepContext": serialize_object(r.EnumerationContext, dict)}

    if flow.step("Enumerate", enumerate_) is None:
        return

    def echo_as_parsed():
        # Observation, not a requirement: does the object zeep parsed go back unchanged?
        try:
            r = flow.call(en, "GetStatus", EnumerationContext=ctx["parsed"])
        except TypeError as e:
            result["contextEcho"] = {"works": False, "error": "TypeError: %s" % str(e).splitlines()[0]}
        else:
            result["contextEcho"] = {"works": True, "expires": r.Expires}
        return None, result["contextEcho"]

    flow.step("EnumerationContext as parsed", echo_as_parsed)

    def status():
        r = flow.call(en, "GetStatus", EnumerationContext=run.echo(ctx["cursor"]))
        left = duration_seconds(r.Expires)
        if not 0 < left <= 300:
            raise FlowFailure("GetStatus Expires %s, want at most PT300S" % r.Expires)
        return r, {"expires": r.Expires}

    flow.step("GetStatus", status)

    def renew():
        r = flow.call(en, "Renew", EnumerationContext=run.echo(ctx["cursor"]), Expires="PT1H")
        if r.Expires != "PT3600S":
            raise FlowFailure("Renew Expires %r, want PT3600S" % r.Expires)
        back = run.cursor_of(r.EnumerationContext)
        if back not in (None, ctx["cursor"]):
            raise FlowFailure("Renew answered another context %r" % back)
        after = flow.call(en, "GetStatus", EnumerationContext=run.echo(ctx["cursor"]))
        if not 3500 < duration_seconds(after.Expires) <= 3600:
            raise FlowFailure("GetStatus after Renew: Expires %s" % after.Expires)
        return r, {"expires": r.Expires, "statusAfter": after.Expires}

    flow.step("Renew", renew)

    got, pages = [], []

    def first_pull():
        r = flow.call(en, "Pull", EnumerationContext=run.echo(ctx["cursor"]), MaxElements=4)
        outs = run.outputs_of(r.Items._value_1 if r.Items is not None else [], seen)
        if len(outs) != 4:
            raise FlowFailure("the first Pull answered %d outputs, want 4" % len(outs))
        got.extend(outs)
        pages.append(len(outs))
        ctx["cursor"] = run.cursor_of(r.EnumerationContext)
        return r, {"taskIds": [t for t, _ in outs], "items": run.response_page("PullResponse", WSEN_2004)}

    if flow.step("Pull", first_pull) is None:
        return

    def repeat():
        sent = ctx["cursor"]
        a = flow.call(en, "Pull", EnumerationContext=run.echo(sent), MaxElements=4)
        b = flow.call(en, "Pull", EnumerationContext=run.echo(sent), MaxElements=4)
        ids_a = [t for t, _ in run.outputs_of(a.Items._value_1 if a.Items is not None else [], seen)]
        outs_b = run.outputs_of(b.Items._value_1 if b.Items is not None else [], seen)
        ids_b = [t for t, _ in outs_b]
        ca, cb = run.cursor_of(a.EnumerationContext), run.cursor_of(b.EnumerationContext)
        if ids_a != ids_b or not ids_a:
            raise FlowFailure("the same Pull answered %s, then %s" % (ids_a, ids_b))
        if ca != cb:
            raise FlowFailure("the same Pull answered the contexts %s, then %s" % (ca, cb))
        got.extend(outs_b)
        pages.append(len(outs_b))
        ctx["cursor"] = cb
        return b, {"taskIds": ids_a, "again": ids_b, "sameContext": ca == cb}

    if flow.step("Pull sent twice", repeat) is None:
        return

    def rest():
        end = pull_to_end(run, en, ctx["cursor"], 4, got, pages, seen)
        texts = expect_all_once(state, got)
        return None, dict(end, texts=texts, pages=pages, itemTypes=sorted(seen))

    flow.step("Pull to the end", rest)

    fresh = {}

    def enumerate_fresh():
        r = flow.call(en, "Enumerate")
        fresh["cursor"] = run.cursor_of(r.EnumerationContext)
        return r, {"expires": r.Expires}

    flow.step("Enumerate again", enumerate_fresh)

    def release():
        value = flow.call(en, "Release", EnumerationContext=run.echo(fresh["cursor"]))
        if value is not None:
            raise FlowFailure("zeep returned %r for Release, want None" % value)
        body = run.wire.response_payload()
        if body is not None:
            raise FlowFailure("Release answered %s, want an empty Body" % etree.tostring(body)[:200])
        return None, {"zeepValue": value, "emptyBody": True}

    flow.step("Release", release)
    flow.expect_fault(
        "Pull after Release",
        en,
        "Pull",
        clark(WSEN_2004, "InvalidEnumerationContext"),
        EnumerationContext=run.echo(fresh.get("cursor", "-")),
        MaxElements=4,
    )


def optimized(run, result):
    flow = run.flow
    state = run.open_session("", tasks=10)
    if state is None:
        return
    en = run.enumeration_service("2004", state["address"])
    got, pages, seen = [], [], set()
    ctx = {}

    def enumerate_():
        opt = etree.Element(etree.QName(WSMAN, "OptimizeEnumeration"))
        most = etree.Element(etree.QName(WSMAN, "MaxElements"))
        most.text = "4"
        r = flow.call(en, "Enumerate", Expires="PT5M", _value_1=[opt, most])
        sent = run.wire.request_payload()
        sent_names = [etree.QName(c).text for c in sent]
        if sent_names[-2:] != [clark(WSMAN, "OptimizeEnumeration"), clark(WSMAN, "MaxElements")]:
            raise FlowFailure("zeep sent the Enumerate children %s" % sent_names)
        page = run.response_page("EnumerateResponse", WSEN_2004)
        # zeep: the wsman:Items (no schema for its namespace) is an lxml element in _value_1.
        extensions = r._value_1 or []
        shown = [
            etree.QName(x).text if isinstance(x, etree._Element) else type(x).__name__ for x in extensions
        ]
        items = [x for x in extensions if isinstance(x, etree._Element) and x.tag == clark(WSMAN, "Items")]
        if len(items) != 1:
            raise FlowFailure("no wsman:Items in the EnumerateResponse (zeep's _value_1: %s)" % shown)
        parsed = [run.output_element.parse(el, run.client.wsdl.types) for el in items[0]]
        outs = run.outputs_of(parsed, seen)
        if len(outs) != 4:
            raise FlowFailure("the optimized first page holds %d outputs, want 4" % len(outs))
        got.extend(outs)
        pages.append(len(outs))
        ctx["cursor"] = run.cursor_of(r.EnumerationContext)
        return r, {
            "sent": sent_names,
            "zeepValue1": shown,
            "itemNames": page["itemNames"],
            "taskIds": [t for t, _ in outs],
            "expires": r.Expires,
        }

    if flow.step("Enumerate optimized", enumerate_) is None:
        return

    def rest():
        end = pull_to_end(run, en, ctx["cursor"], 4, got, pages, seen)
        texts = expect_all_once(state, got)
        return None, dict(end, texts=texts, pages=pages, itemTypes=sorted(seen))

    flow.step("Pull to the end", rest)


def outputs_2011(run, result):
    flow = run.flow
    state = run.open_session("", tasks=12)
    if state is None:
        return
    en = run.enumeration_service("2011", state["address"])
    got, pages, seen = [], [], set()

    def enumerate_():
        r = flow.call(en, "Enumerate", NewContext={"Expires": "PT10M"}, MaxItems=5)
        granted = text_of(r.GrantedExpires)
        zeep_granted = serialize_object(r.GrantedExpires, dict)
        if granted != "PT600S":
            raise FlowFailure("GrantedExpires %r, want PT600S" % (r.GrantedExpires,))
        page = run.response_page("EnumerateResponse", WSEN_2011)
        outs = run.outputs_of(r.Items._value_1 if r.Items is not None else [], seen)
        if len(outs) != 5:
            raise FlowFailure("the first 2011 page holds %d outputs, want 5" % len(outs))
        got.extend(outs)
        pages.append(len(outs))
        cursor = run.cursor_of(r.EnumerationContext)
        for _ in range(MAX_PAGES):
            if cursor is None:
                break
            r = flow.call(en, "Enumerate", EnumerationContext=run.echo(cursor), MaxItems=5)
            page = run.response_page("EnumerateResponse", WSEN_2011)
            outs = run.outputs_of(r.Items._value_1 if r.Items is not None else [], seen)
            if len(outs) > 5:
                raise FlowFailure("a page of %d outputs, MaxItems 5" % len(outs))
            got.extend(outs)
            pages.append(len(outs))
            cursor = run.cursor_of(r.EnumerationContext)
            if (cursor is None) != page["endOfSequence"]:
                raise FlowFailure("context %s with EndOfSequence %s" % (cursor, page["endOfSequence"]))
        if cursor is not None:
            raise FlowFailure("no end after %d pages" % MAX_PAGES)
        texts = expect_all_once(state, got)
        return r, {
            "grantedExpires": granted,
            "zeepGrantedExpires": zeep_granted,
            "texts": texts,
            "pages": pages,
            "itemTypes": sorted(seen),
            "zeepEndOfSequence": r.EndOfSequence,
        }

    flow.step("Enumerate to the end", enumerate_)

    fresh = {}

    def lifecycle():
        r = flow.call(en, "Enumerate", NewContext={"Expires": "PT10M"})
        fresh["cursor"] = run.cursor_of(r.EnumerationContext)
        if fresh["cursor"] is None or r.Items is not None:
            raise FlowFailure("a NewContext without MaxItems answered %r" % r)
        st = flow.call(en, "GetStatus", EnumerationContext=run.echo(fresh["cursor"]))
        if not 0 < duration_seconds(text_of(st.GrantedExpires)) <= 600:
            raise FlowFailure("GetStatus GrantedExpires %r" % (st.GrantedExpires,))
        rn = flow.call(en, "Renew", EnumerationContext=run.echo(fresh["cursor"]), Expires="PT20M")
        if text_of(rn.GrantedExpires) != "PT1200S":
            raise FlowFailure("Renew GrantedExpires %r, want PT1200S" % (rn.GrantedExpires,))
        rel = flow.call(en, "Release", EnumerationContext=run.echo(fresh["cursor"]))
        answer = run.wire.response_payload()
        if answer is None or etree.QName(answer).text != clark(WSEN_2011, "ReleaseResponse"):
            raise FlowFailure("Release answered %s, want wsen:ReleaseResponse" % answer)
        return None, {
            "status": text_of(st.GrantedExpires),
            "renewed": text_of(rn.GrantedExpires),
            "releaseZeepValue": repr(rel),
        }

    flow.step("GetStatus, Renew, Release", lifecycle)
    flow.expect_fault(
        "Enumerate after Release",
        en,
        "Enumerate",
        clark(WSEN_2011, "InvalidEnumerationContext"),
        EnumerationContext=run.echo(fresh.get("cursor", "-")),
        MaxItems=5,
    )


def sessions(run, result):
    flow = run.flow
    foreign = run.open_session(" (another consumer)", consumer="foreign")
    first = run.open_session(" 1")
    second = run.open_session(" 2")
    detached = run.open_session(" 3")
    if None in (foreign, first, second, detached):
        return

    def detach():
        run.conn.closeConnection(connectionId=detached["connection"])
        next(o for o in run.opened if o["connection"] == detached["connection"])["closed"] = True
        st = run.sess.getSessionStatus(sessionId=detached["session"])
        if st.state != "Detached":
            raise FlowFailure("session 3 is %s after closeConnection, want Detached" % st.state)
        return st, {"state": st.state}

    if flow.step("closeConnection 3 (detaches session 3)", detach) is None:
        return
    open_ids = sorted([first["session"], second["session"]])
    mine = sorted(open_ids + [detached["session"]])
    en = run.enumeration_service("2004")
    address = en._binding_options["address"]
    run.client.set_ns_prefix("s", SYM)
    ctx = {}

    def enumerate_():
        expression = "s:State = 'Open'"
        r = flow.call(
            en,
            "Enumerate",
            Filter={"_value_1": xsd.AnyObject(xsd.String(), expression), "Dialect": XPATH_10},
        )
        filter_sent = run.wire.request_payload().find(etree.QName(WSEN_2004, "Filter"))
        ctx["cursor"] = run.cursor_of(r.EnumerationContext)
        return r, {"address": address, "sent": qname_as_sent(filter_sent)}

    if flow.step("Enumerate sessions with a Filter", enumerate_) is None:
        return

    def owner_check(docs):
        owners = sorted({d.Owner for d in docs})
        if len(owners) != 1:
            raise FlowFailure("sessions of several owners: %s" % owners)
        return owners[0]

    def pull():
        r = flow.call(en, "Pull", EnumerationContext=run.echo(ctx["cursor"]), MaxElements=10)
        page = run.response_page("PullResponse", WSEN_2004)
        docs = r.Items._value_1 if r.Items is not None else []
        if any(not hasattr(d, "SessionId") for d in docs):
            raise FlowFailure("zeep did not parse the items into sym:SessionResourceProperties: %r" % docs)
        ids = sorted(d.SessionId for d in docs)
        states = sorted({d.State for d in docs})
        if foreign["session"] in ids:
            raise FlowFailure("another consumer's session %s was enumerated" % foreign["session"])
        if ids != open_ids:
            raise FlowFailure("enumerated %s, want this consumer's open sessions %s" % (ids, open_ids))
        if run.cursor_of(r.EnumerationContext) is not None or not page["endOfSequence"]:
            raise FlowFailure("10 of 2 sessions did not end the enumeration")
        return r, {
            "sessionIds": ids,
            "states": states,
            "owner": owner_check(docs),
            "itemNames": page["itemNames"],
            "endOfSequence": page["endOfSequence"],
        }

    flow.step("Pull sessions", pull)

    en11 = run.enumeration_service("2011")

    def unfiltered_2011():
        r = flow.call(en11, "Enumerate", NewContext={"Expires": "PT10M"}, MaxItems=10)
        page = run.response_page("EnumerateResponse", WSEN_2011)
        docs = r.Items._value_1 if r.Items is not None else []
        if any(not hasattr(d, "SessionId") for d in docs):
            raise FlowFailure("zeep did not parse the items into sym:SessionResourceProperties: %r" % docs)
        ids = sorted(d.SessionId for d in docs)
        if ids != mine:
            raise FlowFailure("enumerated %s, want this consumer's sessions %s" % (ids, mine))
        if run.cursor_of(r.EnumerationContext) is not None or not page["endOfSequence"]:
            raise FlowFailure("MaxItems 10 of 3 sessions did not end the enumeration")
        return r, {
            "address": en11._binding_options["address"],
            "sessionIds": ids,
            "states": sorted(d.State for d in docs),
            "owner": owner_check(docs),
        }

    flow.step("Enumerate sessions 2011 without a Filter", unfiltered_2011)


def faults(run, result):
    flow = run.flow
    state = run.open_session("")
    if state is None:
        return
    en = run.enumeration_service("2004", state["address"])
    run.client.set_ns_prefix("s", SYM)
    flow.expect_fault(
        "Filter on outputs",
        en,
        "Enumerate",
        clark(WSEN_2004, "FilteringNotSupported"),
        Filter={"_value_1": xsd.AnyObject(xsd.String(), "s:taskId"), "Dialect": XPATH_10},
    )
    flow.expect_fault(
        "Expires in the past",
        en,
        "Enumerate",
        clark(WSEN_2004, "InvalidExpirationTime"),
        Expires=utc_now() - datetime.timedelta(hours=1),
    )
    flow.expect_fault(
        "unknown filter dialect",
        run.enumeration_service("2004"),
        "Enumerate",
        clark(WSEN_2004, "FilterDialectRequestedUnavailable"),
        Filter={"_value_1": xsd.AnyObject(xsd.String(), "s:State = 'Open'"), "Dialect": UNKNOWN_DIALECT},
    )


def main():
    p = client_parser(__doc__)
    p.add_argument("--scenario", required=True, choices=SCENARIOS)
    p.add_argument("--foreign-client-cert", help="another consumer (scenario sessions)")
    p.add_argument("--foreign-client-key")
    args = p.parse_args()
    if args.scenario == "sessions" and not (args.foreign_client_cert and args.foreign_client_key):
        p.error("--scenario sessions needs --foreign-client-cert and --foreign-client-key")

    result = {"ok": False, "soap": "1.2" if args.soap12 else "1.1", "scenario": args.scenario}
    consumers = {}
    if args.foreign_client_cert:
        consumers["foreign"] = (args.foreign_client_cert, args.foreign_client_key)
    transport = StatusTransport()
    signed = open_client(args, result, consumers=consumers, transport=transport)
    if signed is None:
        return 1

    flow = EnumerationFlow(signed.wire, args.soap12, transport)
    run = Run(args, signed.client, signed.wire, flow, signed.signers)
    scenario = {
        "outputs-2004": outputs_2004,
        "optimized": optimized,
        "outputs-2011": outputs_2011,
        "sessions": sessions,
        "faults": faults,
    }[args.scenario]
    try:
        scenario(run, result)
    except Exception as e:  # a bug of this script: still a JSON line
        flow.steps.append({"step": "scenario", "ok": False, "error": "%s: %s" % (type(e).__name__, e)})
    run.cleanup()
    return finish(result, flow, signed)


if __name__ == "__main__":
    sys.exit(main())
