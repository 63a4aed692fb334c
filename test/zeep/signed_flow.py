"""A zeep client that signs every request (WS-Security X.509, RSA-SHA256) and verifies the proxy's
signed responses with the proxy's certificate, then runs the whole flow and a tampered request.

Usage:
  /usr/bin/python3 signed_flow.py --wsdl URL --client-cert F --client-key F --proxy-cert F [--soap12]
      runs the flow; the last stdout line is one JSON object that the mocha test asserts on.
  ... --legacy-sha1
      signs with zeep's defaults (RSA-SHA1, SHA-1 digests) and sends one connect, which the proxy
      must refuse with an AuthenticationFault (the JSON carries the fault's code).
  ... --dump-request FILE   (--proxy-cert not needed; --wsdl may be a local file)
      writes one signed connect envelope to FILE, exactly as it would be sent, and sends nothing.

Exits non-zero, with the reason on stderr and {"ok": false, ...} on stdout, on any failure.
Debian's python only (/usr/bin/python3): standard library + zeep 4.2.1 + xmlsec + lxml.
"""
import argparse
import base64
import datetime
import json
import sys

import xmlsec
from lxml import etree
from zeep import Client, ns
from zeep.exceptions import Fault, SignatureVerificationFailed
from zeep.wsdl.utils import etree_to_string
from zeep.wsse.signature import BinarySignature
from zeep.wsse.utils import WSU, get_security_header

WSU_ID = etree.QName(ns.WSU, "Id")
DS = {"ds": ns.DS}
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
SHA256 = xmlsec.constants.TransformSha256.href
RESPONSE_SIGNATURE_METHODS = {
    xmlsec.constants.TransformRsaSha256.href,
    xmlsec.constants.TransformEcdsaSha256.href,
}
X509V3 = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509v3"
# Client clock vs proxy clock, for the response Timestamp check.
SKEW = datetime.timedelta(seconds=60)
REQUEST_TTL = datetime.timedelta(seconds=120)


class FlowFailure(Exception):
    pass


def utc_now():
    return datetime.datetime.now(datetime.timezone.utc)


