"""A zeep client of the WS-Resource ports (WS-ResourceProperties 1.2, WS-ResourceLifetime 1.2),
generated from the WSDL the proxy serves, that signs every request and verifies every response
signature exactly as signed_flow.py does, and calls every operation of the session and
connection resources, with their faults.

Usage:
  /usr/bin/python3 resources_flow.py --wsdl URL --client-cert F --client-key F --proxy-cert F [--soap12]

The proxy must run with no idle lease (lifetime.sessionIdleMs = connectionIdleMs = 0), so that a
nil RequestedTerminationTime is answered with a nil NewTerminationTime.

The last stdout line is one JSON object: every step with its outcome, every expected fault with
its detail element's QName and whether zeep raised zeep.exceptions.Fault, and the signature and
WS-Addressing counts the mocha test asserts on. Exits non-zero, with the reasons on stderr, when
a step fails. Debian's python only (/usr/bin/python3): standard library + zeep 4.2.1 + xmlsec +
lxml, and signed_flow.py / step_flow.py next to this file.

How zeep expresses what the WSDL alone does not make obvious:
  * A QName as element content (GetResourceProperty, ResourceProperty): pass an lxml
    etree.QName. zeep's xsd:QName type hands the value to lxml, which declares a prefix for its
    namespace on the element and writes "ns1:State". A plain "sym:State" string works only if
    the prefix is in scope, e.g. after client.set_ns_prefix("sym", SYM), which declares it on
    the soap Envelope.
  * The mixed QueryExpression: zeep has no text for mixed content (QueryExpressionType is
    "_value_1: ANY, Dialect"), and the Any refuses a str. xsd.AnyObject(xsd.String(), expr)
    renders through String.render, which sets the text of the QueryExpression element itself.
    The expression's prefixes must be in scope: client.set_ns_prefix declares them on the
    Envelope (an ancestor, which WS-RP allows).
  * A text answer of QueryResourceProperties (a boolean, number or string result) cannot be
    read through zeep: it parses the mixed response's elements only and returns None. The
    script reads the text from the verified response envelope (an ingress plugin, which zeep
    calls after wsse.verify), never from raw_response, which would skip the verification.
"""
import datetime
import os
import sys

from lxml import etree
from zeep import xsd

# signed_flow.py and step_flow.py sit next to this file; leave no __pycache__ in the source tree.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from signed_flow import SKEW, FlowFailure, client_parser, utc_now  # noqa: E402  (next to this file)
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

WSRF_R = "http://docs.oasis-open.org/wsrf/r-2"
WSRF_RP = "http://docs.oasis-open.org/wsrf/rp-2"
WSRF_RL = "http://docs.oasis-open.org/wsrf/rl-2"
WSRF_BF = "http://docs.oasis-open.org/wsrf/bf-2"
XSI = "http://www.w3.org/2001/XMLSchema-instance"

RPW = "http://docs.oasis-open.org/wsrf/rpw-2/"
RLW = "http://docs.oasis-open.org/wsrf/rlw-2/"
# Response actions of the operations (design doc §7.2), and of every WSRF fault.
OUTPUT_ACTIONS = {
    "GetResourcePropertyDocument": RPW + "GetResourcePropertyDocument/GetResourcePropertyDocumentResponse",
    "GetResourceProperty": RPW + "GetResourceProperty/GetResourcePropertyResponse",
    "GetMultipleResourceProperties": RPW
    + "GetMultipleResourceProperties/GetMultipleResourcePropertiesResponse",
    "QueryResourceProperties": RPW + "QueryResourceProperties/QueryResourcePropertiesResponse",
    "Destroy": RLW + "ImmediateResourceTermination/DestroyResponse",
    "SetTerminationTime": RLW + "ScheduledResourceTermination/SetTerminationTimeResponse",
}
FAULT_ACTION = "http://docs.oasis-open.org/wsrf/fault"

