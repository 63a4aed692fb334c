/*
 * A client built from `wsimport` output (JAX-WS RI, Debian's jaxws) for the WSDL a running proxy
 * serves, using WS-Enumeration in both namespaces (EnumerationSource2004PortType: Enumerate, Pull,
 * Renew, GetStatus, Release; EnumerationSource2011PortType: Enumerate with NewContext or an
 * EnumerationContext, Renew, GetStatus, Release), signed with WS-Security, every response and fault
 * held to the WSDL's algorithm suite (WsSecurityPolicyHandler, WsdlAlgorithmSuite). For each SOAP
 * version whose ports wsimport generated (SOAP 1.2 needs `wsimport -extension`):
 *   connect + createSession + sendTaskInputBatch (25 text tasks), until every task is done ->
 *   2004/09 at the session's EPR Address: Enumerate (Expires PT5M), Pull (MaxElements 4) once, the
 *     same Pull again (its reply "lost"), GetStatus, Renew, Pull to the end (no EnumerationContext,
 *     EndOfSequence); a second enumeration: Release (void), then Pull -> SOAPFaultException
 *     (wsen:InvalidEnumerationContext); Enumerate with a Filter -> wsen:FilteringNotSupported;
 *     Enumerate with an Expires in the past -> wsen:InvalidExpirationTime
 *   2011 at another session's Address (12 tasks): Enumerate(NewContext Expires PT10M, MaxItems 5),
 *     then Enumerate(EnumerationContext, MaxItems 5) to the end; and GetStatus, Renew, Release,
 *     then Enumerate with the released context -> wsen:InvalidEnumerationContext
 *   the consumer's sessions at the port's own WSDL address (…/sessions): one more session closed
 *     with DetachOnClose; Enumerate with a Filter (XPath 1.0, s:State = 'Open', the prefix declared
 *     on wsen:Filter by FILTER_NAMESPACES) and Pull to the end; the same test written without a prefix
 *     (no handler needed); no Filter; the prefixed Filter without the prefix declared (what the
 *     generated classes alone send -> wsen:CannotProcessFilter)
 *
 * Usage (the generated classes and WsSecurityPolicyHandler, WsdlAlgorithmSuite, ClientSupport and this
 * file compiled into CLASSES):
 *   java -cp CLASSES:/usr/share/java/jaxws-rt.jar SymphonyEnumerationClient --wsdl FILE --endpoint URL \
 *     --client-cert PEM --client-key PEM --response-cert PEM
 *
 * Every step runs even when an earlier one failed (where it can), so that one run shows every problem.
 * The last stdout line is one JSON object: per SOAP version, per step, "ok" and what was seen (the
 * mocha test, test/relay/wsimport-enumeration.test.ts, asserts on it). Exit 0 when every step passed
 * and every response verified, 1 otherwise, 2 on bad usage (the run, the step records, the handlers,
 * keys and JSON: ClientSupport). Only port getters and SEI methods are called, through reflection for
 * the getters, so that this file compiles against wsimport output with or without the SOAP 1.2 ports.
 *
 * The two WS-Enumeration namespaces are two Java packages with the same class names; they are written
 * out in full here (E04 = org.xmlsoap.schemas.ws._2004._09.enumeration, E11 = org.w3._2011._03.ws_enu).
 */

import java.math.BigInteger;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import javax.xml.bind.JAXBElement;
import javax.xml.datatype.DatatypeFactory;
import javax.xml.namespace.QName;
import javax.xml.soap.SOAPFault;
import javax.xml.ws.BindingProvider;
import javax.xml.ws.Holder;
import javax.xml.ws.soap.SOAPFaultException;
import javax.xml.ws.wsaddressing.W3CEndpointReference;

import org.w3c.dom.Element;

import symphony.soapproxy.v1.CloseFlags;
import symphony.soapproxy.v1.Payload;
import symphony.soapproxy.v1.SessionCreationAttributes;
import symphony.soapproxy.v1.SessionResourceProperties;
import symphony.soapproxy.v1.SessionStatus;
import symphony.soapproxy.v1.TaskOutput;
import symphony.soapproxy.v1.TaskSubmissionAttributes;
import symphony.soapproxy.wsdl.v1.ConnectionPortType;
import symphony.soapproxy.wsdl.v1.EnumerationSource2004PortType;
import symphony.soapproxy.wsdl.v1.EnumerationSource2011PortType;
import symphony.soapproxy.wsdl.v1.SessionPortType;
import symphony.soapproxy.wsdl.v1.SymphonyService;
import symphony.soapproxy.wsdl.v1.TaskInputPortType;