def zulu(t):
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (t.microsecond // 1000)


def pem_to_der(pem):
    """The first certificate of a PEM file, DER-encoded (to compare with a BinarySecurityToken)."""
    text = pem.decode("ascii")
    begin = text.index("-----BEGIN CERTIFICATE-----") + len("-----BEGIN CERTIFICATE-----")
    end = text.index("-----END CERTIFICATE-----", begin)
    return base64.b64decode("".join(text[begin:end].split()))


class ProxySignatureVerifier:
    """Verifies a response's ds:Signature with the proxy's certificate, not the client's own (which is
    what zeep's BinarySignature.verify would use), and checks that the Body and the Timestamp are
    what the references cover, so a signature over some other element cannot pass."""

    def __init__(self, cert_file, allow_unsigned_faults):
        with open(cert_file, "rb") as f:
            pem = f.read()
        self.key = xmlsec.Key.from_memory(pem, xmlsec.KeyFormat.CERT_PEM, None)
        self.cert_der = pem_to_der(pem)
        self.allow_unsigned_faults = allow_unsigned_faults
        self.verified = 0
        self.signed_faults = 0
        self.unsigned_faults = 0
        self.signature_methods = set()

    def fail(self, why):
        raise SignatureVerificationFailed("proxy response rejected: " + why)

    def verify(self, envelope):
        soap_env = etree.QName(envelope).namespace
        tree = envelope.getroottree()
        body = envelope.find(etree.QName(soap_env, "Body"))
        if body is None:
            self.fail("no soap Body")
        is_fault = body.find(etree.QName(soap_env, "Fault")) is not None
        header = envelope.find(etree.QName(soap_env, "Header"))
        securities = [] if header is None else header.findall(etree.QName(ns.WSSE, "Security"))
        if not securities:
            if is_fault and self.allow_unsigned_faults:
                self.unsigned_faults += 1
                return envelope
            self.fail("it is unsigned (no wsse:Security in soap Header)")
        if len(securities) != 1:
            self.fail("%d wsse:Security headers" % len(securities))
        security = securities[0]
        signatures = security.findall(etree.QName(ns.DS, "Signature"))
        if len(signatures) != 1:
            self.fail("%d ds:Signature in wsse:Security (want 1)" % len(signatures))
        signature = signatures[0]

        c14n = signature.xpath("ds:SignedInfo/ds:CanonicalizationMethod/@Algorithm", namespaces=DS)
        if c14n != [EXC_C14N]:
            self.fail("CanonicalizationMethod %r is not exc-c14n" % c14n)
        method = signature.xpath("ds:SignedInfo/ds:SignatureMethod/@Algorithm", namespaces=DS)
        if len(method) != 1 or method[0] not in RESPONSE_SIGNATURE_METHODS:
            self.fail("SignatureMethod %r is not RSA-SHA256 or ECDSA-SHA256" % method)

        ctx = xmlsec.SignatureContext()
        covered = set()
        for ref in signature.xpath("ds:SignedInfo/ds:Reference", namespaces=DS):
            uri = ref.get("URI") or ""
            if not uri.startswith("#") or len(uri) < 2:
                self.fail("Reference URI %r is not a same-document #id" % uri)
            digest = ref.xpath("ds:DigestMethod/@Algorithm", namespaces=DS)
            if digest != [SHA256]:
                self.fail("Reference %s DigestMethod %r is not SHA-256" % (uri, digest))
            transforms = ref.xpath("ds:Transforms/ds:Transform/@Algorithm", namespaces=DS)
            if transforms != [EXC_C14N]:
                self.fail("Reference %s Transforms %r are not [exc-c14n]" % (uri, transforms))
            # Ids must be unique, else xmlsec may digest one element while we check another.
            targets = envelope.xpath("//*[@wsu:Id=$id]", namespaces={"wsu": ns.WSU}, id=uri[1:])
            if len(targets) != 1:
                self.fail("Reference %s matches %d elements by wsu:Id" % (uri, len(targets)))
            ctx.register_id(targets[0], "Id", ns.WSU)
            covered.add(tree.getpath(targets[0]))

        if tree.getpath(body) not in covered:
            self.fail("the signature does not cover the soap Body")
        timestamps = security.findall(etree.QName(ns.WSU, "Timestamp"))
        if len(timestamps) != 1:
            self.fail("%d wsu:Timestamp in wsse:Security (want 1)" % len(timestamps))
        if tree.getpath(timestamps[0]) not in covered:
            self.fail("the signature does not cover the wsu:Timestamp")
        self.check_fresh(timestamps[0])
        self.check_token(envelope, signature)

        ctx.key = self.key
        try:
            ctx.verify(signature)
        except xmlsec.Error as e:
            self.fail("signature does not verify with --proxy-cert (%s)" % e)
        self.verified += 1
        self.signature_methods.add(method[0])
        if is_fault:
            self.signed_faults += 1
        return envelope

    def check_fresh(self, timestamp):
        try:
            created = datetime.datetime.fromisoformat(timestamp.findtext(etree.QName(ns.WSU, "Created")))
            expires = datetime.datetime.fromisoformat(timestamp.findtext(etree.QName(ns.WSU, "Expires")))
        except (TypeError, ValueError) as e:
            self.fail("unreadable wsu:Timestamp (%s)" % e)
        now = utc_now()
        if created.tzinfo is None or expires.tzinfo is None:
            self.fail("wsu:Timestamp without a time zone")
        if created > now + SKEW or expires < now - SKEW or expires <= created:
            self.fail("stale or future wsu:Timestamp %s..%s (now %s)" % (created, expires, zulu(now)))

    def check_token(self, envelope, signature):
        """KeyInfo must reference a BinarySecurityToken holding exactly the --proxy-cert certificate."""
        uris = signature.xpath(
            "ds:KeyInfo/wsse:SecurityTokenReference/wsse:Reference/@URI",
            namespaces={"ds": ns.DS, "wsse": ns.WSSE},
        )
        if len(uris) != 1 or not uris[0].startswith("#"):
            self.fail("KeyInfo has no wsse:SecurityTokenReference/wsse:Reference to a token (%r)" % uris)
        tokens = envelope.xpath(
            "//wsse:BinarySecurityToken[@wsu:Id=$id]",
            namespaces={"wsse": ns.WSSE, "wsu": ns.WSU},
            id=uris[0][1:],
        )
        if len(tokens) != 1:
            self.fail("token reference %s matches %d BinarySecurityTokens" % (uris[0], len(tokens)))
        if tokens[0].get("ValueType") != X509V3:
            self.fail("BinarySecurityToken ValueType %r is not X509v3" % tokens[0].get("ValueType"))
        if base64.b64decode("".join((tokens[0].text or "").split())) != self.cert_der:
            self.fail("the response is signed with a certificate other than --proxy-cert")


class SignedTimestampWsse:
    """One wsse object, since zeep 4.2.1 calls client.wsse.verify() on the response and a list
    (which zeep accepts for apply) has no verify(). apply(): insert a wsu:Timestamp first, because
    BinarySignature signs one only if it is already there, then sign, then optionally break it."""

    def __init__(self, signer, verifier):
        self.signer = signer
        self.verifier = verifier
        self.tamper_next = False

    def apply(self, envelope, headers):
        security = get_security_header(envelope)
        if security.find(etree.QName(ns.WSU, "Timestamp")) is None:
            now = utc_now()
            security.append(WSU.Timestamp(WSU.Created(zulu(now)), WSU.Expires(zulu(now + REQUEST_TTL))))
        envelope, headers = self.signer.apply(envelope, headers)
        if self.tamper_next:
            self.tamper_next = False
            tamper_body(envelope)
        return envelope, headers

    def verify(self, envelope):
        if self.verifier is None:
            raise SignatureVerificationFailed("no --proxy-cert to verify the response with")
        return self.verifier.verify(envelope)


def tamper_body(envelope):
    """Changes the last text in the Body after signing (connect's password, which the grid does not
    check), so the Body digest no longer matches yet a proxy that skipped the check would accept it."""
    body = envelope.find(etree.QName(etree.QName(envelope).namespace, "Body"))
    texts = [el for el in body.iter() if el.text and el.text.strip()]
    if not texts:
        raise FlowFailure("nothing to tamper with in the Body")
    texts[-1].text += "-tampered"


def rsa_sha256_signer(cert_file, key_file):
    """zeep's BinarySignature with RSA-SHA256 and SHA-256 digests (its defaults are SHA-1)."""
    return BinarySignature(
        key_file,
        cert_file,
        signature_method=xmlsec.constants.TransformRsaSha256,
        digest_method=xmlsec.constants.TransformSha256,
    )


def client_parser(doc, proxy_cert_required=True):
    """The command line of every signed script here: the WSDL, the client's key pair, the proxy's
    certificate (to verify responses with) and the SOAP version."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    p.add_argument("--wsdl", required=True)
    p.add_argument("--client-cert", required=True)
    p.add_argument("--client-key", required=True)
    p.add_argument("--proxy-cert", required=proxy_cert_required)
    p.add_argument("--soap12", action="store_true")
    return p


def fault_info(f):
    """(detail element local name, sym:code text) of a zeep Fault."""
    if f.detail is None or not len(f.detail):
        return "no-detail", None
    el = f.detail[0]
    code = el.find(etree.QName(etree.QName(el).namespace, "code"))
    return etree.QName(el).localname, None if code is None else code.text


def main():
    p = client_parser(__doc__, proxy_cert_required=False)
    p.add_argument("--legacy-sha1", action="store_true", help="sign with zeep's default RSA-SHA1")
    p.add_argument(
        "--allow-unsigned-faults",
        action="store_true",
        help="accept faults without wsse:Security (counted in the JSON); success responses must be signed",
    )
    p.add_argument("--dump-request", metavar="FILE")
    args = p.parse_args()
    if not args.dump_request and not args.proxy_cert:
        p.error("--proxy-cert is required unless --dump-request")

    result = {"ok": False, "soap": "1.2" if args.soap12 else "1.1"}
    step = "setup"
    try:
        if args.legacy_sha1:
            # zeep's defaults: RSA-SHA1 signature, SHA-1 digests.
            signer = BinarySignature(args.client_key, args.client_cert)
        else:
            signer = rsa_sha256_signer(args.client_cert, args.client_key)
        verifier = (
            ProxySignatureVerifier(args.proxy_cert, args.allow_unsigned_faults) if args.proxy_cert else None
        )
        wsse = SignedTimestampWsse(signer, verifier)
        client = Client(args.wsdl, wsse=wsse)
        suffix = "Soap12" if args.soap12 else ""
        conn = client.bind("SymphonyService", "ConnectionPort" + suffix)
        sess = client.bind("SymphonyService", "SessionPort" + suffix)
        tin = client.bind("SymphonyService", "TaskInputPort" + suffix)
        tout = client.bind("SymphonyService", "TaskOutputPort" + suffix)
        connect_args = {"applicationName": "echo", "username": "zeep-signed", "password": "pw"}

        if args.dump_request:
            step = "dump-request"
            # Client.create_message already applies client.wsse (zeep's own pre-send path); applying
            # it again would add a second Signature and BST. Serialized as the transport would.
            envelope = client.create_message(conn, "connect", **connect_args)
            with open(args.dump_request, "wb") as f:
                f.write(etree_to_string(envelope))
            result.update(ok=True, dumped=args.dump_request)
            print(json.dumps(result))
            return 0

        if args.legacy_sha1:
            step = "legacy-sha1 connect"
            result["mode"] = "legacy-sha1"
            try:
                conn.connect(**connect_args)
            except Fault as f:
                result["fault"], result["code"] = fault_info(f)
            else:
                raise FlowFailure("the proxy accepted a request signed with RSA-SHA1")
            if result["fault"] != "AuthenticationFault":
                raise FlowFailure("RSA-SHA1 request refused with %s, want AuthenticationFault" % result["fault"])
            result["faultSigned"] = verifier.signed_faults == 1
            result["ok"] = True
            print(json.dumps(result))
            return 0

        result["mode"] = "flow"
        step = "connect"
        connection_id = conn.connect(**connect_args).connectionId
        step = "createSession"
        session_id = sess.createSession(
            connectionId=connection_id,
            sessionCreationAttributes={"name": "zeep-signed", "priority": 5, "compressionEnable": False},
        ).sessionId

        step = "sendTaskInput"
        expected = {}
        task_id = tin.sendTaskInput(
            sessionId=session_id, taskSubmissionAttributes={"tag": "single", "taskInput": {"text": "signed-0"}}
        )
        expected[task_id] = "signed-0"
        step = "sendTaskInputBatch"
        batch = [{"tag": "b%d" % i, "taskInput": {"text": "signed-batch-%d" % i}} for i in range(3)]
        ids = tin.sendTaskInputBatch(sessionId=session_id, taskSubmissionAttributes=batch)
        if len(ids) != 3:
            raise FlowFailure("sendTaskInputBatch returned %d ids for 3 tasks" % len(ids))
        for i, tid in enumerate(ids):
            expected[tid] = "signed-batch-%d" % i

        step = "fetchTaskOutput"
        received = {}
        # Leased delivery: each fetch acknowledges the outputs of the one before it.
        token = None
        for _ in range(40):  # bounded: 40 x 500 ms long-polls at most
            if len(received) >= len(expected):
                break
            reply = tout.fetchTaskOutput(
                sessionId=session_id, countMax=10, timeoutMillis=500, leaseMillis=30000, acknowledge=token
            )
            token = reply.deliveryToken
            for o in reply.taskOutput or []:
                received[o.taskId] = o
        if token is not None:
            step = "acknowledgeTaskOutput"
            tout.acknowledgeTaskOutput(sessionId=session_id, deliveryToken=token)
        mismatches = [
            tid
            for tid, text in expected.items()
            if tid not in received
            or not received[tid].successful
            or received[tid].taskOutput is None
            or received[tid].taskOutput.text != text
        ]
        result.update(submitted=len(expected), received=len(received), mismatches=mismatches)
        if mismatches:
            raise FlowFailure("outputs missing or not echoing their inputs: %s" % mismatches)

        step = "getSessionStatus"
        result["state"] = sess.getSessionStatus(sessionId=session_id).state
        step = "closeSession"
        sess.closeSession(sessionId=session_id, closeFlags="DestroyOnClose")
        step = "closeConnection"
        conn.closeConnection(connectionId=connection_id)
        result["verifiedResponses"] = verifier.verified

        step = "tampered connect"
        wsse.tamper_next = True
        faults_before = verifier.signed_faults
        try:
            conn.connect(**connect_args)
        except Fault as f:
            name, code = fault_info(f)
        else:
            raise FlowFailure("the proxy accepted a request whose Body was changed after signing")
        if name != "AuthenticationFault":
            raise FlowFailure("tampered request refused with %s (%s), want AuthenticationFault" % (name, code))
        result["tampered"] = {"fault": name, "code": code, "faultSigned": verifier.signed_faults > faults_before}
        result["unsignedFaults"] = verifier.unsigned_faults
        result["responseSignatureMethods"] = sorted(verifier.signature_methods)
        result["ok"] = True
        print(json.dumps(result))
        return 0
    except (FlowFailure, SignatureVerificationFailed, Fault) as e:
        detail = ""
        if isinstance(e, Fault):
            detail = " [%s %s]" % fault_info(e)
        message = "%s failed: %s: %s%s" % (step, type(e).__name__, getattr(e, "message", None) or e, detail)
    except Exception as e:  # anything else (transport, WSDL, xmlsec) is a failure too, with its step
        message = "%s failed: %s: %s" % (step, type(e).__name__, e)
    print("signed_flow.py: " + message, file=sys.stderr)
    result.update(error=message, step=step)
    print(json.dumps(result))
    return 1


if __name__ == "__main__":
    sys.exit(main())
