/*
 * A JAX-WS SOAPHandler that does, for wsimport-generated port types, what the WSDL's WS-SecurityPolicy
 * asks of a client, with the JDK's own XML-DSig API (javax.xml.crypto.dsig) and nothing else:
 *
 *  - outgoing requests: one wsse:Security header (soap:mustUnderstand) with a wsu:Timestamp, the
 *    client certificate as a wsse:BinarySecurityToken and one ds:Signature over exactly the soap:Body
 *    and the Timestamp, using the signature, digest and canonicalization of the WSDL's algorithm suite;
 *  - incoming responses and faults: the same structure is required (elements found by position, ids
 *    unique), the token must be the proxy's response certificate given to the client (pinned), the
 *    Timestamp must be current, the signature must verify, and the SignedInfo must use exactly the
 *    algorithms of the suite read from the WSDL. Anything else is refused with a ResponseRejected that
 *    names what differed; the port call then throws it (wrapped in a WebServiceException).
 */

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.security.PrivateKey;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.time.Instant;
import java.time.temporal.ChronoUnit;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Base64;
import java.util.Collections;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import java.util.UUID;

import javax.xml.XMLConstants;
import javax.xml.crypto.dom.DOMStructure;
import javax.xml.crypto.dsig.DigestMethod;
import javax.xml.crypto.dsig.Reference;
import javax.xml.crypto.dsig.SignedInfo;
import javax.xml.crypto.dsig.Transform;
import javax.xml.crypto.dsig.XMLSignature;
import javax.xml.crypto.dsig.XMLSignatureFactory;
import javax.xml.crypto.dsig.dom.DOMSignContext;
import javax.xml.crypto.dsig.dom.DOMValidateContext;
import javax.xml.crypto.dsig.keyinfo.KeyInfo;
import javax.xml.crypto.dsig.spec.C14NMethodParameterSpec;
import javax.xml.crypto.dsig.spec.TransformParameterSpec;
import javax.xml.namespace.QName;
import javax.xml.parsers.DocumentBuilder;
import javax.xml.parsers.DocumentBuilderFactory;
import javax.xml.soap.SOAPMessage;
import javax.xml.transform.dom.DOMSource;
import javax.xml.ws.WebServiceException;
import javax.xml.ws.handler.MessageContext;
import javax.xml.ws.handler.soap.SOAPHandler;
import javax.xml.ws.handler.soap.SOAPMessageContext;

import org.w3c.dom.Attr;
import org.w3c.dom.Document;
import org.w3c.dom.Element;
import org.w3c.dom.NamedNodeMap;
import org.w3c.dom.Node;

public final class WsSecurityPolicyHandler implements SOAPHandler<SOAPMessageContext> {
    static final String SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/";
    static final String SOAP12 = "http://www.w3.org/2003/05/soap-envelope";
    static final String WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd";
    static final String WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd";
    static final String DS = "http://www.w3.org/2000/09/xmldsig#";
    static final String XMLNS = XMLConstants.XMLNS_ATTRIBUTE_NS_URI;
    static final String X509V3 = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509v3";
    static final String BASE64_BINARY =
            "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary";
    /** Request lifetime (the proxy accepts at most 300 s) and tolerated clock difference for responses. */
    static final long REQUEST_TTL_SECONDS = 120;
    static final long SKEW_SECONDS = 60;

    /** Why a response was refused; `code` is machine-readable, the message says what differed. */
    public static final class ResponseRejected extends WebServiceException {
        private static final long serialVersionUID = 1L;
        public final String code;
        public final String signatureMethod;
        public final List<String> digestMethods;
        /** For POLICY_ALGORITHM: whether the signature is otherwise valid with the pinned certificate. */
        public final Boolean signatureOtherwiseValid;

        ResponseRejected(String code, String message, String signatureMethod, List<String> digestMethods,
                Boolean otherwiseValid) {
            super(code + ": " + message);
            this.code = code;
            this.signatureMethod = signatureMethod;
            this.digestMethods = digestMethods;
            this.signatureOtherwiseValid = otherwiseValid;
        }
    }

    private final WsdlAlgorithmSuite suite;
    private final X509Certificate clientCert;
    private final PrivateKey clientKey;
    private final X509Certificate responseCert;
    private final XMLSignatureFactory dsig = XMLSignatureFactory.getInstance("DOM");

    public int requestsSigned;
    public int responsesVerified;
    public final Set<String> responseSignatureMethods = new LinkedHashSet<>();
    public final Set<String> responseDigestMethods = new LinkedHashSet<>();
    public final Set<String> responseC14nMethods = new LinkedHashSet<>();
    public ResponseRejected lastRejection;