public final class SymphonyEnumerationClient {
    static final String SYM = "http://soapproxy.symphony/v1";
    static final String WSEN04 = "http://schemas.xmlsoap.org/ws/2004/09/enumeration";
    static final String WSEN11 = "http://www.w3.org/2011/03/ws-enu";
    static final String XPATH_10 = "http://www.w3.org/TR/1999/REC-xpath-19991116";
    /** The prefix the filter uses, declared on wsen:Filter by FILTER_NAMESPACES. */
    static final String FILTER_PREFIX = "s";
    static final String FILTER = FILTER_PREFIX + ":State = 'Open'";
    /** The same test with no prefix: what the generated classes can send without a handler. */
    static final String FILTER_NO_PREFIX = "*[namespace-uri() = '" + SYM + "' and local-name() = 'State'] = 'Open'";
    /**
     * Declares the prefixes of the request context property it names on wsen:Filter, 2004/09 and 2011
     * (JAXB writes the expression as text, and declares nothing for it).
     */
    static final ClientSupport.DeclareNamespaces FILTER_NAMESPACES = new ClientSupport.DeclareNamespaces(
            "symphony.test.filterNamespaces", "Filter", WSEN04, WSEN11);

    static final int OUTPUTS_2004 = 25;
    static final int PAGE_2004 = 4;
    static final int OUTPUTS_2011 = 12;
    static final int PAGE_2011 = 5;
    /** No enumeration here needs more requests than this; a proxy that never ends one is caught. */
    static final int MAX_PAGES = 40;

    /** The ports of one SOAP version: connection, session, task input, enumeration 2004/09 and 2011. */
    static final Map<String, List<String>> FLAVORS = new LinkedHashMap<>();

    static {
        FLAVORS.put("soap11", List.of("ConnectionPort", "SessionPort", "TaskInputPort", "EnumerationSource2004Port",
                "EnumerationSource2011Port"));
        FLAVORS.put("soap12", List.of("ConnectionPortSoap12", "SessionPortSoap12", "TaskInputPortSoap12",
                "EnumerationSource2004PortSoap12", "EnumerationSource2011PortSoap12"));
    }

    /** Every session this run created and left open, and those it detached (all flows: one consumer). */
    static final List<String> openSessions = new ArrayList<>();
    static final List<String> detachedSessions = new ArrayList<>();

    public static void main(String[] args) {
        ClientSupport.runFlows("SymphonyEnumerationClient", args, FLAVORS, "enumeration", EnumerationFlow::new);
    }

    // ------------------------------------------------------------------------------------------------

    /** One SOAP version's run; each step's record lands in `steps`. */
    static final class EnumerationFlow extends ClientSupport.Flow {
        final DatatypeFactory dt;

        ConnectionPortType conn;
        SessionPortType sessions;
        TaskInputPortType tasks;
        String connectionId;

        EnumerationFlow(String flavor, SymphonyService service, List<String> ports, String endpoint,
                WsSecurityPolicyHandler security, Map<String, Object> steps) throws Exception {
            super(flavor, service, ports, endpoint, security, steps);
            this.dt = DatatypeFactory.newInstance();
        }

        @Override
        void run() throws Exception {
            conn = configure(ClientSupport.port(service, ports.get(0), ConnectionPortType.class), endpoint, null);
            sessions = configure(ClientSupport.port(service, ports.get(1), SessionPortType.class), endpoint, null);
            tasks = configure(ClientSupport.port(service, ports.get(2), TaskInputPortType.class), endpoint, null);

            boolean connected = step("connect", rec -> {
                Holder<String> id = new Holder<>();
                Holder<W3CEndpointReference> epr = new Holder<>();
                conn.connect(null, "echo", "wsimport-enumeration", "secret", id, epr);
                connectionId = id.value;
                rec.put("connectionId", connectionId);
            });
            if (!connected) return;

            String[] a04 = new String[2]; // session id, EPR Address
            List<String> sent04 = new ArrayList<>();
            boolean ready04 = sessionWithOutputs("e04", OUTPUTS_2004, a04, sent04);
            if (ready04) enumeration2004(a04[0], a04[1]);

            String[] a11 = new String[2];
            List<String> sent11 = new ArrayList<>();
            boolean ready11 = sessionWithOutputs("e11", OUTPUTS_2011, a11, sent11);
            if (ready11) enumeration2011(a11[0], a11[1]);

            sessionEnumeration();
        }

