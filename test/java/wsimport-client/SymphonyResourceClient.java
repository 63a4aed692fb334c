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
 * Usage (the generated classes and WsSecurityPolicyHandler, WsdlAlgorithmSuite, ClientSupport and this
 * file compiled into CLASSES):
 *   java -cp CLASSES:/usr/share/java/jaxws-rt.jar SymphonyResourceClient --wsdl FILE --endpoint URL \
 *     --client-cert PEM --client-key PEM --response-cert PEM
 *
 * Every step runs even when an earlier one failed (where it can), so that one run shows every problem.
 * The last stdout line is one JSON object: per SOAP version, per step, "ok" and what was seen (the
 * mocha test asserts on it). Exit 0 when every step passed and every response verified, 1 otherwise,
 * 2 on bad usage (the run, the step records, the handlers, keys and JSON: ClientSupport). Only port
 * getters and SEI methods are called, through reflection for the getters, so that this file compiles
 * against wsimport output with or without the SOAP 1.2 ports.
 */

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import javax.xml.bind.JAXBElement;
import javax.xml.datatype.DatatypeFactory;
import javax.xml.datatype.Duration;
import javax.xml.datatype.XMLGregorianCalendar;
import javax.xml.namespace.QName;
import javax.xml.ws.BindingProvider;
import javax.xml.ws.Holder;
import javax.xml.ws.wsaddressing.W3CEndpointReference;