    public WsSecurityPolicyHandler(WsdlAlgorithmSuite suite, X509Certificate clientCert, PrivateKey clientKey,
            X509Certificate responseCert) {
        this.suite = suite;
        this.clientCert = clientCert;
        this.clientKey = clientKey;
        this.responseCert = responseCert;
    }

    @Override
    public Set<QName> getHeaders() {
        // The response's wsse:Security carries mustUnderstand: this handler is what understands it.
        return Collections.singleton(new QName(WSSE, "Security"));
    }

    @Override
    public boolean handleMessage(SOAPMessageContext ctx) {
        if (Boolean.TRUE.equals(ctx.get(MessageContext.MESSAGE_OUTBOUND_PROPERTY))) sign(ctx);
        else verify(ctx);
        return true;
    }

    @Override
    public boolean handleFault(SOAPMessageContext ctx) {
        // A fault from the proxy is signed like any response, and checked the same way.
        if (!Boolean.TRUE.equals(ctx.get(MessageContext.MESSAGE_OUTBOUND_PROPERTY))) verify(ctx);
        return true;
    }

    @Override
    public void close(MessageContext ctx) {}

    // ------------------------------------------------------------------------------------------------
    // Outgoing: sign.

    private void sign(SOAPMessageContext ctx) {
        try {
            SOAPMessage msg = ctx.getMessage();
            Document doc = parse(bytesOf(msg));
            Element env = doc.getDocumentElement();
            String soapNs = env.getNamespaceURI();
            if (!SOAP11.equals(soapNs) && !SOAP12.equals(soapNs)) throw new IllegalStateException("not a SOAP envelope");
            Element header = null;
            Element body = null;
            for (Element c : children(env)) {
                if (is(c, soapNs, "Header")) header = c;
                else if (is(c, soapNs, "Body")) body = c;
            }
            if (body == null) throw new IllegalStateException("the request has no soap:Body");
            String envPrefix = env.getPrefix();
            if (header == null) {
                header = doc.createElementNS(soapNs, envPrefix == null ? "Header" : envPrefix + ":Header");
                env.insertBefore(header, body);
            }

            String bodyId = "Body-" + UUID.randomUUID();
            String tsId = "TS-" + UUID.randomUUID();
            String bstId = "X509-" + UUID.randomUUID();

            // Every namespace used is declared explicitly: exclusive c14n renders declarations it finds.
            Element security = doc.createElementNS(WSSE, "wsse:Security");
            security.setAttributeNS(XMLNS, "xmlns:wsse", WSSE);
            security.setAttributeNS(XMLNS, "xmlns:wsu", WSU);
            security.setAttributeNS(XMLNS, "xmlns:soapenv", soapNs);
            security.setAttributeNS(soapNs, "soapenv:mustUnderstand", SOAP11.equals(soapNs) ? "1" : "true");

            Element ts = doc.createElementNS(WSU, "wsu:Timestamp");
            ts.setAttributeNS(WSU, "wsu:Id", tsId);
            Instant now = Instant.now().truncatedTo(ChronoUnit.MILLIS);
            Element created = doc.createElementNS(WSU, "wsu:Created");
            created.setTextContent(now.toString());
            Element expires = doc.createElementNS(WSU, "wsu:Expires");
            expires.setTextContent(now.plusSeconds(REQUEST_TTL_SECONDS).toString());
            ts.appendChild(created);
            ts.appendChild(expires);

            Element bst = doc.createElementNS(WSSE, "wsse:BinarySecurityToken");
            bst.setAttribute("EncodingType", BASE64_BINARY);
            bst.setAttribute("ValueType", X509V3);
            bst.setAttributeNS(WSU, "wsu:Id", bstId);
            bst.setTextContent(Base64.getEncoder().encodeToString(clientCert.getEncoded()));

            security.appendChild(ts);
            security.appendChild(bst);
            header.insertBefore(security, header.getFirstChild());

            body.setAttributeNS(XMLNS, "xmlns:wsu", WSU);
            body.setAttributeNS(WSU, "wsu:Id", bodyId);

            DigestMethod digest = dsig.newDigestMethod(suite.digestMethod, null);
            List<Transform> transforms =
                    List.of(dsig.newTransform(suite.c14nMethod, (TransformParameterSpec) null));
            List<Reference> refs = List.of(
                    dsig.newReference("#" + bodyId, digest, transforms, null, null),
                    dsig.newReference("#" + tsId, digest, transforms, null, null));
            SignedInfo si = dsig.newSignedInfo(
                    dsig.newCanonicalizationMethod(suite.c14nMethod, (C14NMethodParameterSpec) null),
                    dsig.newSignatureMethod(suite.signatureMethod, null),
                    refs);
            Element str = doc.createElementNS(WSSE, "wsse:SecurityTokenReference");
            Element strRef = doc.createElementNS(WSSE, "wsse:Reference");
            strRef.setAttribute("URI", "#" + bstId);
            strRef.setAttribute("ValueType", X509V3);
            str.appendChild(strRef);
            KeyInfo ki = dsig.getKeyInfoFactory().newKeyInfo(List.of(new DOMStructure(str)));

            DOMSignContext sc = new DOMSignContext(clientKey, security);
            sc.setDefaultNamespacePrefix("ds");
            sc.setIdAttributeNS(body, WSU, "Id");
            sc.setIdAttributeNS(ts, WSU, "Id");
            dsig.newXMLSignature(si, ki).sign(sc);

            msg.getSOAPPart().setContent(new DOMSource(doc));
            msg.saveChanges();
            requestsSigned++;
        } catch (RuntimeException e) {
            throw e;
        } catch (Exception e) {
            throw new WebServiceException("signing the request failed: " + e, e);
        }
    }

