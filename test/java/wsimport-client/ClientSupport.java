/*
 * What the wsimport clients (SymphonyWsimportClient, SymphonyResourceClient, SymphonyEnumerationClient)
 * share: their command line, the signing handler built from it, the port configuration (endpoint,
 * timeouts, handler chain), the per-step records of a SOAP version's flow, reading what was sent and
 * received, the keys, and the JSON summary line the mocha tests assert on.
 *
 * Compiled with every one of them, against wsimport output made with or without -extension: so it
 * names no generated class but SymphonyService, and reaches the port getters (the SOAP 1.2 ones exist
 * only with -extension) through reflection.
 */

import java.io.File;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.security.KeyFactory;
import java.security.PrivateKey;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.security.spec.PKCS8EncodedKeySpec;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Collection;
import java.util.Collections;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.logging.Level;
import java.util.logging.Logger;

import javax.xml.namespace.QName;
import javax.xml.parsers.DocumentBuilderFactory;
import javax.xml.soap.SOAPBody;
import javax.xml.soap.SOAPFault;
import javax.xml.soap.SOAPMessage;
import javax.xml.transform.dom.DOMResult;
import javax.xml.ws.BindingProvider;
import javax.xml.ws.handler.Handler;
import javax.xml.ws.handler.MessageContext;
import javax.xml.ws.handler.soap.SOAPHandler;
import javax.xml.ws.handler.soap.SOAPMessageContext;
import javax.xml.ws.soap.SOAPFaultException;
import javax.xml.ws.wsaddressing.W3CEndpointReference;

import org.w3c.dom.Document;
import org.w3c.dom.Element;
import org.w3c.dom.Node;
import org.w3c.dom.NodeList;

import symphony.soapproxy.wsdl.v1.SymphonyService;

public final class ClientSupport {
    static final String WSA = "http://www.w3.org/2005/08/addressing";
    static final String SOAP12_ENV = "http://www.w3.org/2003/05/soap-envelope";
    static final String XSI = "http://www.w3.org/2001/XMLSchema-instance";
    static final String XMLNS = "http://www.w3.org/2000/xmlns/";
    static final List<String> OPTIONS = List.of("--wsdl", "--endpoint", "--client-cert", "--client-key", "--response-cert");

    /** What the last stdout line reports. */
    static final Map<String, Object> summary = new LinkedHashMap<>();
    /** Where the run is: the summary's "step" when it fails. */
    static String step = "start";
    /** Steps of the flows (Flow.step) that failed; the run fails when any did. */
    static int failedSteps;

    private ClientSupport() {}

    // ------------------------------------------------------------------------------------------------
    // The run: command line, policy, handler, summary.

    /** The options (OPTIONS, each with a value); exits 2 with the usage line when one is missing. */
    static Map<String, String> options(String client, String[] args) {
        Map<String, String> opt = new LinkedHashMap<>();
        for (int i = 0; i + 1 < args.length; i += 2) opt.put(args[i], args[i + 1]);
        for (String k : OPTIONS) {
            if (!opt.containsKey(k) || args.length % 2 != 0) {
                System.err.println("usage: " + client + " --wsdl FILE --endpoint URL --client-cert PEM"
                        + " --client-key PEM --response-cert PEM");
                System.exit(2);
            }
        }
        // JAX-WS RI without Metro's security module evaluates the sp: assertions as UNKNOWN and logs a
        // warning per assertion and port (WSP0075/WSP0019): expected here, since WsSecurityPolicyHandler
        // is what implements the policy. Errors still print.
        Logger.getLogger("").setLevel(Level.SEVERE);
        return opt;
    }

    /** The suite these ports' policy names, into the summary (policySuite, policy*Method). */
    static WsdlAlgorithmSuite policy(File wsdl, List<String> ports) throws Exception {
        step = "policy";
        WsdlAlgorithmSuite suite = WsdlAlgorithmSuite.read(wsdl, ports);
        summary.put("policySuite", suite.name);
        summary.put("policySignatureMethod", suite.signatureMethod);
        summary.put("policyDigestMethod", suite.digestMethod);
        summary.put("policyC14nMethod", suite.c14nMethod);
        return suite;
    }