        /**
         * createSession (its id and EPR Address into `out`), sendTaskInputBatch of `n` text tasks,
         * then getSessionStatus until every task is done. Steps `{key}.createSession`,
         * `{key}.sendTaskInputBatch`, `{key}.done`.
         */
        boolean sessionWithOutputs(String key, int n, String[] out, List<String> sentIds) {
            boolean created = step(key + ".createSession", rec -> {
                SessionCreationAttributes attrs = new SessionCreationAttributes();
                attrs.setName("wsimport-enumeration-" + key + "-" + flavor);
                Holder<String> id = new Holder<>();
                Holder<W3CEndpointReference> epr = new Holder<>();
                sessions.createSession(connectionId, attrs, id, epr);
                out[0] = id.value;
                rec.put("sessionId", id.value);
                out[1] = ClientSupport.recordEpr(rec, "createSessionResponse", epr.value);
                openSessions.add(id.value);
            });
            boolean sent = created && step(key + ".sendTaskInputBatch", rec -> {
                List<TaskSubmissionAttributes> batch = new ArrayList<>();
                List<String> texts = new ArrayList<>();
                for (int i = 0; i < n; i++) {
                    TaskSubmissionAttributes t = new TaskSubmissionAttributes();
                    String text = key + "-" + flavor + "-" + i;
                    t.setTag("t" + i);
                    Payload p = new Payload();
                    p.setText(text);
                    t.setTaskInput(p);
                    batch.add(t);
                    texts.add(text);
                }
                List<String> ids = tasks.sendTaskInputBatch(out[0], batch, null);
                sentIds.addAll(ids);
                rec.put("taskIds", ids);
                rec.put("texts", texts);
                if (ids.size() != n) throw new IllegalStateException(n + " tasks sent, " + ids.size() + " task ids back");
            });
            return sent && step(key + ".done", rec -> {
                long until = System.currentTimeMillis() + 60_000;
                SessionStatus s;
                int polls = 0;
                do {
                    if (polls++ > 0) Thread.sleep(100);
                    s = sessions.getSessionStatus(out[0]);
                } while (s.getDoneTasks() + s.getFailedTasks() < n && System.currentTimeMillis() < until);
                rec.put("polls", polls);
                rec.put("doneTasks", s.getDoneTasks());
                rec.put("failedTasks", s.getFailedTasks());
                rec.put("outputsReady", s.getOutputsReady());
                if (s.getDoneTasks() != n) throw new IllegalStateException(s.getDoneTasks() + " of " + n + " tasks done within 60 s");
            });
        }

        // --------------------------------------------------------------------------------------------
        // 2004/09 over a session's task outputs.

