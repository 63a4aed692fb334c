/*
 * A client built from `wsimport` output (JAX-WS RI, Debian's jaxws) for the WSDL a running proxy
 * serves, calling every operation of the WS-Resource port types (SessionResourcePortType,
 * ConnectionResourcePortType: WS-ResourceProperties 1.2 and WS-ResourceLifetime 1.2), signed with
 * WS-Security, every response and fault held to the WSDL's algorithm suite (WsSecurityPolicyHandler,
 * WsdlAlgorithmSuite). For each SOAP version whose ports wsimport generated (SOAP 1.2 needs
 * `wsimport -extension`):
 *   connect + createSession (the API ports) -> the EPR Address of each answer ->
 *   session resource: GetResourcePropertyDocument, GetResourceProperty(sym:State),
 *     GetMultipleResourceProperties, QueryResourceProperties (XPath 1.0, prefixed names: a node-set
 *     and a boolean; and once without the prefix declared), SetTerminationTime (a duration; nil through
 *     the generated method and through a Dispatch with the generated JAXB classes; a past time ->
 *     UnableToSetTerminationTimeFault), Destroy, a call after it -> ResourceUnknownFault
 *   connection resource: GetResourceProperty(sym:ConnectionId), GetResourcePropertyDocument, Destroy,
 *     a call after it -> ResourceUnknownFault
 *
 * Usage (the generated classes and WsSecurityPolicyHandler, WsdlAlgorithmSuite and this file compiled
 * into CLASSES):
 *   java -cp CLASSES:/usr/share/java/jaxws-rt.jar SymphonyResourceClient --wsdl FILE --endpoint URL \
 *     --client-cert PEM --client-key PEM --response-cert PEM
 *
 * Every step runs even when an earlier one failed (where it can), so that one run shows every problem.
 * The last stdout line is one JSON object: per SOAP version, per step, "ok" and what was seen (the
 * mocha test asserts on it). Exit 0 when every step passed and every response verified, 1 otherwise,
 * 2 on bad usage. Only port getters and SEI methods are called, through reflection for the getters,
 * so that this file compiles against wsimport output with or without the SOAP 1.2 ports.
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
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.logging.Level;
import java.util.logging.Logger;

import javax.xml.bind.JAXBElement;
import javax.xml.datatype.DatatypeFactory;
import javax.xml.datatype.Duration;
import javax.xml.datatype.XMLGregorianCalendar;
import javax.xml.namespace.QName;
import javax.xml.parsers.DocumentBuilderFactory;
import javax.xml.soap.SOAPBody;
import javax.xml.soap.SOAPMessage;
import javax.xml.transform.dom.DOMResult;
import javax.xml.ws.BindingProvider;
import javax.xml.ws.Holder;
import javax.xml.ws.handler.Handler;
import javax.xml.ws.handler.MessageContext;
import javax.xml.ws.handler.soap.SOAPHandler;
import javax.xml.ws.handler.soap.SOAPMessageContext;
import javax.xml.ws.soap.SOAPFaultException;
import javax.xml.ws.wsaddressing.W3CEndpointReference;

import org.oasis_open.docs.wsrf.bf_2.BaseFaultType;
import org.oasis_open.docs.wsrf.rl_2.SetTerminationTime;
import org.oasis_open.docs.wsrf.rl_2.SetTerminationTimeResponse;
import org.oasis_open.docs.wsrf.rp_2.GetMultipleResourceProperties;
import org.oasis_open.docs.wsrf.rp_2.GetResourcePropertyDocument;
import org.oasis_open.docs.wsrf.rp_2.QueryExpressionType;
import org.oasis_open.docs.wsrf.rp_2.QueryResourceProperties;
import org.w3c.dom.Document;
import org.w3c.dom.Element;
import org.w3c.dom.Node;
import org.w3c.dom.NodeList;

import symphony.soapproxy.v1.ConnectionResourceProperties;
import symphony.soapproxy.v1.SessionCreationAttributes;
import symphony.soapproxy.v1.SessionResourceProperties;
import symphony.soapproxy.wsdl.v1.ConnectionPortType;
import symphony.soapproxy.wsdl.v1.ConnectionResourcePortType;
import symphony.soapproxy.wsdl.v1.InvalidQueryExpressionFault;
import symphony.soapproxy.wsdl.v1.ResourceUnknownFault;
import symphony.soapproxy.wsdl.v1.SessionPortType;
import symphony.soapproxy.wsdl.v1.SessionResourcePortType;
import symphony.soapproxy.wsdl.v1.SymphonyService;
import symphony.soapproxy.wsdl.v1.UnableToSetTerminationTimeFault;

public final class SymphonyResourceClient {
    static final String SYM = "http://soapproxy.symphony/v1";
    static final String WSA = "http://www.w3.org/2005/08/addressing";
    static final String WSRF_RP = "http://docs.oasis-open.org/wsrf/rp-2";
    static final String WSRF_RL = "http://docs.oasis-open.org/wsrf/rl-2";
    static final String XSI = "http://www.w3.org/2001/XMLSchema-instance";
    static final String XMLNS = "http://www.w3.org/2000/xmlns/";
    static final String XPATH_10 = "http://www.w3.org/TR/1999/REC-xpath-19991116";
    /** The prefix the XPath expressions use, declared on QueryExpression by QueryNamespaces. */
    static final String QUERY_PREFIX = "s";

    /** The ports of one SOAP version: connection, session, session resource, connection resource. */
    static final Map<String, List<String>> FLAVORS = new LinkedHashMap<>();

    static {
        FLAVORS.put("soap11", List.of("ConnectionPort", "SessionPort", "SessionResourcePort", "ConnectionResourcePort"));
        FLAVORS.put("soap12", List.of("ConnectionPortSoap12", "SessionPortSoap12", "SessionResourcePortSoap12",
                "ConnectionResourcePortSoap12"));
    }

    static final Map<String, Object> summary = new LinkedHashMap<>();
    static String step = "start";
    static int failedSteps;

    public static void main(String[] args) {
        Map<String, String> opt = new LinkedHashMap<>();
        for (int i = 0; i + 1 < args.length; i += 2) opt.put(args[i], args[i + 1]);
        for (String k : List.of("--wsdl", "--endpoint", "--client-cert", "--client-key", "--response-cert")) {
            if (!opt.containsKey(k) || args.length % 2 != 0) {
                System.err.println("usage: SymphonyResourceClient --wsdl FILE --endpoint URL --client-cert PEM"
                        + " --client-key PEM --response-cert PEM");
                System.exit(2);
            }
        }
        // JAX-WS RI without Metro's security module logs a warning per sp: assertion and port; this
        // handler is what implements the policy. Errors still print.
        Logger.getLogger("").setLevel(Level.SEVERE);
        WsSecurityPolicyHandler handler = null;
        int exit = 0;
        try {
            step = "generated";
            List<String> flavors = new ArrayList<>();
            List<String> ports = new ArrayList<>();
            for (Map.Entry<String, List<String>> f : FLAVORS.entrySet()) {
                if (generated(f.getValue())) {
                    flavors.add(f.getKey());
                    ports.addAll(f.getValue());
                }
            }
            summary.put("soapVersions", flavors);
            if (!flavors.contains("soap11")) throw new IllegalStateException("wsimport generated no SOAP 1.1 resource ports");

            step = "policy";
            File wsdl = new File(opt.get("--wsdl"));
            WsdlAlgorithmSuite suite = WsdlAlgorithmSuite.read(wsdl, ports);
            summary.put("policySuite", suite.name);
            summary.put("policySignatureMethod", suite.signatureMethod);
            summary.put("policyDigestMethod", suite.digestMethod);
            summary.put("policyC14nMethod", suite.c14nMethod);
            summary.put("policyPorts", suite.ports);

            step = "keys";
            handler = new WsSecurityPolicyHandler(suite, readCert(opt.get("--client-cert")),
                    readKey(opt.get("--client-key")), readCert(opt.get("--response-cert")));

            step = "service";
            SymphonyService service = new SymphonyService(wsdl.toURI().toURL());
            Map<String, Object> flows = new LinkedHashMap<>();
            summary.put("flows", flows);
            for (String flavor : flavors) {
                Map<String, Object> steps = new LinkedHashMap<>();
                flows.put(flavor, steps);
                new Flow(flavor, service, FLAVORS.get(flavor), opt.get("--endpoint"), handler, steps).run();
            }
            step = "done";
            if (failedSteps > 0) throw new IllegalStateException(failedSteps + " step(s) failed");
            summary.put("ok", true);
        } catch (Throwable e) {
            exit = 1;
            summary.put("ok", false);
            summary.put("step", step);
            summary.put("error", e.toString());
            System.err.println("SymphonyResourceClient: " + step + ": " + e);
        }
        if (handler != null) {
            summary.put("requestsSigned", handler.requestsSigned);
            summary.put("responsesVerified", handler.responsesVerified);
            summary.put("responseSignatureMethods", handler.responseSignatureMethods);
            summary.put("responseDigestMethods", handler.responseDigestMethods);
            summary.put("responseC14nMethods", handler.responseC14nMethods);
            if (handler.lastRejection != null) summary.put("lastRejection", handler.lastRejection.getMessage());
        }
        System.out.println(json(summary));
        System.out.flush();
        System.exit(exit);
    }

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

    // ------------------------------------------------------------------------------------------------

    /** One SOAP version's run; each step's record lands in `steps`. */
    static final class Flow {
        final String flavor;
        final SymphonyService service;
        final List<String> ports;
        final String endpoint;
        final WsSecurityPolicyHandler security;
        final Map<String, Object> steps;
        final RequestRecorder recorder = new RequestRecorder();

        String connectionId;
        String sessionId;
        String sessionAddress;
        String connectionAddress;

        Flow(String flavor, SymphonyService service, List<String> ports, String endpoint,
                WsSecurityPolicyHandler security, Map<String, Object> steps) {
            this.flavor = flavor;
            this.service = service;
            this.ports = ports;
            this.endpoint = endpoint;
            this.security = security;
            this.steps = steps;
        }

        interface Body {
            void run(Map<String, Object> rec) throws Exception;
        }

        /** Runs one step; a failure is recorded (with why), never thrown. */
        boolean step(String name, Body body) {
            Map<String, Object> rec = new LinkedHashMap<>();
            rec.put("ok", false);
            steps.put(name, rec);
            SymphonyResourceClient.step = flavor + "/" + name;
            int signed = security.requestsSigned;
            int verified = security.responsesVerified;
            security.lastRejection = null;
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
            return Boolean.TRUE.equals(rec.get("ok"));
        }

        void run() throws Exception {
            ConnectionPortType conn = configure(port(service, ports.get(0), ConnectionPortType.class), endpoint, false);
            SessionPortType sessions = configure(port(service, ports.get(1), SessionPortType.class), endpoint, false);

            boolean connected = step("connect", rec -> {
                Holder<String> id = new Holder<>();
                Holder<W3CEndpointReference> epr = new Holder<>();
                conn.connect(null, "echo", "wsimport-resources", "secret", id, epr);
                connectionId = id.value;
                rec.put("connectionId", connectionId);
                if (epr.value == null) throw new IllegalStateException("connectResponse carries no wsa:EndpointReference");
                Map<String, Object> e = readEpr(epr.value);
                rec.put("epr", e);
                connectionAddress = (String) e.get("address");
            });
            boolean created = connected && step("createSession", rec -> {
                SessionCreationAttributes attrs = new SessionCreationAttributes();
                attrs.setName("wsimport-resources-" + flavor);
                attrs.setPriority(10);
                Holder<String> id = new Holder<>();
                Holder<W3CEndpointReference> epr = new Holder<>();
                sessions.createSession(connectionId, attrs, id, epr);
                sessionId = id.value;
                rec.put("sessionId", sessionId);
                if (epr.value == null) throw new IllegalStateException("createSessionResponse carries no wsa:EndpointReference");
                Map<String, Object> e = readEpr(epr.value);
                rec.put("epr", e);
                sessionAddress = (String) e.get("address");
            });

            if (created && sessionAddress != null) sessionSteps();
            if (connected && connectionAddress != null) connectionSteps();
        }

        void sessionSteps() throws Exception {
            SessionResourcePortType res = configure(port(service, ports.get(2), SessionResourcePortType.class),
                    sessionAddress, true);
            steps.put("sessionPort", Map.of("port", ports.get(2), "address", sessionAddress));

            step("session.GetResourcePropertyDocument", rec -> {
                Object any = res.getResourcePropertyDocument(new GetResourcePropertyDocument()).getAny();
                rec.put("javaType", any == null ? null : any.getClass().getName());
                if (!(any instanceof SessionResourceProperties)) {
                    throw new IllegalStateException("the document is not a SessionResourceProperties: " + describeValue(any));
                }
                SessionResourceProperties d = (SessionResourceProperties) any;
                rec.put("sessionId", d.getSessionId());
                rec.put("connectionId", d.getConnectionId());
                rec.put("state", d.getState() == null ? null : d.getState().value());
                rec.put("name", d.getName());
                rec.put("priority", d.getPriority());
                rec.put("applicationName", d.getApplicationName());
                rec.put("owner", d.getOwner());
                rec.put("currentTime", d.getCurrentTime() == null ? null : String.valueOf(d.getCurrentTime().getValue()));
                rec.put("terminationTime", d.getTerminationTime() == null ? null : String.valueOf(d.getTerminationTime().getValue()));
                rec.put("queryExpressionDialects", d.getQueryExpressionDialect());
            });

            step("session.GetResourceProperty", rec -> {
                List<Object> items = res.getResourceProperty(new QName(SYM, "State")).getAny();
                rec.put("items", describeItems(items));
                rec.put("request", qnameRequest(recorder.body(), WSRF_RP, "GetResourceProperty"));
            });

            step("session.GetMultipleResourceProperties", rec -> {
                GetMultipleResourceProperties req = new GetMultipleResourceProperties();
                req.getResourceProperty().add(new QName(SYM, "State"));
                req.getResourceProperty().add(new QName(WSRF_RL, "CurrentTime"));
                req.getResourceProperty().add(new QName(SYM, "SessionId"));
                List<Object> items = res.getMultipleResourceProperties(req).getAny();
                rec.put("items", describeItems(items));
                rec.put("request", qnameRequest(recorder.body(), WSRF_RP, "ResourceProperty"));
            });

            // XPath 1.0: the prefix must be declared on QueryExpression; QueryNamespaces does that.
            step("session.QueryResourceProperties.nodes", rec -> {
                String expr = "/" + QUERY_PREFIX + ":SessionResourceProperties/" + QUERY_PREFIX + ":State";
                List<Object> content = query(res, expr, true);
                rec.put("expression", expr);
                rec.put("content", describeItems(content));
                rec.put("request", queryRequest(recorder.body()));
            });
            step("session.QueryResourceProperties.boolean", rec -> {
                String expr = QUERY_PREFIX + ":State = 'Open' and " + QUERY_PREFIX + ":PendingTaskCount = 0";
                List<Object> content = query(res, expr, true);
                rec.put("expression", expr);
                rec.put("content", describeItems(content));
            });
            // The same without the handler: what the generated classes alone send.
            step("session.QueryResourceProperties.undeclaredPrefix", rec -> {
                String expr = "/" + QUERY_PREFIX + ":SessionResourceProperties/" + QUERY_PREFIX + ":State";
                rec.put("expression", expr);
                try {
                    List<Object> content = query(res, expr, false);
                    rec.put("request", queryRequest(recorder.body()));
                    throw new IllegalStateException("expected InvalidQueryExpressionFault, got an answer: "
                            + describeItems(content));
                } catch (InvalidQueryExpressionFault f) {
                    rec.put("request", queryRequest(recorder.body()));
                    rec.put("fault", describeFault(f.getMessage(), f.getFaultInfo()));
                }
            });

            DatatypeFactory dt = DatatypeFactory.newInstance();
            step("session.SetTerminationTime.duration", rec -> {
                Holder<XMLGregorianCalendar> next = new Holder<>();
                Holder<XMLGregorianCalendar> now = new Holder<>();
                Duration d = dt.newDuration("PT1H");
                long before = System.currentTimeMillis();
                try {
                    res.setTerminationTime(null, d, next, now);
                } finally {
                    rec.put("request", children(recorder.body(), WSRF_RL, "SetTerminationTime"));
                }
                rec.put("newTerminationTime", next.value == null ? null : next.value.toXMLFormat());
                rec.put("currentTime", now.value == null ? null : now.value.toXMLFormat());
                if (next.value == null) throw new IllegalStateException("NewTerminationTime is nil: the duration was not applied");
                long granted = next.value.toGregorianCalendar().getTimeInMillis();
                rec.put("grantedSecondsAhead", (granted - before) / 1000);
                // The property shows it too.
                List<Object> items = res.getResourceProperty(new QName(WSRF_RL, "TerminationTime")).getAny();
                rec.put("terminationTimeProperty", describeItems(items));
            });
            // The generated method has no way to send xsi:nil (both arguments null leave the choice
            // empty): that request is refused with the fault the operation declares, a checked exception.
            step("session.SetTerminationTime.empty", rec -> {
                try {
                    res.setTerminationTime(null, null, new Holder<XMLGregorianCalendar>(), new Holder<XMLGregorianCalendar>());
                } catch (symphony.soapproxy.wsdl.v1.InvalidArgumentFault e) {
                    rec.put("fault", "InvalidArgumentFault");
                    rec.put("code", e.getFaultInfo() == null ? null : e.getFaultInfo().getCode());
                    return;
                }
                throw new IllegalStateException("an empty SetTerminationTime was accepted");
            });
            // nil through a JAX-WS Dispatch with the generated JAXB classes, on the same port, handlers and
            // action: what a JAX-WS client has to do to ask for it.
            step("session.SetTerminationTime.nil.dispatch", rec -> {
                SetTerminationTime req = new SetTerminationTime();
                req.setRequestedTerminationTime(
                        new org.oasis_open.docs.wsrf.rl_2.ObjectFactory().createSetTerminationTimeRequestedTerminationTime(null));
                Object answer = dispatch(ports.get(2), sessionAddress, SessionResourcePortType.class, "setTerminationTime",
                        org.oasis_open.docs.wsrf.rl_2.ObjectFactory.class, req);
                rec.put("request", children(recorder.body(), WSRF_RL, "SetTerminationTime"));
                if (!(answer instanceof SetTerminationTimeResponse)) {
                    throw new IllegalStateException("not a SetTerminationTimeResponse: " + describeValue(answer));
                }
                SetTerminationTimeResponse r = (SetTerminationTimeResponse) answer;
                rec.put("newTerminationTime", r.getNewTerminationTime() == null ? null : r.getNewTerminationTime().toXMLFormat());
                rec.put("currentTime", r.getCurrentTime() == null ? null : r.getCurrentTime().toXMLFormat());
                List<Object> items = res.getResourceProperty(new QName(WSRF_RL, "TerminationTime")).getAny();
                rec.put("terminationTimeProperty", describeItems(items));
            });
            step("session.SetTerminationTime.past", rec -> {
                Holder<XMLGregorianCalendar> next = new Holder<>();
                Holder<XMLGregorianCalendar> now = new Holder<>();
                try {
                    res.setTerminationTime(dt.newXMLGregorianCalendar("2001-01-01T00:00:00Z"), null, next, now);
                    throw new IllegalStateException("expected UnableToSetTerminationTimeFault, got NewTerminationTime "
                            + next.value);
                } catch (UnableToSetTerminationTimeFault f) {
                    rec.put("fault", describeFault(f.getMessage(), f.getFaultInfo()));
                } finally {
                    rec.put("request", children(recorder.body(), WSRF_RL, "SetTerminationTime"));
                }
            });

            step("session.Destroy", rec -> res.destroy());
            step("session.afterDestroy", rec -> {
                try {
                    List<Object> items = res.getResourceProperty(new QName(SYM, "State")).getAny();
                    throw new IllegalStateException("expected ResourceUnknownFault, got " + describeItems(items));
                } catch (ResourceUnknownFault f) {
                    rec.put("fault", describeFault(f.getMessage(), f.getFaultInfo()));
                }
            });
        }

        void connectionSteps() throws Exception {
            ConnectionResourcePortType res = configure(
                    port(service, ports.get(3), ConnectionResourcePortType.class), connectionAddress, true);
            steps.put("connectionPort", Map.of("port", ports.get(3), "address", connectionAddress));

            step("connection.GetResourceProperty", rec -> {
                List<Object> items = res.getResourceProperty(new QName(SYM, "ConnectionId")).getAny();
                rec.put("items", describeItems(items));
                rec.put("request", qnameRequest(recorder.body(), WSRF_RP, "GetResourceProperty"));
            });
            step("connection.GetResourcePropertyDocument", rec -> {
                Object any = res.getResourcePropertyDocument(new GetResourcePropertyDocument()).getAny();
                rec.put("javaType", any == null ? null : any.getClass().getName());
                if (!(any instanceof ConnectionResourceProperties)) {
                    throw new IllegalStateException("the document is not a ConnectionResourceProperties: " + describeValue(any));
                }
                ConnectionResourceProperties d = (ConnectionResourceProperties) any;
                rec.put("connectionId", d.getConnectionId());
                rec.put("applicationName", d.getApplicationName());
            });
            step("connection.Destroy", rec -> res.destroy());
            step("connection.afterDestroy", rec -> {
                try {
                    List<Object> items = res.getResourceProperty(new QName(SYM, "ConnectionId")).getAny();
                    throw new IllegalStateException("expected ResourceUnknownFault, got " + describeItems(items));
                } catch (ResourceUnknownFault f) {
                    rec.put("fault", describeFault(f.getMessage(), f.getFaultInfo()));
                }
            });
        }

        /**
         * One call through a JAX-WS Dispatch (PAYLOAD mode, JAXB with the generated classes) on the named
         * port, at `address`, with this flow's handlers and the SOAP action the generated SEI method
         * carries. Faults come back as SOAPFaultException.
         */
        Object dispatch(String portName, String address, Class<?> sei, String method, Class<?> objectFactory,
                Object request) throws Exception {
            String action = null;
            for (java.lang.reflect.Method m : sei.getMethods()) {
                if (m.getName().equals(method)) action = m.getAnnotation(javax.jws.WebMethod.class).action();
            }
            if (action == null) throw new IllegalStateException(sei.getSimpleName() + " has no method " + method);
            javax.xml.ws.Dispatch<Object> d = service.createDispatch(
                    new QName(service.getServiceName().getNamespaceURI(), portName),
                    javax.xml.bind.JAXBContext.newInstance(objectFactory), javax.xml.ws.Service.Mode.PAYLOAD);
            configure(d, address, true);
            d.getRequestContext().put(BindingProvider.SOAPACTION_USE_PROPERTY, Boolean.TRUE);
            d.getRequestContext().put(BindingProvider.SOAPACTION_URI_PROPERTY, action);
            return d.invoke(request);
        }

        List<Object> query(SessionResourcePortType res, String expression, boolean declarePrefix) throws Exception {
            QueryExpressionType q = new QueryExpressionType();
            q.setDialect(XPATH_10);
            q.getContent().add(expression);
            QueryResourceProperties req = new QueryResourceProperties();
            req.setQueryExpression(q);
            Map<String, Object> rc = ((BindingProvider) res).getRequestContext();
            if (declarePrefix) rc.put(QueryNamespaces.PROPERTY, Map.of(QUERY_PREFIX, SYM));
            try {
                return res.queryResourceProperties(req).getContent();
            } finally {
                rc.remove(QueryNamespaces.PROPERTY);
            }
        }

        <T> T configure(T port, String address, boolean resource) {
            BindingProvider bp = (BindingProvider) port;
            Map<String, Object> rc = bp.getRequestContext();
            rc.put(BindingProvider.ENDPOINT_ADDRESS_PROPERTY, address);
            rc.put("com.sun.xml.ws.connect.timeout", 10000);
            rc.put("com.sun.xml.ws.request.timeout", 30000);
            @SuppressWarnings("rawtypes")
            List<Handler> chain = new ArrayList<>(bp.getBinding().getHandlerChain());
            // Outbound, SOAP handlers run in this order: declare, then sign, then record what is sent.
            if (resource) chain.add(new QueryNamespaces());
            chain.add(security);
            chain.add(recorder);
            bp.getBinding().setHandlerChain(chain);
            return port;
        }
    }

    // ------------------------------------------------------------------------------------------------
    // Handlers.

    /**
     * Declares namespaces on every wsrf-rp:QueryExpression of an outgoing request, from the request
     * context property PROPERTY (prefix -> namespace). The generated QueryExpressionType holds the
     * XPath as mixed content (a String), and JAXB declares no namespace for text, so the prefixes an
     * expression uses are otherwise not in scope where the proxy resolves them.
     */
    static final class QueryNamespaces implements SOAPHandler<SOAPMessageContext> {
        static final String PROPERTY = "symphony.test.queryExpressionNamespaces";

        @Override
        public Set<QName> getHeaders() {
            return Collections.emptySet();
        }

        @Override
        public boolean handleMessage(SOAPMessageContext ctx) {
            if (!Boolean.TRUE.equals(ctx.get(MessageContext.MESSAGE_OUTBOUND_PROPERTY))) return true;
            Object decls = ctx.get(PROPERTY);
            if (!(decls instanceof Map)) return true;
            try {
                SOAPMessage msg = ctx.getMessage();
                SOAPBody body = msg.getSOAPBody();
                NodeList qs = body.getElementsByTagNameNS(WSRF_RP, "QueryExpression");
                for (int i = 0; i < qs.getLength(); i++) {
                    Element q = (Element) qs.item(i);
                    for (Map.Entry<?, ?> d : ((Map<?, ?>) decls).entrySet()) {
                        q.setAttributeNS(XMLNS, "xmlns:" + d.getKey(), String.valueOf(d.getValue()));
                    }
                }
                msg.saveChanges();
            } catch (Exception e) {
                throw new javax.xml.ws.WebServiceException("declaring the QueryExpression namespaces failed: " + e, e);
            }
            return true;
        }

        @Override
        public boolean handleFault(SOAPMessageContext ctx) {
            return true;
        }

        @Override
        public void close(MessageContext ctx) {}
    }

    /** Keeps the soap:Body of the last request as sent (after signing), for the steps to inspect. */
    static final class RequestRecorder implements SOAPHandler<SOAPMessageContext> {
        private Element lastBody;

        Element body() {
            return lastBody;
        }

        @Override
        public Set<QName> getHeaders() {
            return Collections.emptySet();
        }

        @Override
        public boolean handleMessage(SOAPMessageContext ctx) {
            if (!Boolean.TRUE.equals(ctx.get(MessageContext.MESSAGE_OUTBOUND_PROPERTY))) return true;
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

        @Override
        public boolean handleFault(SOAPMessageContext ctx) {
            return true;
        }

        @Override
        public void close(MessageContext ctx) {}
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
     * Each QName-valued element of the request as sent: its text, and the namespace its prefix
     * resolves to where it is written (what the proxy must do), with where that declaration sits.
     */
    static List<Map<String, Object>> qnameRequest(Element body, String ns, String local) {
        List<Map<String, Object>> out = new ArrayList<>();
        for (Element e : descendants(body, ns, local)) {
            Map<String, Object> m = new LinkedHashMap<>();
            String text = e.getTextContent().trim();
            int colon = text.indexOf(':');
            String prefix = colon < 0 ? null : text.substring(0, colon);
            m.put("text", text);
            m.put("prefix", prefix);
            m.put("resolvesTo", e.lookupNamespaceURI(prefix));
            m.put("declaredOn", declaredOn(e, prefix));
            out.add(m);
        }
        return out;
    }

    static Map<String, Object> queryRequest(Element body) {
        Map<String, Object> m = new LinkedHashMap<>();
        List<Element> qs = descendants(body, WSRF_RP, "QueryExpression");
        if (qs.isEmpty()) return m;
        Element q = qs.get(0);
        m.put("dialect", q.getAttribute("Dialect"));
        m.put("text", q.getTextContent());
        m.put("prefixResolvesTo", q.lookupNamespaceURI(QUERY_PREFIX));
        m.put("declaredOn", declaredOn(q, QUERY_PREFIX));
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

    /** The children of the (first) named element of the request: name, nil, text. */
    static List<Map<String, Object>> children(Element body, String ns, String local) {
        List<Map<String, Object>> out = new ArrayList<>();
        List<Element> found = descendants(body, ns, local);
        if (found.isEmpty()) return out;
        for (Element c : WsSecurityPolicyHandler.children(found.get(0))) {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("name", c.getLocalName());
            String nil = c.getAttributeNS(XSI, "nil");
            m.put("nil", "true".equals(nil) || "1".equals(nil));
            m.put("text", c.getTextContent());
            out.add(m);
        }
        return out;
    }

    /** The items of an xs:any or mixed list: text, JAXB elements (name, nil, value) or DOM elements. */
    static List<Map<String, Object>> describeItems(List<Object> items) {
        List<Map<String, Object>> out = new ArrayList<>();
        for (Object o : items) {
            Map<String, Object> m = new LinkedHashMap<>();
            if (o instanceof String) {
                m.put("text", o);
            } else if (o instanceof JAXBElement) {
                JAXBElement<?> j = (JAXBElement<?>) o;
                m.put("name", j.getName().toString());
                m.put("nil", j.isNil());
                m.put("value", describeValue(j.getValue()));
            } else if (o instanceof Element) {
                Element e = (Element) o;
                m.put("name", "{" + e.getNamespaceURI() + "}" + e.getLocalName());
                m.put("dom", true);
                m.put("value", e.getTextContent());
            } else {
                m.put("javaType", o == null ? null : o.getClass().getName());
                m.put("value", describeValue(o));
            }
            out.add(m);
        }
        return out;
    }

    /** A value's text: enums by their XML value, JAXB simple-content classes by getValue(). */
    static String describeValue(Object v) {
        if (v == null) return null;
        if (v instanceof XMLGregorianCalendar) return ((XMLGregorianCalendar) v).toXMLFormat();
        try {
            Object x = v.getClass().getMethod("value").invoke(v); // JAXB enums
            return String.valueOf(x);
        } catch (ReflectiveOperationException notEnum) {
            // next
        }
        try {
            Object x = v.getClass().getMethod("getValue").invoke(v); // simpleContent classes
            return describeValue(x);
        } catch (ReflectiveOperationException notSimple) {
            // next
        }
        return v.toString();
    }

    static Map<String, Object> describeFault(String message, BaseFaultType info) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("message", message);
        if (info == null) return m;
        m.put("detail", info.getClass().getSimpleName());
        m.put("timestamp", info.getTimestamp() == null ? null : info.getTimestamp().toXMLFormat());
        if (info.getErrorCode() != null) {
            StringBuilder sb = new StringBuilder();
            for (Object c : info.getErrorCode().getContent()) sb.append(c instanceof String ? c : "");
            m.put("errorCode", sb.toString().trim());
            m.put("errorCodeDialect", info.getErrorCode().getDialect());
        }
        List<String> desc = new ArrayList<>();
        for (BaseFaultType.Description d : info.getDescription()) desc.add(d.getValue());
        m.put("description", desc);
        return m;
    }

    static String describe(Throwable e) {
        StringBuilder sb = new StringBuilder(e.getClass().getName());
        if (e.getMessage() != null) sb.append(": ").append(e.getMessage());
        if (e instanceof SOAPFaultException) {
            javax.xml.soap.SOAPFault f = ((SOAPFaultException) e).getFault();
            sb.append(" [faultcode ").append(f.getFaultCodeAsQName());
            try {
                if (f.getDetail() != null) {
                    java.util.Iterator<?> it = f.getDetail().getDetailEntries();
                    while (it.hasNext()) {
                        Object d = it.next();
                        if (d instanceof Element) {
                            Element de = (Element) d;
                            sb.append(", detail {").append(de.getNamespaceURI()).append('}').append(de.getLocalName());
                            String sep = ": ";
                            for (Element c : WsSecurityPolicyHandler.children(de)) {
                                sb.append(sep).append(c.getLocalName()).append('=').append(c.getTextContent().trim());
                                sep = ", ";
                            }
                        }
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
    // Keys and JSON (as SymphonyWsimportClient; kept here so that this file compiles on its own with
    // the handler and the suite reader).

    static X509Certificate readCert(String file) throws Exception {
        try (var in = Files.newInputStream(new File(file).toPath())) {
            return (X509Certificate) CertificateFactory.getInstance("X.509").generateCertificate(in);
        }
    }

    /** An unencrypted PKCS#8 PEM key ("BEGIN PRIVATE KEY"), RSA or EC. */
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