    /** The handler that signs with the client's key and verifies against the response certificate. */
    static WsSecurityPolicyHandler handler(WsdlAlgorithmSuite suite, Map<String, String> opt) throws Exception {
        step = "keys";
        return new WsSecurityPolicyHandler(suite, readCert(opt.get("--client-cert")), readKey(opt.get("--client-key")),
                readCert(opt.get("--response-cert")));
    }

    /** Records the failure ("ok": false, the step, the error) and says why on stderr. */
    static void failed(String client, Throwable e) {
        summary.put("ok", false);
        summary.put("step", step);
        summary.put("error", e.toString());
        System.err.println(client + ": step " + step + ": " + e);
    }

    /** The handler's counts into the summary, the summary as the last stdout line, then exit. */
    static void finish(WsSecurityPolicyHandler handler, int exit) {
        if (handler != null) {
            summary.put("requestsSigned", handler.requestsSigned);
            summary.put("responsesVerified", handler.responsesVerified);
            summary.put("responseSignatureMethods", handler.responseSignatureMethods);
            summary.put("responseDigestMethods", handler.responseDigestMethods);
            summary.put("responseC14nMethods", handler.responseC14nMethods);
        }
        System.out.println(json(summary));
        System.out.flush();
        System.exit(exit);
    }

    interface FlowFactory {
        Flow create(String flavor, SymphonyService service, List<String> ports, String endpoint,
                WsSecurityPolicyHandler security, Map<String, Object> steps) throws Exception;
    }

    /**
     * The whole run of a client made of flows: one flow per SOAP version whose ports wsimport generated
     * (`flavors`: version -> the flow's ports), each step recorded under "flows"; every step runs even
     * when an earlier one failed (where it can), so that one run shows every problem. Exit 0 when every
     * step passed, 1 otherwise, 2 on bad usage.
     */
    static void runFlows(String client, String[] args, Map<String, List<String>> flavors, String what,
            FlowFactory factory) {
        Map<String, String> opt = options(client, args);
        WsSecurityPolicyHandler handler = null;
        int exit = 0;
        try {
            step = "generated";
            List<String> versions = new ArrayList<>();
            List<String> ports = new ArrayList<>();
            for (Map.Entry<String, List<String>> f : flavors.entrySet()) {
                if (generated(f.getValue())) {
                    versions.add(f.getKey());
                    ports.addAll(f.getValue());
                }
            }
            summary.put("soapVersions", versions);
            if (!versions.contains("soap11")) throw new IllegalStateException("wsimport generated no SOAP 1.1 " + what + " ports");

            File wsdl = new File(opt.get("--wsdl"));
            WsdlAlgorithmSuite suite = policy(wsdl, ports);
            summary.put("policyPorts", suite.ports);
            handler = handler(suite, opt);

            step = "service";
            SymphonyService service = new SymphonyService(wsdl.toURI().toURL());
            Map<String, Object> flows = new LinkedHashMap<>();
            summary.put("flows", flows);
            for (String flavor : versions) {
                Map<String, Object> steps = new LinkedHashMap<>();
                flows.put(flavor, steps);
                factory.create(flavor, service, flavors.get(flavor), opt.get("--endpoint"), handler, steps).run();
            }
            step = "done";
            if (failedSteps > 0) throw new IllegalStateException(failedSteps + " step(s) failed");
            summary.put("ok", true);
        } catch (Throwable e) {
            exit = 1;
            failed(client, e);
        }
        if (handler != null && handler.lastRejection != null) {
            summary.put("lastRejection", handler.lastRejection.getMessage());
        }
        finish(handler, exit);
    }

    // ------------------------------------------------------------------------------------------------
    // Ports.

    /** Whether wsimport generated a getter for every one of these ports. */
    static boolean generated(List<String> ports) {
        for (String p : ports) {
            try {
                SymphonyService.class.getMethod("get" + p);
            } catch (NoSuchMethodException e) {
                return false;
            }
        }
        return true;
    }

