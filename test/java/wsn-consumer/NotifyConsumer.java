/*
 * A WS-BaseNotification 1.3 NotificationConsumer for the tests (test/helpers/wsn-consumer.ts): the SEI
 * that wsimport generates from consumer.wsdl, published on the JDK HTTP server with the JAX-WS RI.
 *
 *   java NotifyConsumer --port N --path /consumer --cert <signer cert PEM> --records <file>
 *                       [--fail-first K] [--status-on-fail 500|503]
 *
 * Prints "READY <port>" once listening; exits when stdin closes (so it never outlives the test).
 * Every inbound Notify must carry a WS-Security signature by --cert (checked by SignatureCheck with the
 * JDK's JSR-105 API, since Debian's RI has no WS-Security runtime); one that does not is refused with
 * a SOAP fault (HTTP 500). --fail-first K refuses the first K well-signed ones with --status-on-fail,
 * so that tests can watch the sender retry. Every Notify that reaches SignatureCheck, accepted or
 * not, becomes one JSON line in --records (a body that is not SOAP is refused by the RI itself, with
 * its own fault, and not recorded).
 */

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.FileInputStream;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Base64;
import java.util.Collections;
import java.util.HashMap;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

import javax.annotation.Resource;
import javax.jws.WebService;
import javax.xml.XMLConstants;
import javax.xml.crypto.dsig.CanonicalizationMethod;
import javax.xml.crypto.dsig.Reference;
import javax.xml.crypto.dsig.Transform;
import javax.xml.crypto.dsig.XMLSignature;
import javax.xml.crypto.dsig.XMLSignatureFactory;
import javax.xml.crypto.dsig.dom.DOMValidateContext;
import javax.xml.namespace.QName;
import javax.xml.parsers.DocumentBuilderFactory;
import javax.xml.soap.SOAPConstants;
import javax.xml.soap.SOAPMessage;
import javax.xml.ws.Endpoint;
import javax.xml.ws.ProtocolException;
import javax.xml.ws.WebServiceContext;
import javax.xml.ws.handler.Handler;
import javax.xml.ws.handler.MessageContext;
import javax.xml.ws.handler.soap.SOAPHandler;
import javax.xml.ws.handler.soap.SOAPMessageContext;

import com.sun.net.httpserver.Filter;
import com.sun.net.httpserver.Headers;
import com.sun.net.httpserver.HttpContext;
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpPrincipal;
import com.sun.net.httpserver.HttpServer;
import com.sun.xml.ws.developer.JAXWSProperties;

import org.oasis_open.docs.wsn.b_2.NotificationMessageHolderType;
import org.oasis_open.docs.wsn.b_2.Notify;
import org.oasis_open.docs.wsn.bw_2.NotificationConsumer;
import org.w3c.dom.Document;
import org.w3c.dom.Element;
import org.w3c.dom.Node;

// No wsdlLocation: the RI would then read consumer.wsdl at run time and chase b-2.xsd's absolute
// schemaLocations over the network. Dispatch needs only the SEI's annotations.
@WebService(
        endpointInterface = "org.oasis_open.docs.wsn.bw_2.NotificationConsumer",
        targetNamespace = "http://docs.oasis-open.org/wsn/bw-2",
        serviceName = "TestNotificationConsumerService",
        portName = "TestNotificationConsumerPort")
public class NotifyConsumer implements NotificationConsumer {
    static final String SOAP11 = SOAPConstants.URI_NS_SOAP_1_1_ENVELOPE;
    static final String WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd";
    static final String WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd";
    static final String WSA = "http://www.w3.org/2005/08/addressing";
    static final String DS = XMLSignature.XMLNS;
    static final String SYM = "http://soapproxy.symphony/v1";
    /** Clock skew allowed on wsu:Timestamp. */
    static final Duration SKEW = Duration.ofMinutes(5);
    /** What the handler found in the headers, handed to notify() through the message context. */
    static final String HEADERS = "symphony.test.wsn.headers";

    @Resource
    private WebServiceContext context;
    private final Records records;

    NotifyConsumer(Records records) {
        this.records = records;
    }