    // ------------------------------------------------------------------------------------------------
    // Incoming: verify, and hold the algorithms to the WSDL's policy.

    private void verify(SOAPMessageContext ctx) {
        try {
            verifyOrThrow(ctx.getMessage());
            responsesVerified++;
        } catch (ResponseRejected r) {
            lastRejection = r;
            throw r;
        } catch (Exception e) {
            ResponseRejected r = new ResponseRejected("STRUCTURE", "the response could not be read: " + e, null,
                    List.of(), null);
            lastRejection = r;
            throw r;
        }
    }

    private void verifyOrThrow(SOAPMessage msg) throws Exception {
        Document doc = parse(bytesOf(msg));
        Element env = doc.getDocumentElement();
        String soapNs = env.getNamespaceURI();
        if (!is(env, SOAP11, "Envelope") && !is(env, SOAP12, "Envelope")) reject("STRUCTURE", "not a SOAP Envelope");
        List<Element> envChildren = children(env);
        if (envChildren.size() != 2 || !is(envChildren.get(0), soapNs, "Header")
                || !is(envChildren.get(1), soapNs, "Body")) {
            reject("UNSIGNED", "the response is not signed: the Envelope does not hold exactly Header then Body");
        }
        Element header = envChildren.get(0);
        Element body = envChildren.get(1);
        Element security = single(header, WSSE, "Security", "UNSIGNED");
        Element sigEl = single(security, DS, "Signature", "UNSIGNED");
        Element ts = single(security, WSU, "Timestamp", "STRUCTURE");

        String bodyId = wsuId(body);
        String tsId = wsuId(ts);
        for (String id : new String[] {bodyId, tsId}) {
            if (countIdUses(env, id) != 1) reject("STRUCTURE", "Id " + id + " is used on more than one element");
        }
        body.setIdAttributeNS(WSU, "Id", true);
        ts.setIdAttributeNS(WSU, "Id", true);

        // The SignedInfo as sent, read before anything is computed with it.
        List<Element> sigParts = children(sigEl);
        if (sigParts.isEmpty() || !is(sigParts.get(0), DS, "SignedInfo")) reject("STRUCTURE", "Signature has no SignedInfo");
        Element si = sigParts.get(0);
        String c14n = null;
        String method = null;
        List<String> digests = new ArrayList<>();
        List<String> transforms = new ArrayList<>();
        Set<Element> covered = new LinkedHashSet<>();
        for (Element c : children(si)) {
            if (is(c, DS, "CanonicalizationMethod")) {
                c14n = c.getAttribute("Algorithm");
            } else if (is(c, DS, "SignatureMethod")) {
                method = c.getAttribute("Algorithm");
            } else if (is(c, DS, "Reference")) {
                String uri = c.getAttribute("URI");
                if (!uri.startsWith("#") || uri.length() < 2) reject("STRUCTURE", "reference URI is not a same-document #id: " + uri);
                Element target = doc.getElementById(uri.substring(1));
                if (target != body && target != ts) {
                    reject("STRUCTURE", "reference " + uri + " covers neither the Body nor the Timestamp");
                }
                if (!covered.add(target)) reject("STRUCTURE", "two references cover " + target.getLocalName());
                for (Element p : children(c)) {
                    if (is(p, DS, "DigestMethod")) digests.add(p.getAttribute("Algorithm"));
                    if (is(p, DS, "Transforms")) {
                        for (Element t : children(p)) transforms.add(t.getAttribute("Algorithm"));
                    }
                }
            }
        }
        if (method == null || c14n == null) reject("STRUCTURE", "SignedInfo lacks SignatureMethod or CanonicalizationMethod");
        if (!covered.contains(body) || !covered.contains(ts)) {
            reject("STRUCTURE", "the signature does not cover both the Body and the Timestamp");
        }
        responseSignatureMethods.add(method);
        responseDigestMethods.addAll(digests);
        responseC14nMethods.add(c14n);

        checkToken(sigEl, security);
        checkTimestamp(ts);

        // The policy: exactly the suite's algorithms, everywhere in SignedInfo.
        List<String> differs = new ArrayList<>();
        if (!suite.signatureMethod.equals(method)) differs.add("SignatureMethod " + method + " (policy: " + suite.signatureMethod + ")");
        if (!suite.c14nMethod.equals(c14n)) differs.add("CanonicalizationMethod " + c14n + " (policy: " + suite.c14nMethod + ")");
        for (String d : new LinkedHashSet<>(digests)) {
            if (!suite.digestMethod.equals(d)) differs.add("DigestMethod " + d + " (policy: " + suite.digestMethod + ")");
        }
        if (transforms.size() != covered.size() || !transforms.stream().allMatch(suite.c14nMethod::equals)) {
            differs.add("Reference transforms " + transforms + " (policy: one " + suite.c14nMethod + " each)");
        }
        if (!differs.isEmpty()) {
            // Whether it would otherwise have passed: shows that the algorithm alone is what is refused.
            Boolean otherwiseValid;
            try {
                otherwiseValid = cryptoCheck(sigEl, body, ts) == null;
            } catch (Exception e) {
                otherwiseValid = null;
            }
            throw new ResponseRejected("POLICY_ALGORITHM",
                    "the response signature does not follow the WSDL's sp:AlgorithmSuite " + suite.name + ": "
                            + String.join("; ", differs),
                    method, digests, otherwiseValid);
        }

        String bad = cryptoCheck(sigEl, body, ts);
        if (bad != null) reject("SIGNATURE", bad);
    }