    /** The port through its generated getter (getSessionResourcePortSoap12() and so on). */
    static <T> T port(SymphonyService service, String name, Class<T> type) throws Exception {
        return type.cast(SymphonyService.class.getMethod("get" + name).invoke(service));
    }

    /** The port (or Dispatch) at `address`, with the timeouts and these handlers after its own. */
    @SuppressWarnings({"rawtypes", "unchecked"})
    static <T> T configure(T port, String address, Handler... handlers) {
        BindingProvider bp = (BindingProvider) port;
        Map<String, Object> rc = bp.getRequestContext();
        rc.put(BindingProvider.ENDPOINT_ADDRESS_PROPERTY, address);
        rc.put("com.sun.xml.ws.connect.timeout", 10000);
        rc.put("com.sun.xml.ws.request.timeout", 30000);
        List<Handler> chain = new ArrayList<>(bp.getBinding().getHandlerChain());
        Collections.addAll(chain, handlers);
        bp.getBinding().setHandlerChain(chain);
        return port;
    }

    interface Call<T> {
        T call() throws Exception;
    }

    /** The call, with `key` set in the port's request context (for a handler to read) only for it. */
    static <T> T withRequestProperty(Object port, String key, Object value, Call<T> call) throws Exception {
        Map<String, Object> rc = ((BindingProvider) port).getRequestContext();
        rc.put(key, value);
        try {
            return call.call();
        } finally {
            rc.remove(key);
        }
    }

    // ------------------------------------------------------------------------------------------------
    // A SOAP version's flow, step by step.

    /** One SOAP version's run; each step's record lands in `steps`. */
    abstract static class Flow {
        final String flavor;
        final SymphonyService service;
        final List<String> ports;
        final String endpoint;
        final WsSecurityPolicyHandler security;
        final Map<String, Object> steps;
        final RequestRecorder recorder = new RequestRecorder();

        Flow(String flavor, SymphonyService service, List<String> ports, String endpoint,
                WsSecurityPolicyHandler security, Map<String, Object> steps) {
            this.flavor = flavor;
            this.service = service;
            this.ports = ports;
            this.endpoint = endpoint;
            this.security = security;
            this.steps = steps;
        }

        abstract void run() throws Exception;

        interface Body {
            void run(Map<String, Object> rec) throws Exception;
        }

        /** Runs one step; a failure is recorded (with why), never thrown. */
        boolean step(String name, Body body) {
            Map<String, Object> rec = new LinkedHashMap<>();
            rec.put("ok", false);
            steps.put(name, rec);
            ClientSupport.step = flavor + "/" + name;
            int signed = security.requestsSigned;
            int verified = security.responsesVerified;
            security.lastRejection = null;
            long started = System.nanoTime();
            try {
                body.run(rec);
                rec.put("ok", true);
            } catch (Throwable e) {
                failedSteps++;
                rec.put("error", describe(e));
                if (security.lastRejection != null) rec.put("rejection", security.lastRejection.getMessage());
            }
            rec.put("requestsSigned", security.requestsSigned - signed);
            rec.put("responsesVerified", security.responsesVerified - verified);
            rec.put("ms", (System.nanoTime() - started) / 1_000_000);
            return Boolean.TRUE.equals(rec.get("ok"));
        }

        /**
         * The port at `address`. Outbound, SOAP handlers run in this order: declare (when given), then
         * sign, then record what is sent.
         */
        <T> T configure(T port, String address, DeclareNamespaces declare) {
            return declare == null
                    ? ClientSupport.configure(port, address, security, recorder)
                    : ClientSupport.configure(port, address, declare, security, recorder);
        }
    }

    // ------------------------------------------------------------------------------------------------
    // Handlers.

    /** A SOAP handler that reads no headers and lets faults through. */
    abstract static class PassThroughHandler implements SOAPHandler<SOAPMessageContext> {
        @Override
        public Set<QName> getHeaders() {
            return Collections.emptySet();
        }