    /**
     * Reached only after SignatureCheck accepted the message: the body read through the generated JAXB
     * types. The RI has already answered 202 by then (it closes a one-way exchange before dispatching),
     * so the record lands shortly after the sender saw the answer.
     */
    @Override
    public void notify(Notify notify) {
        @SuppressWarnings("unchecked")
        Map<String, Object> headers = (Map<String, Object>) context.getMessageContext().get(HEADERS);
        // Only SignatureCheck's acceptance sets HEADERS: never record a message it did not accept.
        if (headers == null) throw new IllegalStateException("Notify reached the endpoint unchecked");
        Map<String, Object> record = new LinkedHashMap<>(headers);
        List<Map<String, Object>> messages = new ArrayList<>();
        for (NotificationMessageHolderType holder : notify.getNotificationMessage()) {
            Map<String, Object> m = new LinkedHashMap<>();
            // The payload is lax: elements the JAXB context does not know (all of sym:) arrive as DOM.
            Object payload = holder.getMessage() == null ? null : holder.getMessage().getAny();
            Element element = payload instanceof Element ? (Element) payload : null;
            m.put("seq", element == null ? null : integer(element.getAttribute("seq")));
            m.put("topic", holder.getTopic() == null ? null : topicText(holder.getTopic().getContent()));
            m.put("payload", element == null
                    ? (payload == null ? null : payload.getClass().getName())
                    : "{" + nullToEmpty(element.getNamespaceURI()) + "}" + element.getLocalName());
            messages.add(m);
        }
        record.put("signatureOk", true);
        record.put("accepted", true);
        record.put("messages", messages);
        records.append(record);
    }

    /**
     * wsnt:Topic is mixed content: JAXB gives its text as Strings. The topic is a QName-in-content,
     * kept as sent (prefix:local/child): JAXB does not keep the prefix's namespace binding.
     */
    static String topicText(List<Object> content) {
        StringBuilder sb = new StringBuilder();
        for (Object o : content) if (o instanceof String) sb.append((String) o);
        return sb.toString().trim();
    }

    static Long integer(String s) {
        try {
            return s == null || s.isEmpty() ? null : Long.valueOf(s.trim());
        } catch (NumberFormatException e) {
            return null;
        }
    }

    static String nullToEmpty(String s) {
        return s == null ? "" : s;
    }

    public static void main(String[] argv) throws Exception {
        Map<String, String> args = new HashMap<>();
        for (int i = 0; i + 1 < argv.length; i += 2) args.put(argv[i], argv[i + 1]);
        for (String required : List.of("--port", "--path", "--cert", "--records")) {
            if (!args.containsKey(required)) throw new IllegalArgumentException("missing " + required);
        }
        int failFirst = Integer.parseInt(args.getOrDefault("--fail-first", "0"));
        int statusOnFail = Integer.parseInt(args.getOrDefault("--status-on-fail", "500"));
        X509Certificate cert;
        try (InputStream in = new FileInputStream(args.get("--cert"))) {
            cert = (X509Certificate) CertificateFactory.getInstance("X.509").generateCertificate(in);
        }
        Records records = new Records(args.get("--records"));

        Endpoint endpoint = Endpoint.create(new NotifyConsumer(records));
        List<Handler> handlers = new ArrayList<>();
        handlers.add(new SignatureCheck(cert, records, failFirst, statusOnFail));
        endpoint.getBinding().setHandlerChain(handlers);
        // Our own HttpServer (rather than publish(url)) so that --port 0 works: the OS picks a free
        // port and we report it. The default executor handles one request at a time, in order.
        HttpServer server = HttpServer.create(
                new InetSocketAddress(InetAddress.getLoopbackAddress(), Integer.parseInt(args.get("--port"))), 0);
        HttpContext httpContext = server.createContext(args.get("--path"));
        httpContext.getFilters().add(new Filter() {
            @Override
            public void doFilter(HttpExchange exchange, Filter.Chain chain) throws IOException {
                chain.doFilter(new RefusingExchange(exchange));
            }

            @Override
            public String description() {
                return "lets SignatureCheck answer a one-way request";
            }
        });
        endpoint.publish(httpContext);
        server.start();
        System.out.println("READY " + server.getAddress().getPort());
        System.out.flush();

        // The test owns our stdin: when it closes (stop(), or the test process died), we go too.
        while (System.in.read() != -1) {
            // ignore input
        }
        server.stop(0);
        System.exit(0);
    }