        void enumeration2004(String sessionId, String address) throws Exception {
            EnumerationSource2004PortType e04 = configure(
                    ClientSupport.port(service, ports.get(3), EnumerationSource2004PortType.class), address, FILTER_NAMESPACES);
            steps.put("e04.port", Map.of("port", ports.get(3), "address", address));

            org.xmlsoap.schemas.ws._2004._09.enumeration.EnumerationContextType[] held = { null };
            step("e04.Enumerate", rec -> {
                org.xmlsoap.schemas.ws._2004._09.enumeration.Enumerate req =
                        new org.xmlsoap.schemas.ws._2004._09.enumeration.Enumerate();
                // Expires is a union of xs:dateTime and xs:duration: JAXB generates a String for it.
                String expires = dt.newDuration("PT5M").toString();
                req.setExpires(expires);
                org.xmlsoap.schemas.ws._2004._09.enumeration.EnumerateResponse r = e04.enumerate(req);
                rec.put("request", ClientSupport.children(recorder.body(), WSEN04, "Enumerate", true));
                rec.put("expires", r.getExpires());
                rec.put("context", describeContext(r.getEnumerationContext() == null ? null
                        : r.getEnumerationContext().getContent()));
                rec.put("extensions", describeItems(r.getAny()));
                held[0] = r.getEnumerationContext();
                if (held[0] == null) throw new IllegalStateException("EnumerateResponse has no EnumerationContext");
            });
            if (held[0] == null) return;

            org.xmlsoap.schemas.ws._2004._09.enumeration.EnumerationContextType c0 = held[0];
            step("e04.Pull.first", rec -> {
                PullPage p = pull04(e04, c0, PAGE_2004);
                rec.putAll(p.record);
                rec.put("request", ClientSupport.children(recorder.body(), WSEN04, "Pull", true));
                held[0] = p.context;
            });
            // The reply "was lost": the same Pull, the same context.
            step("e04.Pull.repeat", rec -> {
                PullPage p = pull04(e04, c0, PAGE_2004);
                rec.putAll(p.record);
            });
            org.xmlsoap.schemas.ws._2004._09.enumeration.EnumerationContextType c1 = held[0];
            if (c1 == null) return;

            step("e04.GetStatus", rec -> {
                org.xmlsoap.schemas.ws._2004._09.enumeration.GetStatus req =
                        new org.xmlsoap.schemas.ws._2004._09.enumeration.GetStatus();
                req.setEnumerationContext(c1);
                org.xmlsoap.schemas.ws._2004._09.enumeration.GetStatusResponse r = e04.getStatus(req);
                rec.put("expires", r.getExpires());
            });
            step("e04.Renew", rec -> {
                org.xmlsoap.schemas.ws._2004._09.enumeration.Renew req =
                        new org.xmlsoap.schemas.ws._2004._09.enumeration.Renew();
                req.setEnumerationContext(c1);
                req.setExpires(dt.newDuration("PT10M").toString());
                org.xmlsoap.schemas.ws._2004._09.enumeration.RenewResponse r = e04.renew(req);
                rec.put("expires", r.getExpires());
                rec.put("context", describeContext(r.getEnumerationContext() == null ? null
                        : r.getEnumerationContext().getContent()));
                rec.put("heldContext", describeContext(c1.getContent()));
            });
            // The rest, each Pull with the context the previous reply carried.
            step("e04.Pull.rest", rec -> {
                List<Map<String, Object>> pages = new ArrayList<>();
                rec.put("pages", pages);
                org.xmlsoap.schemas.ws._2004._09.enumeration.EnumerationContextType c = c1;
                while (c != null) {
                    if (pages.size() >= MAX_PAGES) throw new IllegalStateException(MAX_PAGES + " Pulls without an end");
                    PullPage p = pull04(e04, c, PAGE_2004);
                    pages.add(p.record);
                    c = p.context;
                }
            });

            // A second enumeration of the same session (every output was delivered above): Release,
            // then a Pull with the released context.
            step("e04.Release", rec -> {
                org.xmlsoap.schemas.ws._2004._09.enumeration.EnumerateResponse e =
                        e04.enumerate(new org.xmlsoap.schemas.ws._2004._09.enumeration.Enumerate());
                org.xmlsoap.schemas.ws._2004._09.enumeration.Release req =
                        new org.xmlsoap.schemas.ws._2004._09.enumeration.Release();
                req.setEnumerationContext(e.getEnumerationContext());
                rec.put("context", describeContext(e.getEnumerationContext().getContent()));
                e04.release(req); // void: the response is an empty soap:Body
                rec.put("released", true);
                rec.put("responseBody", recorder.responseBody());
                rec.put("fault", expectFault(() -> pull04(e04, e.getEnumerationContext(), PAGE_2004)));
            });

            step("e04.Fault.Filter", rec -> {
                org.xmlsoap.schemas.ws._2004._09.enumeration.Enumerate req = filtered04(FILTER);
                rec.put("fault", withFilterPrefix(e04, () -> expectFault(() -> e04.enumerate(req))));
                rec.put("request", filterRequest(recorder.body(), WSEN04));
            });
            step("e04.Fault.PastExpires", rec -> {
                org.xmlsoap.schemas.ws._2004._09.enumeration.Enumerate req =
                        new org.xmlsoap.schemas.ws._2004._09.enumeration.Enumerate();
                req.setExpires(dt.newXMLGregorianCalendar("2001-01-01T00:00:00Z").toXMLFormat());
                rec.put("fault", expectFault(() -> e04.enumerate(req)));
                rec.put("request", ClientSupport.children(recorder.body(), WSEN04, "Enumerate", true));
            });
        }