        @Override
        public boolean handleFault(SOAPMessageContext ctx) {
            return true;
        }

        @Override
        public void close(MessageContext ctx) {}

        static boolean outbound(SOAPMessageContext ctx) {
            return Boolean.TRUE.equals(ctx.get(MessageContext.MESSAGE_OUTBOUND_PROPERTY));
        }
    }

    /**
     * Declares namespaces on every `local` element (in any of `namespaces`) of an outgoing request, from
     * the request context property `property` (prefix -> namespace). The generated classes hold an XPath
     * (wsrf-rp:QueryExpression, wsen:Filter) as mixed content (a String), and JAXB declares no namespace
     * for text, so the prefixes an expression uses are otherwise not in scope where the proxy resolves them.
     */
    static final class DeclareNamespaces extends PassThroughHandler {
        final String property;
        final String local;
        final String[] namespaces;

        DeclareNamespaces(String property, String local, String... namespaces) {
            this.property = property;
            this.local = local;
            this.namespaces = namespaces;
        }

        @Override
        public boolean handleMessage(SOAPMessageContext ctx) {
            if (!outbound(ctx)) return true;
            Object decls = ctx.get(property);
            if (!(decls instanceof Map)) return true;
            try {
                SOAPMessage msg = ctx.getMessage();
                SOAPBody body = msg.getSOAPBody();
                for (String ns : namespaces) {
                    NodeList found = body.getElementsByTagNameNS(ns, local);
                    for (int i = 0; i < found.getLength(); i++) {
                        Element e = (Element) found.item(i);
                        for (Map.Entry<?, ?> d : ((Map<?, ?>) decls).entrySet()) {
                            e.setAttributeNS(XMLNS, "xmlns:" + d.getKey(), String.valueOf(d.getValue()));
                        }
                    }
                }
                msg.saveChanges();
            } catch (Exception e) {
                throw new javax.xml.ws.WebServiceException("declaring the " + local + " namespaces failed: " + e, e);
            }
            return true;
        }
    }

    /**
     * Keeps the soap:Body of the last request as sent (after signing), and the child elements of the
     * last response's soap:Body as received, for the steps to inspect.
     */
    static final class RequestRecorder extends PassThroughHandler {
        private Element lastBody;
        private List<String> lastResponse;

        Element body() {
            return lastBody;
        }

        /** {ns}local of each child element of the last response's soap:Body (null: none seen). */
        List<String> responseBody() {
            return lastResponse;
        }

        @Override
        public boolean handleMessage(SOAPMessageContext ctx) {
            lastResponse = null;
            if (!outbound(ctx)) {
                try {
                    List<String> names = new ArrayList<>();
                    for (Element c : WsSecurityPolicyHandler.children(ctx.getMessage().getSOAPBody())) {
                        names.add("{" + c.getNamespaceURI() + "}" + c.getLocalName());
                    }
                    lastResponse = names;
                } catch (Exception e) {
                    // Only for inspection.
                }
                return true;
            }
            lastBody = null;
            try {
                Document doc = WsSecurityPolicyHandler.parse(WsSecurityPolicyHandler.bytesOf(ctx.getMessage()));
                for (Element c : WsSecurityPolicyHandler.children(doc.getDocumentElement())) {
                    if ("Body".equals(c.getLocalName())) lastBody = c;
                }
            } catch (Exception e) {
                // Only for inspection: a step that needs the body reports it missing.
            }
            return true;
        }
    }

    // ------------------------------------------------------------------------------------------------
    // Reading what was sent and received.