    /** A check that failed; its message goes into the fault and the record (no key material in it). */
    static final class Refused extends Exception {
        Refused(String message) {
            super(message);
        }
    }

    /**
     * Inbound WS-Security check of each Notify, with the JDK's XML DSig (JSR-105): the token must be
     * the expected certificate, the signature must verify with its key, and the signed references must
     * cover the Body and every header whose tampering would matter (Timestamp, To, Action, MessageID,
     * sym:Sequence).
     */
    static final class SignatureCheck implements SOAPHandler<SOAPMessageContext> {
        private final X509Certificate cert;
        private final Records records;
        private final int statusOnFail;
        private int failuresLeft;

        SignatureCheck(X509Certificate cert, Records records, int failFirst, int statusOnFail) {
            this.cert = cert;
            this.records = records;
            this.failuresLeft = failFirst;
            this.statusOnFail = statusOnFail;
        }

        /** Claiming wsse:Security is what satisfies its soap:mustUnderstand="1". */
        @Override
        public Set<QName> getHeaders() {
            return Collections.singleton(new QName(WSSE, "Security"));
        }

        @Override
        public synchronized boolean handleMessage(SOAPMessageContext ctx) {
            if (Boolean.TRUE.equals(ctx.get(MessageContext.MESSAGE_OUTBOUND_PROPERTY))) return true;
            Map<String, Object> headers = new LinkedHashMap<>();
            try {
                Document doc = reparse(ctx.getMessage());
                headers = headerValues(doc);
                verify(doc);
            } catch (Refused e) {
                throw refuse(ctx, headers, false, 500, "Client", "WS-Security check failed: " + e.getMessage());
            }
            if (failuresLeft > 0) {
                failuresLeft--;
                throw refuse(ctx, headers, true, statusOnFail, "Server", "fail-first: refusing this delivery");
            }
            ctx.put(HEADERS, headers);
            ctx.setScope(HEADERS, MessageContext.Scope.APPLICATION);
            return true;
        }

        @Override
        public boolean handleFault(SOAPMessageContext ctx) {
            return true;
        }

        @Override
        public void close(MessageContext ctx) {
        }

        /**
         * Records the refusal, has the RefusingExchange answer with a SOAP fault and `status`, and returns
         * the exception that stops the message. Why both (seen with RI 2.3.0.2): Notify is one-way, and
         * for a one-way request the RI answers 202 with no body whatever the handlers do, dropping a
         * fault they throw; and after `return false` it still dispatches the message to notify().
         */
        private ProtocolException refuse(SOAPMessageContext ctx, Map<String, Object> headers, boolean signatureOk,
                int status, String faultCode, String reason) {
            Map<String, Object> record = new LinkedHashMap<>(headers);
            record.put("signatureOk", signatureOk);
            record.put("accepted", false);
            record.put("reason", reason);
            record.put("status", status);
            record.put("messages", List.of());
            records.append(record);
            Object exchange = ctx.get(JAXWSProperties.HTTP_EXCHANGE);
            if (!(exchange instanceof RefusingExchange)) throw new IllegalStateException("not behind RefusingExchange");
            ((RefusingExchange) exchange).refuse(status, soapFault(faultCode, reason));
            return new ProtocolException(reason);
        }

        private static byte[] soapFault(String code, String reason) {
            String escaped = reason.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;");
            return ("<soap:Envelope xmlns:soap=\"" + SOAP11 + "\"><soap:Body><soap:Fault>"
                    + "<faultcode>soap:" + code + "</faultcode><faultstring>" + escaped + "</faultstring>"
                    + "</soap:Fault></soap:Body></soap:Envelope>").getBytes(StandardCharsets.UTF_8);
        }

