/*
 * A WS-BaseNotification 1.3 subscriber built from `wsimport` output (JAX-WS RI, Debian's jaxws) for the
 * WSDL a running proxy serves, signing every request with WS-Security and holding every response to the
 * WSDL's algorithm suite (WsSecurityPolicyHandler, WsdlAlgorithmSuite; keys, handlers and JSON:
 * ClientSupport). Subscribe itself is SubscribeExample.subscribe (the README's Java example).
 *
 * Driven one command per stdin line, so that the mocha test (test/relay/wsimport-notifications.test.ts)
 * can watch the consumers between steps; one JSON line per command on stdout:
 *   open                         connect + createSession (SOAP 1.1 ports) -> ids, the session's EPR Address
 *   subscribe URL                SubscribeExample.subscribe at the session's Address, consumer URL
 *   subscribe-jaxb-topic URL     the same, the TopicExpression as a JAXBElement<TopicExpressionType>
 *   send N TAG                   sendTaskInputBatch of N text tasks (TAG-1 .. TAG-N) -> their task ids
 *   renew ADDRESS TIME           Renew(TerminationTime = TIME) at a SubscriptionReference Address
 *   pause | resume | unsubscribe ADDRESS
 *   quit                         the WS-Security counts, then exit 0
 * Each answer: {"cmd", "ok", what was seen, or "error" and "fault" (a declared fault's class, its
 * wsrf-bf ErrorCode and Description), "requestsSigned", "responsesVerified"}.
 *
 * Usage (the generated classes and this directory's support files compiled into CLASSES):
 *   java -cp CLASSES:/usr/share/java/jaxws-rt.jar SymphonyNotificationClient --wsdl FILE --endpoint URL \
 *     --client-cert PEM --client-key PEM --response-cert PEM
 * Only SOAP 1.1 ports are used (the consumers take SOAP 1.1, and a subscription's Notify messages use the
 * SOAP version of its Subscribe), so this compiles against wsimport output with or without -extension.
 */

import java.io.BufferedReader;
import java.io.File;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;

import javax.xml.datatype.XMLGregorianCalendar;
import javax.xml.ws.BindingProvider;
import javax.xml.ws.Holder;
import javax.xml.ws.wsaddressing.W3CEndpointReference;
import javax.xml.ws.wsaddressing.W3CEndpointReferenceBuilder;

import org.oasis_open.docs.wsn.b_2.FilterType;
import org.oasis_open.docs.wsn.b_2.ObjectFactory;
import org.oasis_open.docs.wsn.b_2.PauseSubscription;
import org.oasis_open.docs.wsn.b_2.Renew;
import org.oasis_open.docs.wsn.b_2.RenewResponse;
import org.oasis_open.docs.wsn.b_2.ResumeSubscription;
import org.oasis_open.docs.wsn.b_2.Subscribe;
import org.oasis_open.docs.wsn.b_2.SubscribeResponse;
import org.oasis_open.docs.wsn.b_2.TopicExpressionType;
import org.oasis_open.docs.wsn.b_2.Unsubscribe;
import org.oasis_open.docs.wsrf.bf_2.BaseFaultType;
import org.w3c.dom.Element;

import symphony.soapproxy.v1.Payload;
import symphony.soapproxy.v1.SessionCreationAttributes;
import symphony.soapproxy.v1.TaskSubmissionAttributes;
import symphony.soapproxy.wsdl.v1.ConnectionPortType;
import symphony.soapproxy.wsdl.v1.NotificationProducerPortType;
import symphony.soapproxy.wsdl.v1.SessionPortType;
import symphony.soapproxy.wsdl.v1.SubscriptionManagerPortType;
import symphony.soapproxy.wsdl.v1.SymphonyService;
import symphony.soapproxy.wsdl.v1.TaskInputPortType;

public final class SymphonyNotificationClient {
    static final String CLIENT = "SymphonyNotificationClient";
    static final List<String> PORTS = List.of("ConnectionPort", "SessionPort", "TaskInputPort",
            "NotificationProducerPort", "SubscriptionManagerPort");