LIFETIME = datetime.timedelta(hours=1)


def iso(t):
    return None if t is None else t.isoformat()


class ResourceFlow(Flow):
    """step_flow.Flow with the WS-RP and WS-RL reply actions, and WSRF faults known by their detail."""

    fault_key = "detail"

    def reply_action(self, operation, fault):
        return FAULT_ACTION if fault else OUTPUT_ACTIONS[operation]

    def new_fault(self, want):
        return {"want": want, "detail": None, "raisedZeepFault": False, "code": None, "errorCode": None}

    def read_fault(self, fault, entry):
        entry["code"] = fault.code
        if fault.detail is not None and len(fault.detail):
            el = fault.detail[0]
            entry["detail"] = etree.QName(el).text
            entry["errorCode"] = el.findtext(etree.QName(WSRF_BF, "ErrorCode"))


def element_names(el):
    return [etree.QName(c).text for c in el] if el is not None else []


def text_of(value):
    """A property's value as zeep parsed it: simple content, or {_value_1, _attr_1} when the element
    also allows attributes (wsrf-rl:CurrentTime, TerminationTime)."""
    if value is not None and not isinstance(value, (str, int, float, datetime.datetime)):
        try:
            return value["_value_1"]
        except (KeyError, TypeError):
            pass
    return value


def near(t, expected, what):
    if t is None or abs(t - expected) > SKEW:
        raise FlowFailure("%s %s is not within %s of %s" % (what, iso(t), SKEW, iso(expected)))