        /**
         * The message as a plain namespace-aware DOM (not SAAJ's wrapper DOM), built from the XML the
         * RI holds; exclusive C14N makes the digests independent of how it was re-serialized.
         */
        private static Document reparse(SOAPMessage message) throws Refused {
            try {
                ByteArrayOutputStream out = new ByteArrayOutputStream();
                message.writeTo(out);
                DocumentBuilderFactory f = DocumentBuilderFactory.newInstance();
                f.setNamespaceAware(true);
                f.setFeature("http://apache.org/xml/features/disallow-doctype-decl", true);
                f.setFeature(XMLConstants.FEATURE_SECURE_PROCESSING, true);
                return f.newDocumentBuilder().parse(new ByteArrayInputStream(out.toByteArray()));
            } catch (Exception e) {
                throw new Refused("unreadable message: " + e);
            }
        }

        /** What the record keeps from the headers; read before the checks, so refusals are recorded too. */
        private static Map<String, Object> headerValues(Document doc) {
            Map<String, Object> h = new LinkedHashMap<>();
            Element header = first(doc.getDocumentElement(), SOAP11, "Header");
            Element sequence = header == null ? null : first(header, SYM, "Sequence");
            h.put("messageId", text(header, WSA, "MessageID"));
            h.put("to", text(header, WSA, "To"));
            h.put("action", text(header, WSA, "Action"));
            h.put("subscription", sequence == null ? null : sequence.getAttribute("subscription"));
            h.put("first", sequence == null ? null : integer(sequence.getAttribute("first")));
            h.put("last", sequence == null ? null : integer(sequence.getAttribute("last")));
            return h;
        }

        private void verify(Document doc) throws Refused {
            Element envelope = doc.getDocumentElement();
            if (!SOAP11.equals(envelope.getNamespaceURI()) || !"Envelope".equals(envelope.getLocalName())) {
                throw new Refused("not a SOAP 1.1 envelope");
            }
            Element header = only(envelope, SOAP11, "Header");
            Element body = only(envelope, SOAP11, "Body");
            Element security = only(header, WSSE, "Security");
            Element signature = only(security, DS, "Signature");
            Element timestamp = only(security, WSU, "Timestamp");
            Element token = only(security, WSSE, "BinarySecurityToken");
            // Exactly one of each header: a second, unsigned copy is how header-wrapping attacks start.
            Map<String, Element> mustBeSigned = new LinkedHashMap<>();
            mustBeSigned.put("soap:Body", body);
            mustBeSigned.put("wsu:Timestamp", timestamp);
            mustBeSigned.put("wsa:To", only(header, WSA, "To"));
            mustBeSigned.put("wsa:Action", only(header, WSA, "Action"));
            mustBeSigned.put("wsa:MessageID", only(header, WSA, "MessageID"));
            mustBeSigned.put("sym:Sequence", only(header, SYM, "Sequence"));

            // The token must be the signer we were told to trust, not merely some certificate.
            try {
                byte[] der = Base64.getMimeDecoder().decode(token.getTextContent().trim());
                if (!Arrays.equals(der, cert.getEncoded())) {
                    throw new Refused("the BinarySecurityToken is not the expected signing certificate");
                }
            } catch (IllegalArgumentException | java.security.cert.CertificateEncodingException e) {
                throw new Refused("unreadable BinarySecurityToken");
            }

            // JSR-105 resolves "#id" only through IDs registered on the context: register every wsu:Id,
            // refusing duplicates (a reference must point at exactly one element).
            DOMValidateContext vc = new DOMValidateContext(cert.getPublicKey(), signature);
            vc.setProperty("org.jcp.xml.dsig.secureValidation", Boolean.TRUE);
            Map<String, Element> ids = new HashMap<>();
            registerIds(envelope, vc, ids);

            XMLSignature xmlSignature;
            boolean valid;
            try {
                xmlSignature = XMLSignatureFactory.getInstance("DOM").unmarshalXMLSignature(vc);
                valid = xmlSignature.validate(vc);
            } catch (Exception e) {
                throw new Refused("signature not verifiable: " + e.getMessage());
            }
            if (!valid) throw new Refused(whyInvalid(xmlSignature, vc));

            // A valid signature proves only what its references cover: check that they cover what matters.
            Set<Element> signed = Collections.newSetFromMap(new IdentityHashMap<>());
            for (Object o : xmlSignature.getSignedInfo().getReferences()) {
                Reference ref = (Reference) o;
                String uri = ref.getURI();
                if (uri == null || !uri.startsWith("#") || !ids.containsKey(uri.substring(1))) {
                    throw new Refused("reference to something other than a wsu:Id in the message: " + uri);
                }
                // Only exclusive C14N: an XPath or XSLT transform could sign less than the element.
                for (Object t : ref.getTransforms()) {
                    String alg = ((Transform) t).getAlgorithm();
                    if (!CanonicalizationMethod.EXCLUSIVE.equals(alg)
                            && !CanonicalizationMethod.EXCLUSIVE_WITH_COMMENTS.equals(alg)) {
                        throw new Refused("reference " + uri + " uses transform " + alg);
                    }
                }
                signed.add(ids.get(uri.substring(1)));
            }
            for (Map.Entry<String, Element> e : mustBeSigned.entrySet()) {
                if (!signed.contains(e.getValue())) throw new Refused(e.getKey() + " is not signed");
            }
            checkFreshness(timestamp);
        }