    /** null when the signature and every reference verify with the pinned certificate, else why not. */
    private String cryptoCheck(Element sigEl, Element body, Element ts) throws Exception {
        DOMValidateContext vc = new DOMValidateContext(responseCert.getPublicKey(), sigEl);
        vc.setIdAttributeNS(body, WSU, "Id");
        vc.setIdAttributeNS(ts, WSU, "Id");
        vc.setProperty("org.jcp.xml.dsig.secureValidation", Boolean.TRUE);
        XMLSignature sig = dsig.unmarshalXMLSignature(vc);
        if (sig.validate(vc)) return null;
        if (!sig.getSignatureValue().validate(vc)) {
            return "the SignatureValue does not verify with the proxy's response certificate";
        }
        List<String> badRefs = new ArrayList<>();
        for (Object o : sig.getSignedInfo().getReferences()) {
            Reference r = (Reference) o;
            if (!r.validate(vc)) badRefs.add(r.getURI());
        }
        return "digest mismatch for reference(s) " + badRefs;
    }

    /** KeyInfo -> SecurityTokenReference -> BinarySecurityToken holding exactly the pinned certificate. */
    private void checkToken(Element sigEl, Element security) throws Exception {
        Element keyInfo = null;
        for (Element c : children(sigEl)) if (is(c, DS, "KeyInfo")) keyInfo = c;
        if (keyInfo == null) reject("STRUCTURE", "Signature has no KeyInfo");
        Element str = single(keyInfo, WSSE, "SecurityTokenReference", "STRUCTURE");
        Element ref = single(str, WSSE, "Reference", "STRUCTURE");
        String uri = ref.getAttribute("URI");
        if (!uri.startsWith("#")) reject("STRUCTURE", "SecurityTokenReference is not a same-document reference: " + uri);
        Element bst = null;
        for (Element c : children(security)) {
            if (is(c, WSSE, "BinarySecurityToken") && uri.substring(1).equals(c.getAttributeNS(WSU, "Id"))) {
                if (bst != null) reject("STRUCTURE", "BinarySecurityToken " + uri + " occurs twice");
                bst = c;
            }
        }
        if (bst == null) reject("STRUCTURE", "SecurityTokenReference points to no BinarySecurityToken: " + uri);
        if (!X509V3.equals(bst.getAttribute("ValueType"))) reject("STRUCTURE", "BinarySecurityToken is not X509v3");
        byte[] der = Base64.getMimeDecoder().decode(bst.getTextContent().trim());
        X509Certificate token = (X509Certificate) CertificateFactory.getInstance("X.509")
                .generateCertificate(new ByteArrayInputStream(der));
        if (!Arrays.equals(token.getEncoded(), responseCert.getEncoded())) {
            reject("CERTIFICATE", "the response is signed by " + token.getSubjectX500Principal()
                    + ", not by the proxy's response certificate " + responseCert.getSubjectX500Principal());
        }
    }