def main():
    args = client_parser(__doc__).parse_args()

    result = {"ok": False, "soap": "1.2" if args.soap12 else "1.1"}
    signed = open_client(args, result)
    if signed is None:
        return 1
    client, wire = signed.client, signed.wire
    flow = ResourceFlow(wire)
    suffix = "Soap12" if args.soap12 else ""
    binding = "Soap12" if args.soap12 else "Soap11"
    conn = client.bind("SymphonyService", "ConnectionPort" + suffix)
    sess = client.bind("SymphonyService", "SessionPort" + suffix)
    ids = {}

    # connect and createSession through the API ports; their answers end with the EPR.
    def connect():
        r = conn.connect(applicationName="echo", username="zeep-resources", password="pw")
        ids["connection"] = r.connectionId
        address = ids["connectionAddress"] = r.EndpointReference.Address._value_1
        if not address.endswith("/connections/" + r.connectionId):
            raise FlowFailure("EPR Address %s does not name connection %s" % (address, r.connectionId))
        return r, {"address": address}

    def create_session():
        r = sess.createSession(
            connectionId=ids["connection"],
            sessionCreationAttributes={"name": "zeep-resources", "priority": 5, "compressionEnable": False},
        )
        ids["session"] = r.sessionId
        address = ids["sessionAddress"] = r.EndpointReference.Address._value_1
        if not address.endswith("/sessions/" + r.sessionId):
            raise FlowFailure("EPR Address %s does not name session %s" % (address, r.sessionId))
        return r, {"address": address}

    if flow.step("connect", connect) is None or flow.step("createSession", create_session) is None:
        return finish(result, flow, signed)

    # The resource ports, bound at the EPR Addresses (the WSDL's own addresses are templates).
    rs = client.create_service("{%s}SessionResourceBinding%s" % (WSDL_NS, binding), ids["sessionAddress"])
    rc = client.create_service(
        "{%s}ConnectionResourceBinding%s" % (WSDL_NS, binding), ids["connectionAddress"]
    )

    # The session.
    def get_document():
        doc = flow.call(rs, "GetResourcePropertyDocument")
        root = wire.response_payload()
        names = element_names(root)
        if names != [clark(SYM, "SessionResourceProperties")]:
            raise FlowFailure("GetResourcePropertyDocumentResponse holds %s" % names)
        # symphony.xsd declares the document, so zeep parses it into an object.
        if doc is None or not hasattr(doc, "SessionId"):
            raise FlowFailure("zeep did not parse the document into sym:SessionResourceProperties: %r" % doc)
        if doc.SessionId != ids["session"] or doc.State != "Open" or doc.ConnectionId != ids["connection"]:
            raise FlowFailure(
                "document has SessionId %s State %s ConnectionId %s"
                % (doc.SessionId, doc.State, doc.ConnectionId)
            )
        if XPATH_10 not in (doc.QueryExpressionDialect or []):
            raise FlowFailure("QueryExpressionDialect %r lacks XPath 1.0" % doc.QueryExpressionDialect)
        near(text_of(doc.CurrentTime), utc_now(), "CurrentTime")
        return doc, {"sessionId": doc.SessionId, "state": doc.State}

    flow.step("GetResourcePropertyDocument", get_document)

    def get_state():
        # An lxml QName: lxml declares the prefix on the element and writes "ns1:State".
        values = flow.call(rs, "GetResourceProperty", etree.QName(SYM, "State"))
        sent = wire.request_payload()
        names = element_names(wire.response_payload())
        if names != [clark(SYM, "State")] or values != ["Open"]:
            raise FlowFailure("GetResourceProperty sym:State answered %s = %r" % (names, values))
        return values, {"sent": qname_as_sent(sent), "values": values}

    flow.step("GetResourceProperty sym:State", get_state)

    def get_multiple():
        # Asked against document order (State comes before CurrentTime there): the answer keeps ours.
        asked = [etree.QName(WSRF_RL, "CurrentTime"), etree.QName(SYM, "State")]
        values = flow.call(rs, "GetMultipleResourceProperties", ResourceProperty=asked)
        names = element_names(wire.response_payload())
        if names != [q.text for q in asked]:
            raise FlowFailure("answered %s, asked %s" % (names, [q.text for q in asked]))
        if len(values) != 2 or values[1] != "Open":
            raise FlowFailure("zeep parsed the answer as %r" % values)
        near(text_of(values[0]), utc_now(), "CurrentTime")
        return values, {"names": names}

    flow.step("GetMultipleResourceProperties", get_multiple)

    # From here on the prefixes the expressions use are declared on every Envelope.
    client.set_ns_prefix("sym", SYM)
    client.set_ns_prefix("wsrf-rl", WSRF_RL)

    def query(expression, dialect=XPATH_10):
        # Mixed content: AnyObject(String) writes the expression as the element's own text.
        q = {"_value_1": xsd.AnyObject(xsd.String(), expression), "Dialect": dialect}
        return flow.call(rs, "QueryResourceProperties", QueryExpression=q)

    def query_boolean():
        value = query("sym:State = 'Open'")
        answer = wire.response_payload()
        text = (answer.text or "").strip() if answer is not None else None
        if text != "true" or len(answer):
            raise FlowFailure("boolean query answered %r with elements %s" % (text, element_names(answer)))
        sent = wire.request_payload()[0]
        # zeep has no text for mixed content: it returns None for this answer (kept in the JSON).
        return text, {"text": text, "zeepValue": value, "sent": qname_as_sent(sent)}

    flow.step("QueryResourceProperties boolean", query_boolean)

    def query_nodes():
        values = query("sym:State[. = 'Open']")
        names = element_names(wire.response_payload())
        if names != [clark(SYM, "State")] or values != ["Open"]:
            raise FlowFailure("node-set query answered %s = %r" % (names, values))
        return values, {"values": values}

    flow.step("QueryResourceProperties node-set", query_nodes)

    # Faults of a live session.
    flow.expect_fault(
        "unknown property",
        rs,
        "GetResourceProperty",
        clark(WSRF_RP, "InvalidResourcePropertyQNameFault"),
        "sym:NoSuchProperty",
    )
    flow.expect_fault(
        "unknown dialect",
        rs,
        "QueryResourceProperties",
        clark(WSRF_RP, "UnknownQueryExpressionDialectFault"),
        QueryExpression={"_value_1": xsd.AnyObject(xsd.String(), "sym:State"), "Dialect": UNKNOWN_DIALECT},
    )

    def set_lifetime():
        asked_at = utc_now()
        r = flow.call(rs, "SetTerminationTime", RequestedLifetimeDuration=LIFETIME)
        near(r.CurrentTime, asked_at, "CurrentTime")
        near(r.NewTerminationTime, asked_at + LIFETIME, "NewTerminationTime")
        granted = r.NewTerminationTime - r.CurrentTime
        if abs(granted - LIFETIME) > datetime.timedelta(seconds=1):
            raise FlowFailure("NewTerminationTime is CurrentTime + %s, want + %s" % (granted, LIFETIME))
        # The property reads the time just set.
        prop = flow.call(rs, "GetResourceProperty", etree.QName(WSRF_RL, "TerminationTime"))
        if len(prop) != 1 or text_of(prop[0]) != r.NewTerminationTime:
            raise FlowFailure("wsrf-rl:TerminationTime reads %r, want %s" % (prop, iso(r.NewTerminationTime)))
        return r, {"newTerminationTime": iso(r.NewTerminationTime), "currentTime": iso(r.CurrentTime)}

    flow.step("SetTerminationTime duration", set_lifetime)

    def set_nil():
        r = flow.call(rs, "SetTerminationTime", RequestedTerminationTime=xsd.Nil)
        sent = wire.request_payload()
        if sent is None or not sent.xpath("boolean(*[@xsi:nil = 'true'])", namespaces={"xsi": XSI}):
            raise FlowFailure("zeep did not send xsi:nil: %s" % etree.tostring(sent).decode())
        if r.NewTerminationTime is not None:
            raise FlowFailure("NewTerminationTime %s, want nil (no end)" % iso(r.NewTerminationTime))
        near(r.CurrentTime, utc_now(), "CurrentTime")
        return r, {"newTerminationTime": None, "currentTime": iso(r.CurrentTime)}

    flow.step("SetTerminationTime nil", set_nil)

    flow.expect_fault(
        "termination time in the past",
        rs,
        "SetTerminationTime",
        clark(WSRF_RL, "UnableToSetTerminationTimeFault"),
        RequestedTerminationTime=utc_now() - datetime.timedelta(hours=1),
    )

    def destroy(service):
        def run():
            flow.call(service, "Destroy")
            answer = wire.response_payload()
            name = None if answer is None else etree.QName(answer).text
            if name != clark(WSRF_RL, "DestroyResponse") or len(answer):
                shown = "an empty Body" if answer is None else etree.tostring(answer).decode()
                raise FlowFailure("Destroy answered %s" % shown)
            return True, {}

        return run

    flow.step("Destroy session", destroy(rs))
    flow.expect_fault(
        "session after Destroy",
        rs,
        "GetResourcePropertyDocument",
        clark(WSRF_R, "ResourceUnknownFault"),
    )

    # The connection.
    def connection_id():
        values = flow.call(rc, "GetResourceProperty", etree.QName(SYM, "ConnectionId"))
        names = element_names(wire.response_payload())
        if names != [clark(SYM, "ConnectionId")] or values != [ids["connection"]]:
            raise FlowFailure("GetResourceProperty sym:ConnectionId answered %s = %r" % (names, values))
        return values, {"values": values}

    flow.step("GetResourceProperty sym:ConnectionId", connection_id)
    flow.step("Destroy connection", destroy(rc))
    flow.expect_fault(
        "connection after Destroy",
        rc,
        "GetResourceProperty",
        clark(WSRF_R, "ResourceUnknownFault"),
        etree.QName(SYM, "ConnectionId"),
    )
    return finish(result, flow, signed)


if __name__ == "__main__":
    sys.exit(main())