        private static void registerIds(Element e, DOMValidateContext vc, Map<String, Element> ids)
                throws Refused {
            if (e.hasAttributeNS(WSU, "Id")) {
                if (ids.put(e.getAttributeNS(WSU, "Id"), e) != null) {
                    throw new Refused("duplicate wsu:Id " + e.getAttributeNS(WSU, "Id"));
                }
                vc.setIdAttributeNS(e, WSU, "Id");
            }
            for (Node n = e.getFirstChild(); n != null; n = n.getNextSibling()) {
                if (n instanceof Element) registerIds((Element) n, vc, ids);
            }
        }

        /** Which part failed, for the fault and the record. */
        private static String whyInvalid(XMLSignature sig, DOMValidateContext vc) {
            List<String> bad = new ArrayList<>();
            try {
                if (!sig.getSignatureValue().validate(vc)) bad.add("SignatureValue");
                for (Object o : sig.getSignedInfo().getReferences()) {
                    Reference ref = (Reference) o;
                    if (!ref.validate(vc)) bad.add("digest of " + ref.getURI());
                }
            } catch (Exception e) {
                bad.add(e.getMessage());
            }
            return "signature does not verify: " + String.join(", ", bad);
        }

        private static void checkFreshness(Element timestamp) throws Refused {
            Instant now = Instant.now();
            try {
                Element created = first(timestamp, WSU, "Created");
                Element expires = first(timestamp, WSU, "Expires");
                if (created != null && Instant.parse(created.getTextContent().trim()).isAfter(now.plus(SKEW))) {
                    throw new Refused("wsu:Timestamp Created is in the future");
                }
                if (expires != null && Instant.parse(expires.getTextContent().trim()).isBefore(now.minus(SKEW))) {
                    throw new Refused("wsu:Timestamp has expired");
                }
            } catch (java.time.format.DateTimeParseException e) {
                throw new Refused("unreadable wsu:Timestamp");
            }
        }
    }

    static Element first(Element parent, String ns, String local) {
        for (Node n = parent.getFirstChild(); n != null; n = n.getNextSibling()) {
            if (n instanceof Element && ns.equals(n.getNamespaceURI()) && local.equals(n.getLocalName())) {
                return (Element) n;
            }
        }
        return null;
    }

    static Element only(Element parent, String ns, String local) throws Refused {
        Element found = null;
        for (Node n = parent.getFirstChild(); n != null; n = n.getNextSibling()) {
            if (n instanceof Element && ns.equals(n.getNamespaceURI()) && local.equals(n.getLocalName())) {
                if (found != null) throw new Refused("more than one " + local);
                found = (Element) n;
            }
        }
        if (found == null) throw new Refused("no " + local);
        return found;
    }