    private void checkTimestamp(Element ts) throws Exception {
        Instant created = null;
        Instant expires = null;
        for (Element c : children(ts)) {
            if (is(c, WSU, "Created")) created = Instant.parse(c.getTextContent().trim());
            if (is(c, WSU, "Expires")) expires = Instant.parse(c.getTextContent().trim());
        }
        Instant now = Instant.now();
        if (created == null) reject("TIMESTAMP", "the response Timestamp has no Created");
        if (created.isAfter(now.plusSeconds(SKEW_SECONDS))) reject("TIMESTAMP", "the response was created in the future: " + created);
        if (expires != null && expires.isBefore(now.minusSeconds(SKEW_SECONDS))) {
            reject("TIMESTAMP", "the response expired at " + expires);
        }
    }

    private static void reject(String code, String message) {
        throw new ResponseRejected(code, message, null, List.of(), null);
    }

    // ------------------------------------------------------------------------------------------------
    // DOM helpers.

    static byte[] bytesOf(SOAPMessage msg) throws Exception {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        msg.writeTo(out);
        return out.toByteArray();
    }

    static Document parse(byte[] xml) throws Exception {
        DocumentBuilderFactory f = DocumentBuilderFactory.newInstance();
        f.setNamespaceAware(true);
        f.setFeature(XMLConstants.FEATURE_SECURE_PROCESSING, true);
        f.setFeature("http://apache.org/xml/features/disallow-doctype-decl", true);
        f.setFeature("http://xml.org/sax/features/external-general-entities", false);
        f.setFeature("http://xml.org/sax/features/external-parameter-entities", false);
        f.setExpandEntityReferences(false);
        DocumentBuilder b = f.newDocumentBuilder();
        b.setErrorHandler(null);
        return b.parse(new ByteArrayInputStream(xml));
    }

    static boolean is(Node n, String ns, String local) {
        return n != null && n.getNodeType() == Node.ELEMENT_NODE && ns.equals(n.getNamespaceURI())
                && local.equals(n.getLocalName());
    }

    static List<Element> children(Element parent) {
        List<Element> out = new ArrayList<>();
        for (Node c = parent.getFirstChild(); c != null; c = c.getNextSibling()) {
            if (c.getNodeType() == Node.ELEMENT_NODE) out.add((Element) c);
        }
        return out;
    }

    static Element single(Element parent, String ns, String local, String code) {
        Element found = null;
        for (Element c : children(parent)) {
            if (!is(c, ns, local)) continue;
            if (found != null) reject("STRUCTURE", "more than one " + local + " in " + parent.getLocalName());
            found = c;
        }
        if (found == null) reject(code, "no " + local + " in " + parent.getLocalName());
        return found;
    }

    static String wsuId(Element e) {
        Attr a = e.getAttributeNodeNS(WSU, "Id");
        if (a == null || a.getValue().isEmpty()) reject("STRUCTURE", e.getLocalName() + " has no wsu:Id");
        return a.getValue();
    }

    /** How many elements carry an Id-like attribute (any namespace, any case) with this value. */
    static int countIdUses(Element e, String value) {
        int n = 0;
        NamedNodeMap attrs = e.getAttributes();
        for (int i = 0; i < attrs.getLength(); i++) {
            Attr a = (Attr) attrs.item(i);
            String local = a.getLocalName() != null ? a.getLocalName() : a.getName();
            if (local.equalsIgnoreCase("id") && value.equals(a.getValue())) {
                n++;
                break;
            }
        }
        for (Node c = e.getFirstChild(); c != null; c = c.getNextSibling()) {
            if (c.getNodeType() == Node.ELEMENT_NODE) n += countIdUses((Element) c, value);
        }
        return n;
    }
}