        /** A 2004/09 Enumerate with an XPath 1.0 Filter. */
        static org.xmlsoap.schemas.ws._2004._09.enumeration.Enumerate filtered04(String expression) {
            org.xmlsoap.schemas.ws._2004._09.enumeration.FilterType f =
                    new org.xmlsoap.schemas.ws._2004._09.enumeration.FilterType();
            f.setDialect(XPATH_10);
            f.getContent().add(expression);
            org.xmlsoap.schemas.ws._2004._09.enumeration.Enumerate req =
                    new org.xmlsoap.schemas.ws._2004._09.enumeration.Enumerate();
            req.setFilter(f);
            return req;
        }

        static final class PullPage {
            final Map<String, Object> record = new LinkedHashMap<>();
            org.xmlsoap.schemas.ws._2004._09.enumeration.EnumerationContextType context;
        }

        PullPage pull04(EnumerationSource2004PortType e04,
                org.xmlsoap.schemas.ws._2004._09.enumeration.EnumerationContextType context, int max) throws Exception {
            org.xmlsoap.schemas.ws._2004._09.enumeration.Pull req = new org.xmlsoap.schemas.ws._2004._09.enumeration.Pull();
            req.setEnumerationContext(context);
            req.setMaxElements(BigInteger.valueOf(max));
            org.xmlsoap.schemas.ws._2004._09.enumeration.PullResponse r = e04.pull(req);
            PullPage p = new PullPage();
            p.context = r.getEnumerationContext();
            p.record.put("sentContext", cursorOf(context.getContent()));
            p.record.put("context", p.context == null ? null : describeContext(p.context.getContent()));
            p.record.put("items", r.getItems() == null ? null : describeItems(r.getItems().getAny()));
            p.record.put("endOfSequence", r.getEndOfSequence() != null);
            return p;
        }

        // --------------------------------------------------------------------------------------------
        // 2011 over another session's task outputs.