    static String text(Element parent, String ns, String local) {
        Element e = parent == null ? null : first(parent, ns, local);
        return e == null ? null : e.getTextContent().trim();
    }

    /**
     * The RI's view of one HTTP exchange. Once refuse() was called, the response the RI then sends (202,
     * no body) is replaced by the refusal's status and SOAP fault; otherwise every call goes through.
     */
    static final class RefusingExchange extends HttpExchange {
        private final HttpExchange x;
        private int status;
        private byte[] fault;

        RefusingExchange(HttpExchange x) {
            this.x = x;
        }

        void refuse(int status, byte[] soapFault) {
            this.status = status;
            this.fault = soapFault;
        }

        @Override
        public void sendResponseHeaders(int code, long length) throws IOException {
            if (fault == null) {
                x.sendResponseHeaders(code, length);
                return;
            }
            x.getResponseHeaders().set("Content-Type", "text/xml; charset=utf-8");
            x.sendResponseHeaders(status, fault.length);
            x.getResponseBody().write(fault);
            x.getResponseBody().flush();
        }

        @Override
        public OutputStream getResponseBody() {
            return fault == null ? x.getResponseBody() : OutputStream.nullOutputStream();
        }

        @Override
        public int getResponseCode() {
            return fault == null ? x.getResponseCode() : status;
        }

        @Override public Headers getRequestHeaders() { return x.getRequestHeaders(); }
        @Override public Headers getResponseHeaders() { return x.getResponseHeaders(); }
        @Override public URI getRequestURI() { return x.getRequestURI(); }
        @Override public String getRequestMethod() { return x.getRequestMethod(); }
        @Override public HttpContext getHttpContext() { return x.getHttpContext(); }
        @Override public void close() { x.close(); }
        @Override public InputStream getRequestBody() { return x.getRequestBody(); }
        @Override public InetSocketAddress getRemoteAddress() { return x.getRemoteAddress(); }
        @Override public InetSocketAddress getLocalAddress() { return x.getLocalAddress(); }
        @Override public String getProtocol() { return x.getProtocol(); }
        @Override public Object getAttribute(String name) { return x.getAttribute(name); }
        @Override public void setAttribute(String name, Object value) { x.setAttribute(name, value); }
        @Override public void setStreams(InputStream in, OutputStream out) { x.setStreams(in, out); }
        @Override public HttpPrincipal getPrincipal() { return x.getPrincipal(); }
    }

    /** The --records file: one JSON object per line, each written whole and flushed at once. */
    static final class Records {
        private final OutputStream out;

        Records(String file) throws IOException {
            this.out = new FileOutputStream(file, true);
        }

        synchronized void append(Map<String, Object> record) {
            try {
                out.write((json(record) + "\n").getBytes(StandardCharsets.UTF_8));
                out.flush();
            } catch (IOException e) {
                throw new IllegalStateException("cannot write records", e);
            }
        }

        static String json(Object v) {
            if (v == null) return "null";
            if (v instanceof Boolean || v instanceof Number) return v.toString();
            if (v instanceof Map) {
                StringBuilder sb = new StringBuilder("{");
                for (Map.Entry<?, ?> e : ((Map<?, ?>) v).entrySet()) {
                    if (sb.length() > 1) sb.append(',');
                    sb.append(json(String.valueOf(e.getKey()))).append(':').append(json(e.getValue()));
                }
                return sb.append('}').toString();
            }
            if (v instanceof List) {
                StringBuilder sb = new StringBuilder("[");
                for (Object o : (List<?>) v) {
                    if (sb.length() > 1) sb.append(',');
                    sb.append(json(o));
                }
                return sb.append(']').toString();
            }
            StringBuilder sb = new StringBuilder("\"");
            for (char c : v.toString().toCharArray()) {
                if (c == '"' || c == '\\') sb.append('\\').append(c);
                else if (c < 0x20) sb.append(String.format("\\u%04x", (int) c));
                else sb.append(c);
            }
            return sb.append('"').toString();
        }
    }
}