    /** Address and reference parameters of an EPR, read from its XML form. */
    static Map<String, Object> readEpr(W3CEndpointReference epr) throws Exception {
        DocumentBuilderFactory f = DocumentBuilderFactory.newInstance();
        f.setNamespaceAware(true);
        Document doc = f.newDocumentBuilder().newDocument();
        epr.writeTo(new DOMResult(doc));
        Element root = doc.getDocumentElement();
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("element", "{" + root.getNamespaceURI() + "}" + root.getLocalName());
        Element address = first(root, WSA, "Address");
        out.put("address", address == null ? null : address.getTextContent().trim());
        Element params = first(root, WSA, "ReferenceParameters");
        Map<String, String> rp = new LinkedHashMap<>();
        if (params != null) {
            for (Element p : WsSecurityPolicyHandler.children(params)) {
                rp.put("{" + p.getNamespaceURI() + "}" + p.getLocalName(), p.getTextContent().trim());
            }
        }
        out.put("referenceParameters", rp);
        if (out.get("address") == null) throw new IllegalStateException("the EPR has no wsa:Address");
        return out;
    }

    /** The endpoint reference `response` carried, into the record as "epr"; returns its Address. */
    static String recordEpr(Map<String, Object> rec, String response, W3CEndpointReference epr) throws Exception {
        if (epr == null) throw new IllegalStateException(response + " carries no wsa:EndpointReference");
        Map<String, Object> e = readEpr(epr);
        rec.put("epr", e);
        return (String) e.get("address");
    }

    static Element first(Element parent, String ns, String local) {
        for (Element c : WsSecurityPolicyHandler.children(parent)) {
            if (WsSecurityPolicyHandler.is(c, ns, local)) return c;
        }
        return null;
    }

    static List<Element> descendants(Element root, String ns, String local) {
        List<Element> out = new ArrayList<>();
        if (root == null) return out;
        NodeList nl = root.getElementsByTagNameNS(ns, local);
        for (int i = 0; i < nl.getLength(); i++) out.add((Element) nl.item(i));
        return out;
    }

    /**
     * The children of the (first) named element of the request: name ({ns}local when `qualified`, else
     * the local name), nil, text.
     */
    static List<Map<String, Object>> children(Element body, String ns, String local, boolean qualified) {
        List<Map<String, Object>> out = new ArrayList<>();
        List<Element> found = descendants(body, ns, local);
        if (found.isEmpty()) return out;
        for (Element c : WsSecurityPolicyHandler.children(found.get(0))) {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("name", qualified ? "{" + c.getNamespaceURI() + "}" + c.getLocalName() : c.getLocalName());
            String nil = c.getAttributeNS(XSI, "nil");
            m.put("nil", "true".equals(nil) || "1".equals(nil));
            m.put("text", c.getTextContent());
            out.add(m);
        }
        return out;
    }

    /** An XPath as sent (wsrf-rp:QueryExpression, wsen:Filter): dialect, text, and where its prefix is declared. */
    static Map<String, Object> expressionRequest(Element body, String ns, String local, String prefix) {
        Map<String, Object> m = new LinkedHashMap<>();
        List<Element> found = descendants(body, ns, local);
        if (found.isEmpty()) return m;
        Element e = found.get(0);
        m.put("dialect", e.getAttribute("Dialect"));
        m.put("text", e.getTextContent());
        m.put("prefixResolvesTo", e.lookupNamespaceURI(prefix));
        m.put("declaredOn", declaredOn(e, prefix));
        return m;
    }

    /** The local name of the nearest element (self or ancestor) that declares this prefix. */
    static String declaredOn(Element e, String prefix) {
        String attr = prefix == null ? "xmlns" : "xmlns:" + prefix;
        for (Node n = e; n != null && n.getNodeType() == Node.ELEMENT_NODE; n = n.getParentNode()) {
            if (((Element) n).hasAttribute(attr)) return n.getLocalName();
        }
        return null;
    }

    /** The fault's SOAP 1.2 [Subcode]s, outermost first (SOAP 1.1 has none). */
    static List<String> subcodes(SOAPFault f) {
        List<String> out = new ArrayList<>();
        // Not asked of a SOAP 1.1 fault: SAAJ logs an error when asked for subcodes there.
        if (SOAP12_ENV.equals(f.getNamespaceURI())) {
            Iterator<?> it = f.getFaultSubcodes();
            while (it.hasNext()) out.add(String.valueOf(it.next()));
        }
        return out;
    }