    final SymphonyService service;
    final String endpoint;
    final WsSecurityPolicyHandler security;
    final ClientSupport.RequestRecorder recorder = new ClientSupport.RequestRecorder();
    final ConnectionPortType connections;
    final SessionPortType sessions;
    final TaskInputPortType input;
    final NotificationProducerPortType producer;
    final SubscriptionManagerPortType manager;
    String connectionId;
    String sessionId;
    String sessionAddress;

    SymphonyNotificationClient(SymphonyService service, String endpoint, WsSecurityPolicyHandler security) {
        this.service = service;
        this.endpoint = endpoint;
        this.security = security;
        connections = ClientSupport.configure(service.getConnectionPort(), endpoint, security, recorder);
        sessions = ClientSupport.configure(service.getSessionPort(), endpoint, security, recorder);
        input = ClientSupport.configure(service.getTaskInputPort(), endpoint, security, recorder);
        // Their addresses are the resources' own, set per call (SubscribeExample).
        producer = ClientSupport.configure(service.getNotificationProducerPort(), endpoint, security, recorder);
        manager = ClientSupport.configure(service.getSubscriptionManagerPort(), endpoint, security, recorder);
    }

    public static void main(String[] args) {
        Map<String, String> opt = ClientSupport.options(CLIENT, args);
        WsSecurityPolicyHandler handler = null;
        try {
            File wsdl = new File(opt.get("--wsdl"));
            handler = ClientSupport.handler(ClientSupport.policy(wsdl, PORTS), opt);
            ClientSupport.step = "service";
            SymphonyNotificationClient client =
                    new SymphonyNotificationClient(new SymphonyService(wsdl.toURI().toURL()), opt.get("--endpoint"), handler);
            Map<String, Object> ready = new LinkedHashMap<>();
            ready.put("cmd", "ready");
            ready.put("ok", true);
            ready.putAll(ClientSupport.summary); // the policy read from the WSDL
            print(ready);
            BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
            for (String line; (line = in.readLine()) != null;) {
                if (line.trim().isEmpty()) continue;
                if (line.trim().equals("quit")) break;
                print(client.command(line.trim().split("\\s+")));
            }
            ClientSupport.summary.put("ok", true);
        } catch (Throwable e) {
            ClientSupport.failed(CLIENT, e);
        }
        ClientSupport.summary.put("cmd", "quit");
        ClientSupport.finish(handler, Boolean.TRUE.equals(ClientSupport.summary.get("ok")) ? 0 : 1);
    }

    static void print(Map<String, Object> m) {
        System.out.println(ClientSupport.json(m));
        System.out.flush();
    }

    interface Body {
        void run(Map<String, Object> rec) throws Exception;
    }

    /** One command: never throws; a failure is recorded with why. */
    Map<String, Object> command(String[] words) {
        Map<String, Object> rec = new LinkedHashMap<>();
        rec.put("cmd", words[0]);
        rec.put("ok", false);
        int signed = security.requestsSigned;
        int verified = security.responsesVerified;
        security.lastRejection = null;
        try {
            run(words).run(rec);
            rec.put("ok", true);
        } catch (Throwable e) {
            rec.put("error", ClientSupport.describe(e));
            Map<String, Object> fault = describeFault(e);
            if (fault != null) rec.put("fault", fault);
            if (security.lastRejection != null) rec.put("rejection", security.lastRejection.getMessage());
        }
        rec.put("requestsSigned", security.requestsSigned - signed);
        rec.put("responsesVerified", security.responsesVerified - verified);
        return rec;
    }