import org.oasis_open.docs.wsrf.bf_2.BaseFaultType;
import org.oasis_open.docs.wsrf.rl_2.SetTerminationTime;
import org.oasis_open.docs.wsrf.rl_2.SetTerminationTimeResponse;
import org.oasis_open.docs.wsrf.rp_2.GetMultipleResourceProperties;
import org.oasis_open.docs.wsrf.rp_2.GetResourcePropertyDocument;
import org.oasis_open.docs.wsrf.rp_2.QueryExpressionType;
import org.oasis_open.docs.wsrf.rp_2.QueryResourceProperties;
import org.w3c.dom.Element;

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
    static final String WSRF_RP = "http://docs.oasis-open.org/wsrf/rp-2";
    static final String WSRF_RL = "http://docs.oasis-open.org/wsrf/rl-2";
    static final String XPATH_10 = "http://www.w3.org/TR/1999/REC-xpath-19991116";
    /** The prefix the XPath expressions use, declared on QueryExpression by QUERY_NAMESPACES. */
    static final String QUERY_PREFIX = "s";
    /**
     * Declares the prefixes of the request context property it names on wsrf-rp:QueryExpression (JAXB
     * writes the expression as text, and declares nothing for it).
     */
    static final ClientSupport.DeclareNamespaces QUERY_NAMESPACES = new ClientSupport.DeclareNamespaces(
            "symphony.test.queryExpressionNamespaces", "QueryExpression", WSRF_RP);

    /** The ports of one SOAP version: connection, session, session resource, connection resource. */
    static final Map<String, List<String>> FLAVORS = new LinkedHashMap<>();

    static {
        FLAVORS.put("soap11", List.of("ConnectionPort", "SessionPort", "SessionResourcePort", "ConnectionResourcePort"));
        FLAVORS.put("soap12", List.of("ConnectionPortSoap12", "SessionPortSoap12", "SessionResourcePortSoap12",
                "ConnectionResourcePortSoap12"));
    }

    public static void main(String[] args) {
        ClientSupport.runFlows("SymphonyResourceClient", args, FLAVORS, "resource", ResourceFlow::new);
    }

    // ------------------------------------------------------------------------------------------------

    /** One SOAP version's run; each step's record lands in `steps`. */
    static final class ResourceFlow extends ClientSupport.Flow {
        String connectionId;
        String sessionId;
        String sessionAddress;
        String connectionAddress;

        ResourceFlow(String flavor, SymphonyService service, List<String> ports, String endpoint,
                WsSecurityPolicyHandler security, Map<String, Object> steps) {
            super(flavor, service, ports, endpoint, security, steps);
        }

        @Override
        void run() throws Exception {
            ConnectionPortType conn = configure(
                    ClientSupport.port(service, ports.get(0), ConnectionPortType.class), endpoint, null);
            SessionPortType sessions = configure(
                    ClientSupport.port(service, ports.get(1), SessionPortType.class), endpoint, null);

            boolean connected = step("connect", rec -> {
                Holder<String> id = new Holder<>();
                Holder<W3CEndpointReference> epr = new Holder<>();
                conn.connect(null, "echo", "wsimport-resources", "secret", id, epr);
                connectionId = id.value;
                rec.put("connectionId", connectionId);
                connectionAddress = ClientSupport.recordEpr(rec, "connectResponse", epr.value);
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
                sessionAddress = ClientSupport.recordEpr(rec, "createSessionResponse", epr.value);
            });

            if (created && sessionAddress != null) sessionSteps();
            if (connected && connectionAddress != null) connectionSteps();
        }

        void sessionSteps() throws Exception {
            SessionResourcePortType res = resourcePort("sessionPort", 2, SessionResourcePortType.class, sessionAddress);

            step("session.GetResourcePropertyDocument", rec -> {
                SessionResourceProperties d = propertiesDocument(
                        res.getResourcePropertyDocument(new GetResourcePropertyDocument()).getAny(), SessionResourceProperties.class, rec);
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

            // XPath 1.0: the prefix must be declared on QueryExpression; QUERY_NAMESPACES does that.
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
                    rec.put("request", ClientSupport.children(recorder.body(), WSRF_RL, "SetTerminationTime", false));
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
                rec.put("request", ClientSupport.children(recorder.body(), WSRF_RL, "SetTerminationTime", false));
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
                    rec.put("request", ClientSupport.children(recorder.body(), WSRF_RL, "SetTerminationTime", false));
                }
            });

            step("session.Destroy", rec -> res.destroy());
            step("session.afterDestroy",
                    rec -> expectResourceUnknown(rec, () -> res.getResourceProperty(new QName(SYM, "State")).getAny()));
        }

        void connectionSteps() throws Exception {
            ConnectionResourcePortType res =
                    resourcePort("connectionPort", 3, ConnectionResourcePortType.class, connectionAddress);

            step("connection.GetResourceProperty", rec -> {
                List<Object> items = res.getResourceProperty(new QName(SYM, "ConnectionId")).getAny();
                rec.put("items", describeItems(items));
                rec.put("request", qnameRequest(recorder.body(), WSRF_RP, "GetResourceProperty"));
            });
            step("connection.GetResourcePropertyDocument", rec -> {
                ConnectionResourceProperties d = propertiesDocument(
                        res.getResourcePropertyDocument(new GetResourcePropertyDocument()).getAny(), ConnectionResourceProperties.class, rec);
                rec.put("connectionId", d.getConnectionId());
                rec.put("applicationName", d.getApplicationName());
            });
            step("connection.Destroy", rec -> res.destroy());
            step("connection.afterDestroy",
                    rec -> expectResourceUnknown(rec, () -> res.getResourceProperty(new QName(SYM, "ConnectionId")).getAny()));
        }

        /** The resource port `ports[index]` at the resource's `address`, recorded under `key`. */
        <T> T resourcePort(String key, int index, Class<T> type, String address) throws Exception {
            T res = configure(ClientSupport.port(service, ports.get(index), type), address, QUERY_NAMESPACES);
            steps.put(key, Map.of("port", ports.get(index), "address", address));
            return res;
        }

        /** The properties document, asserted to be a `type`; its Java type goes into the record. */
        <T> T propertiesDocument(Object any, Class<T> type, Map<String, Object> rec) {
            rec.put("javaType", any == null ? null : any.getClass().getName());
            if (!type.isInstance(any)) {
                throw new IllegalStateException("the document is not a " + type.getSimpleName() + ": " + describeValue(any));
            }
            return type.cast(any);
        }

        /** A read after Destroy: it must end with ResourceUnknownFault (the checked exception), recorded as "fault". */
        void expectResourceUnknown(Map<String, Object> rec, ClientSupport.Call<List<Object>> read) throws Exception {
            try {
                List<Object> items = read.call();
                throw new IllegalStateException("expected ResourceUnknownFault, got " + describeItems(items));
            } catch (ResourceUnknownFault f) {
                rec.put("fault", describeFault(f.getMessage(), f.getFaultInfo()));
            }
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
            configure(d, address, QUERY_NAMESPACES);
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
            if (!declarePrefix) return res.queryResourceProperties(req).getContent();
            return ClientSupport.withRequestProperty(res, QUERY_NAMESPACES.property, Map.of(QUERY_PREFIX, SYM),
                    () -> res.queryResourceProperties(req).getContent());
        }
    }

    /**
     * Each QName-valued element of the request as sent: its text, and the namespace its prefix
     * resolves to where it is written (what the proxy must do), with where that declaration sits.
     */
    static List<Map<String, Object>> qnameRequest(Element body, String ns, String local) {
        List<Map<String, Object>> out = new ArrayList<>();
        for (Element e : ClientSupport.descendants(body, ns, local)) {
            Map<String, Object> m = new LinkedHashMap<>();
            String text = e.getTextContent().trim();
            int colon = text.indexOf(':');
            String prefix = colon < 0 ? null : text.substring(0, colon);
            m.put("text", text);
            m.put("prefix", prefix);
            m.put("resolvesTo", e.lookupNamespaceURI(prefix));
            m.put("declaredOn", ClientSupport.declaredOn(e, prefix));
            out.add(m);
        }
        return out;
    }

    static Map<String, Object> queryRequest(Element body) {
        return ClientSupport.expressionRequest(body, WSRF_RP, "QueryExpression", QUERY_PREFIX);
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
}