    /** The element children of the fault's detail. */
    static List<Element> detailEntries(SOAPFault f) {
        List<Element> out = new ArrayList<>();
        if (f.getDetail() == null) return out;
        Iterator<?> it = f.getDetail().getDetailEntries();
        while (it.hasNext()) {
            Object d = it.next();
            if (d instanceof Element) out.add((Element) d);
        }
        return out;
    }

    /** A step's failure: the exception, and for a SOAP fault its code, SOAP 1.2 subcodes and detail. */
    static String describe(Throwable e) {
        StringBuilder sb = new StringBuilder(e.getClass().getName());
        if (e.getMessage() != null) sb.append(": ").append(e.getMessage());
        if (e instanceof SOAPFaultException) {
            SOAPFault f = ((SOAPFaultException) e).getFault();
            sb.append(" [faultcode ").append(f.getFaultCodeAsQName());
            try {
                for (String c : subcodes(f)) sb.append(", subcode ").append(c);
                for (Element de : detailEntries(f)) {
                    sb.append(", detail {").append(de.getNamespaceURI()).append('}').append(de.getLocalName());
                    String sep = ": ";
                    for (Element c : WsSecurityPolicyHandler.children(de)) {
                        sb.append(sep).append(c.getLocalName()).append('=').append(c.getTextContent().trim());
                        sep = ", ";
                    }
                }
            } catch (Exception ignored) {
                // the message alone
            }
            sb.append(']');
        }
        if (e.getCause() != null && e.getCause() != e) sb.append("; cause: ").append(e.getCause());
        return sb.toString();
    }

    // ------------------------------------------------------------------------------------------------
    // Keys and JSON.

    static X509Certificate readCert(String file) throws Exception {
        try (var in = Files.newInputStream(new File(file).toPath())) {
            return (X509Certificate) CertificateFactory.getInstance("X.509").generateCertificate(in);
        }
    }

    /** An unencrypted PKCS#8 PEM key (the "PRIVATE KEY" label), RSA or EC. */
    static PrivateKey readKey(String file) throws Exception {
        String pem = new String(Files.readAllBytes(new File(file).toPath()), StandardCharsets.US_ASCII);
        // The label is assembled so that this source holds no PEM marker a secret scanner would flag.
        String label = "PRIVATE" + " KEY-----";
        String begin = "-----BEGIN " + label;
        int b = pem.indexOf(begin);
        int e = pem.indexOf("-----END " + label);
        if (b < 0 || e < 0) throw new IllegalArgumentException(file + " is not an unencrypted PKCS#8 PEM key");
        byte[] der = Base64.getMimeDecoder().decode(pem.substring(b + begin.length(), e));
        for (String alg : new String[] {"RSA", "EC"}) {
            try {
                return KeyFactory.getInstance(alg).generatePrivate(new PKCS8EncodedKeySpec(der));
            } catch (java.security.spec.InvalidKeySpecException notThisOne) {
                // try the next algorithm
            }
        }
        throw new IllegalArgumentException(file + " holds neither an RSA nor an EC key");
    }

    /** Minimal JSON writer for the summary line (strings, numbers, booleans, null, maps, collections). */
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
        if (v instanceof Collection) {
            StringBuilder sb = new StringBuilder("[");
            for (Object o : (Collection<?>) v) {
                if (sb.length() > 1) sb.append(',');
                sb.append(json(o));
            }
            return sb.append(']').toString();
        }
        String s = v.toString();
        StringBuilder sb = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            switch (c) {
                case '"': sb.append("\\\""); break;
                case '\\': sb.append("\\\\"); break;
                case '\n': sb.append("\\n"); break;
                case '\r': sb.append("\\r"); break;
                case '\t': sb.append("\\t"); break;
                default:
                    if (c < 0x20) sb.append(String.format("\\u%04x", (int) c));
                    else sb.append(c);
            }
        }
        return sb.append('"').toString();
    }
}