    Body run(String[] w) {
        switch (w[0]) {
            case "open":
                return this::open;
            case "subscribe":
                return rec -> recordSubscribe(rec, SubscribeExample.subscribe(producer, sessionAddress, arg(w, 1)));
            case "subscribe-jaxb-topic":
                return rec -> recordSubscribe(rec, subscribeWithJaxbTopic(arg(w, 1)));
            case "send":
                return rec -> send(rec, Integer.parseInt(arg(w, 1)), arg(w, 2));
            case "renew":
                return rec -> {
                    Renew renew = new Renew();
                    renew.setTerminationTime(arg(w, 2)); // a String: the same dateTime-or-duration union
                    RenewResponse r = at(arg(w, 1)).renew(renew);
                    rec.put("request", ClientSupport.children(recorder.body(), SubscribeExample.WSNT, "Renew", false));
                    rec.put("terminationTime", xml(r.getTerminationTime()));
                    rec.put("currentTime", xml(r.getCurrentTime()));
                };
            case "pause":
                return rec -> {
                    at(arg(w, 1)).pauseSubscription(new PauseSubscription());
                    rec.put("response", recorder.responseBody());
                };
            case "resume":
                return rec -> {
                    at(arg(w, 1)).resumeSubscription(new ResumeSubscription());
                    rec.put("response", recorder.responseBody());
                };
            case "unsubscribe":
                return rec -> {
                    at(arg(w, 1)).unsubscribe(new Unsubscribe());
                    rec.put("response", recorder.responseBody());
                };
            default:
                return rec -> {
                    throw new IllegalArgumentException("unknown command " + w[0]);
                };
        }
    }

    static String arg(String[] w, int i) {
        if (i >= w.length) throw new IllegalArgumentException(w[0] + ": argument " + i + " is missing");
        return w[i];
    }

    void open(Map<String, Object> rec) throws Exception {
        Holder<String> cid = new Holder<>();
        connections.connect(null, "echo", "wsimport-notifications", "secret", cid, new Holder<W3CEndpointReference>());
        connectionId = cid.value;
        SessionCreationAttributes attrs = new SessionCreationAttributes();
        attrs.setName("wsimport-notifications");
        Holder<String> sid = new Holder<>();
        Holder<W3CEndpointReference> epr = new Holder<>();
        sessions.createSession(connectionId, attrs, sid, epr);
        sessionId = sid.value;
        rec.put("connectionId", connectionId);
        rec.put("sessionId", sessionId);
        sessionAddress = ClientSupport.recordEpr(rec, "createSessionResponse", epr.value);
    }

    /**
     * The alternative SubscribeExample explains away: the generated TopicExpressionType in a JAXBElement,
     * its text "sym:TaskOutputAvailable", and nothing that declares "sym".
     */
    SubscribeResponse subscribeWithJaxbTopic(String consumerUrl) throws Exception {
        ((BindingProvider) producer).getRequestContext().put(BindingProvider.ENDPOINT_ADDRESS_PROPERTY, sessionAddress);
        ObjectFactory wsnt = new ObjectFactory();
        TopicExpressionType topic = new TopicExpressionType();
        topic.setDialect(SubscribeExample.SIMPLE_DIALECT);
        topic.getContent().add("sym:TaskOutputAvailable");
        FilterType filter = new FilterType();
        filter.getAny().add(wsnt.createTopicExpression(topic));
        Subscribe request = new Subscribe();
        request.setConsumerReference(new W3CEndpointReferenceBuilder().address(consumerUrl).build());
        request.setFilter(filter);
        request.setInitialTerminationTime(wsnt.createSubscribeInitialTerminationTime("PT10M"));
        return producer.subscribe(request);
    }

    /** What the Subscribe request carried (as signed and sent), and what its answer says. */
    void recordSubscribe(Map<String, Object> rec, SubscribeResponse r) throws Exception {
        rec.put("request", subscribeRequest());
        Map<String, Object> epr = ClientSupport.readEpr(r.getSubscriptionReference());
        rec.put("subscriptionReference", epr);
        rec.put("address", SubscribeExample.addressOf(r.getSubscriptionReference()));
        rec.put("currentTime", xml(r.getCurrentTime()));
        rec.put("terminationTime", xml(r.getTerminationTime()));
    }