        void enumeration2011(String sessionId, String address) throws Exception {
            EnumerationSource2011PortType e11 = configure(
                    ClientSupport.port(service, ports.get(4), EnumerationSource2011PortType.class), address, FILTER_NAMESPACES);
            steps.put("e11.port", Map.of("port", ports.get(4), "address", address));

            Object[] held = { null };
            step("e11.Enumerate.NewContext", rec -> {
                org.w3._2011._03.ws_enu.Enumerate req = new org.w3._2011._03.ws_enu.Enumerate();
                org.w3._2011._03.ws_enu.NewContextType nc = new org.w3._2011._03.ws_enu.NewContextType();
                org.w3._2011._03.ws_enu.ExpirationType ex = new org.w3._2011._03.ws_enu.ExpirationType();
                ex.setValue(dt.newDuration("PT10M").toString());
                nc.setExpires(ex);
                req.setNewContext(nc);
                req.setMaxItems(BigInteger.valueOf(PAGE_2011));
                org.w3._2011._03.ws_enu.EnumerateResponse r = e11.enumerate(req);
                rec.put("request", ClientSupport.children(recorder.body(), WSEN11, "Enumerate", true));
                rec.put("grantedExpires", r.getGrantedExpires() == null ? null : r.getGrantedExpires().getValue());
                rec.putAll(page11(r));
                held[0] = r.getEnumerationContext();
            });
            org.w3._2011._03.ws_enu.EnumerationContextType first = (org.w3._2011._03.ws_enu.EnumerationContextType) held[0];
            step("e11.Enumerate.EnumerationContext", rec -> {
                List<Map<String, Object>> pages = new ArrayList<>();
                rec.put("pages", pages);
                org.w3._2011._03.ws_enu.EnumerationContextType c = first;
                while (c != null) {
                    if (pages.size() >= MAX_PAGES) throw new IllegalStateException(MAX_PAGES + " Enumerates without an end");
                    org.w3._2011._03.ws_enu.Enumerate req = new org.w3._2011._03.ws_enu.Enumerate();
                    req.setEnumerationContext(c);
                    req.setMaxItems(BigInteger.valueOf(PAGE_2011));
                    org.w3._2011._03.ws_enu.EnumerateResponse r = e11.enumerate(req);
                    Map<String, Object> page = page11(r);
                    page.put("sentContext", cursorOf(c.getContent()));
                    page.put("grantedExpires", r.getGrantedExpires() == null ? null : r.getGrantedExpires().getValue());
                    pages.add(page);
                    c = r.getEnumerationContext();
                }
            });
            // The other operations of the port type, on a new context (MaxItems 0: no page in the answer).
            step("e11.GetStatus.Renew.Release", rec -> {
                org.w3._2011._03.ws_enu.Enumerate req = new org.w3._2011._03.ws_enu.Enumerate();
                req.setNewContext(new org.w3._2011._03.ws_enu.NewContextType());
                req.setMaxItems(BigInteger.ZERO);
                org.w3._2011._03.ws_enu.EnumerateResponse e = e11.enumerate(req);
                org.w3._2011._03.ws_enu.EnumerationContextType c = e.getEnumerationContext();
                rec.put("enumerate", page11(e));
                if (c == null) throw new IllegalStateException("EnumerateResponse(MaxItems 0) has no EnumerationContext");

                org.w3._2011._03.ws_enu.GetStatus gs = new org.w3._2011._03.ws_enu.GetStatus();
                gs.setEnumerationContext(c);
                org.w3._2011._03.ws_enu.GetStatusResponse s = e11.getStatus(gs);
                rec.put("getStatusGrantedExpires", s.getGrantedExpires() == null ? null : s.getGrantedExpires().getValue());

                org.w3._2011._03.ws_enu.Renew rn = new org.w3._2011._03.ws_enu.Renew();
                rn.setEnumerationContext(c);
                org.w3._2011._03.ws_enu.ExpirationType ex = new org.w3._2011._03.ws_enu.ExpirationType();
                ex.setValue(dt.newDuration("PT1H").toString());
                rn.setExpires(ex);
                org.w3._2011._03.ws_enu.RenewResponse r = e11.renew(rn);
                rec.put("renewGrantedExpires", r.getGrantedExpires() == null ? null : r.getGrantedExpires().getValue());

                org.w3._2011._03.ws_enu.Release rl = new org.w3._2011._03.ws_enu.Release();
                rl.setEnumerationContext(c);
                org.w3._2011._03.ws_enu.ReleaseResponse rr = e11.release(rl);
                rec.put("releaseResponse", rr == null ? null : rr.getClass().getName());

                org.w3._2011._03.ws_enu.Enumerate after = new org.w3._2011._03.ws_enu.Enumerate();
                after.setEnumerationContext(c);
                after.setMaxItems(BigInteger.valueOf(PAGE_2011));
                rec.put("fault", expectFault(() -> e11.enumerate(after)));
            });
        }

        Map<String, Object> page11(org.w3._2011._03.ws_enu.EnumerateResponse r) {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("context", r.getEnumerationContext() == null ? null : describeContext(r.getEnumerationContext().getContent()));
            m.put("items", r.getItems() == null ? null : describeItems(r.getItems().getAny()));
            m.put("endOfSequence", r.getEndOfSequence() != null);
            return m;
        }

        // --------------------------------------------------------------------------------------------
        // 2004/09 over the consumer's sessions.