    /** The request's TopicExpression (text, Dialect, what "sym" resolves to there), consumer and time. */
    Map<String, Object> subscribeRequest() {
        Map<String, Object> m = new LinkedHashMap<>();
        Element body = recorder.body();
        m.put("endpoint", ((BindingProvider) producer).getRequestContext().get(BindingProvider.ENDPOINT_ADDRESS_PROPERTY));
        if (body == null) return m;
        List<Element> topics = ClientSupport.descendants(body, SubscribeExample.WSNT, "TopicExpression");
        if (!topics.isEmpty()) {
            Element t = topics.get(0);
            m.put("topicExpression", t.getTextContent());
            m.put("dialect", t.getAttribute("Dialect"));
            m.put("symResolvesTo", t.lookupNamespaceURI("sym"));
            m.put("symDeclaredOn", ClientSupport.declaredOn(t, "sym"));
        }
        List<Element> consumer = ClientSupport.descendants(body, SubscribeExample.WSNT, "ConsumerReference");
        if (!consumer.isEmpty()) {
            Element a = ClientSupport.first(consumer.get(0), ClientSupport.WSA, "Address");
            m.put("consumerAddress", a == null ? null : a.getTextContent().trim());
        }
        List<Element> initial = ClientSupport.descendants(body, SubscribeExample.WSNT, "InitialTerminationTime");
        m.put("initialTerminationTime", initial.isEmpty() ? null : initial.get(0).getTextContent());
        return m;
    }

    void send(Map<String, Object> rec, int n, String tag) throws Exception {
        List<TaskSubmissionAttributes> batch = new ArrayList<>();
        for (int i = 1; i <= n; i++) {
            Payload p = new Payload();
            p.setText(tag + "-" + i);
            TaskSubmissionAttributes t = new TaskSubmissionAttributes();
            t.setTag(tag + "-" + i);
            t.setTaskInput(p);
            batch.add(t);
        }
        List<String> ids = input.sendTaskInputBatch(sessionId, batch, UUID.randomUUID().toString());
        if (ids.size() != n) throw new IllegalStateException("the batch answered " + ids.size() + " ids for " + n + " tasks");
        rec.put("taskIds", ids);
    }

    /** The subscription manager port at a SubscriptionReference Address. */
    SubscriptionManagerPortType at(String address) {
        ((BindingProvider) manager).getRequestContext().put(BindingProvider.ENDPOINT_ADDRESS_PROPERTY, address);
        return manager;
    }

    static String xml(XMLGregorianCalendar c) {
        return c == null ? null : c.toXMLFormat();
    }

    /** A declared fault (the generated exception): its class, and the wsrf-bf fields of its detail. */
    static Map<String, Object> describeFault(Throwable e) {
        Object info;
        try {
            info = e.getClass().getMethod("getFaultInfo").invoke(e);
        } catch (ReflectiveOperationException notDeclared) {
            return null;
        }
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("exception", e.getClass().getSimpleName());
        m.put("detail", info == null ? null : info.getClass().getSimpleName());
        if (info instanceof BaseFaultType) {
            BaseFaultType b = (BaseFaultType) info;
            if (b.getErrorCode() != null) {
                StringBuilder sb = new StringBuilder();
                for (Object c : b.getErrorCode().getContent()) sb.append(c instanceof String ? c : "");
                m.put("errorCode", sb.toString().trim());
            }
            List<String> desc = new ArrayList<>();
            for (BaseFaultType.Description d : b.getDescription()) desc.add(d.getValue());
            m.put("description", desc);
        } else if (info != null) {
            // The proxy's own fault types (InvalidArgumentFault, …) carry a code.
            try {
                m.put("errorCode", String.valueOf(info.getClass().getMethod("getCode").invoke(info)));
            } catch (ReflectiveOperationException ignored) {
                // no code
            }
        }
        return m;
    }
}