        void sessionEnumeration() throws Exception {
            EnumerationSource2004PortType e04 = ClientSupport.port(service, ports.get(3), EnumerationSource2004PortType.class);
            // The port's own address, from the WSDL: …/sessions.
            String address = (String) ((BindingProvider) e04).getRequestContext().get(BindingProvider.ENDPOINT_ADDRESS_PROPERTY);
            configure(e04, address, FILTER_NAMESPACES);
            steps.put("sessions.port", Map.of("port", ports.get(3), "address", String.valueOf(address)));

            // A session of this consumer that is not Open: the filter must leave it out.
            step("sessions.detached", rec -> {
                SessionCreationAttributes attrs = new SessionCreationAttributes();
                attrs.setName("wsimport-enumeration-detached-" + flavor);
                Holder<String> id = new Holder<>();
                Holder<W3CEndpointReference> epr = new Holder<>();
                sessions.createSession(connectionId, attrs, id, epr);
                sessions.closeSession(id.value, CloseFlags.DETACH_ON_CLOSE);
                detachedSessions.add(id.value);
                rec.put("sessionId", id.value);
            });

            step("sessions.filtered", rec -> {
                rec.put("openSessions", new ArrayList<>(openSessions));
                rec.put("detachedSessions", new ArrayList<>(detachedSessions));
                org.xmlsoap.schemas.ws._2004._09.enumeration.Enumerate req = filtered04(FILTER);
                org.xmlsoap.schemas.ws._2004._09.enumeration.EnumerateResponse e =
                        withFilterPrefix(e04, () -> e04.enumerate(req));
                rec.put("request", filterRequest(recorder.body(), WSEN04));
                rec.putAll(pullAll(e04, e.getEnumerationContext()));
            });
            step("sessions.unfiltered", rec -> {
                org.xmlsoap.schemas.ws._2004._09.enumeration.EnumerateResponse e =
                        e04.enumerate(new org.xmlsoap.schemas.ws._2004._09.enumeration.Enumerate());
                rec.putAll(pullAll(e04, e.getEnumerationContext()));
            });
            // Without a handler: the same test written without a prefix.
            step("sessions.filtered.noPrefix", rec -> {
                org.xmlsoap.schemas.ws._2004._09.enumeration.Enumerate req = filtered04(FILTER_NO_PREFIX);
                org.xmlsoap.schemas.ws._2004._09.enumeration.EnumerateResponse e = e04.enumerate(req);
                rec.put("request", filterRequest(recorder.body(), WSEN04));
                rec.putAll(pullAll(e04, e.getEnumerationContext()));
            });
            // What the generated classes alone send: the Filter's text uses a prefix nothing declares.
            step("sessions.undeclaredPrefix", rec -> {
                org.xmlsoap.schemas.ws._2004._09.enumeration.Enumerate req = filtered04(FILTER);
                rec.put("fault", expectFault(() -> e04.enumerate(req)));
                rec.put("request", filterRequest(recorder.body(), WSEN04));
            });
        }

        /** Pulls (MaxElements 10) until no context: the pages, and every item in order. */
        Map<String, Object> pullAll(EnumerationSource2004PortType e04,
                org.xmlsoap.schemas.ws._2004._09.enumeration.EnumerationContextType first) throws Exception {
            Map<String, Object> m = new LinkedHashMap<>();
            List<Map<String, Object>> pages = new ArrayList<>();
            List<Object> items = new ArrayList<>();
            m.put("pages", pages);
            m.put("items", items);
            org.xmlsoap.schemas.ws._2004._09.enumeration.EnumerationContextType c = first;
            if (c == null) throw new IllegalStateException("EnumerateResponse has no EnumerationContext");
            while (c != null) {
                if (pages.size() >= MAX_PAGES) throw new IllegalStateException(MAX_PAGES + " Pulls without an end");
                PullPage p = pull04(e04, c, 10);
                Object got = p.record.remove("items");
                if (got instanceof List) items.addAll((List<?>) got);
                p.record.put("count", got instanceof List ? ((List<?>) got).size() : 0);
                pages.add(p.record);
                c = p.context;
            }
            return m;
        }

        /** The call, with the filter's prefix declared on wsen:Filter by FILTER_NAMESPACES. */
        <T> T withFilterPrefix(Object port, ClientSupport.Call<T> call) throws Exception {
            return ClientSupport.withRequestProperty(port, FILTER_NAMESPACES.property, Map.of(FILTER_PREFIX, SYM), call);
        }

        /**
         * The SOAP fault the call must end with: the fault as JAX-WS delivers it. Any answer, and any
         * exception that is not a fault from the service (a refused signature, a transport error), is
         * thrown on.
         */
        Map<String, Object> expectFault(ClientSupport.Call<?> call) throws Exception {
            Object answer;
            try {
                answer = call.call();
            } catch (SOAPFaultException e) {
                return faultOf(e);
            } catch (Exception e) {
                // A fault the WSDL declares comes back as its generated checked exception.
                if (e.getClass().getPackage() != null
                        && e.getClass().getPackage().getName().equals(SymphonyService.class.getPackage().getName())) {
                    return faultOf(e);
                }
                throw e;
            }
            throw new IllegalStateException("expected a SOAP fault, got an answer: "
                    + (answer == null ? "null" : answer.getClass().getName()));
        }
    }

    /** The wsen:Filter as sent: dialect, text, and where its prefix is declared. */
    static Map<String, Object> filterRequest(Element body, String ns) {
        return ClientSupport.expressionRequest(body, ns, "Filter", FILTER_PREFIX);
    }

    /** The proxy's cursor inside an EnumerationContext's content (sym:EnumerationCursor, or text). */
    static String cursorOf(List<Object> content) {
        if (content == null) return null;
        StringBuilder text = new StringBuilder();
        for (Object o : content) {
            if (o instanceof JAXBElement && new QName(SYM, "EnumerationCursor").equals(((JAXBElement<?>) o).getName())) {
                return String.valueOf(((JAXBElement<?>) o).getValue());
            }
            if (o instanceof Element && SYM.equals(((Element) o).getNamespaceURI())
                    && "EnumerationCursor".equals(((Element) o).getLocalName())) {
                return ((Element) o).getTextContent();
            }
            if (o instanceof String) text.append(o);
        }
        String t = text.toString().trim();
        return t.isEmpty() ? null : t;
    }

    /** How JAXB gave back an EnumerationContext: the Java type of each content item, and the cursor. */
    static Map<String, Object> describeContext(List<Object> content) {
        if (content == null) return null;
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("content", describeItems(content));
        m.put("cursor", cursorOf(content));
        return m;
    }

    /** The items of an xs:any or mixed list: what JAXB made of each, and what it says. */
    static List<Map<String, Object>> describeItems(List<Object> items) {
        List<Map<String, Object>> out = new ArrayList<>();
        for (Object o : items) {
            Map<String, Object> m = new LinkedHashMap<>();
            Object v = o;
            if (o instanceof String) {
                m.put("javaType", "java.lang.String");
                m.put("text", o);
                out.add(m);
                continue;
            }
            if (o instanceof JAXBElement) {
                JAXBElement<?> j = (JAXBElement<?>) o;
                v = j.getValue();
                m.put("javaType", "javax.xml.bind.JAXBElement<" + (v == null ? j.getDeclaredType().getName() : v.getClass().getName()) + ">");
                m.put("name", j.getName().toString());
            } else if (o instanceof Element) {
                Element e = (Element) o;
                m.put("javaType", "org.w3c.dom.Element");
                m.put("name", "{" + e.getNamespaceURI() + "}" + e.getLocalName());
                m.put("text", e.getTextContent());
            } else {
                m.put("javaType", o == null ? null : o.getClass().getName());
            }
            if (v instanceof TaskOutput) {
                TaskOutput t = (TaskOutput) v;
                m.put("taskId", t.getTaskId());
                m.put("tag", t.getTag());
                m.put("successful", t.isSuccessful());
                m.put("text", t.getTaskOutput() == null ? null : t.getTaskOutput().getText());
            } else if (v instanceof SessionResourceProperties) {
                SessionResourceProperties s = (SessionResourceProperties) v;
                m.put("sessionId", s.getSessionId());
                m.put("state", s.getState() == null ? null : s.getState().value());
                m.put("name", s.getName());
                m.put("owner", s.getOwner());
                m.put("connectionId", s.getConnectionId());
            } else if (v instanceof String) {
                m.put("value", v);
            }
            out.add(m);
        }
        return out;
    }

    /** A fault as the client got it: the exception, [Code] (and SOAP 1.2 [Subcode]s), [Reason], detail. */
    static Map<String, Object> faultOf(Exception e) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("javaType", e.getClass().getName());
        m.put("soapFaultException", e instanceof SOAPFaultException);
        m.put("message", e.getMessage());
        SOAPFault f = e instanceof SOAPFaultException ? ((SOAPFaultException) e).getFault() : null;
        if (f == null) return m;
        m.put("code", String.valueOf(f.getFaultCodeAsQName()));
        m.put("subcodes", ClientSupport.subcodes(f));
        m.put("reason", f.getFaultString());
        List<String> detail = new ArrayList<>();
        Map<String, String> fields = new LinkedHashMap<>();
        for (Element de : ClientSupport.detailEntries(f)) {
            detail.add("{" + de.getNamespaceURI() + "}" + de.getLocalName());
            for (Element c : WsSecurityPolicyHandler.children(de)) fields.put(c.getLocalName(), c.getTextContent().trim());
        }
        m.put("detail", detail);
        m.put("detailFields", fields);
        return m;
    }
}
