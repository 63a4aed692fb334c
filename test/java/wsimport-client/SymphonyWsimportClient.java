/*
 * A client built from `wsimport` output (JAX-WS RI, Debian's jaxws) for the WSDL a running proxy
 * serves, signing with WS-Security and holding every response to the WSDL's WS-SecurityPolicy
 * algorithm suite (WsSecurityPolicyHandler, WsdlAlgorithmSuite; the command line, keys and JSON
 * summary as the other clients: ClientSupport). Runs the whole flow through the
 * generated port types:
 *   connect -> createSession -> sendTaskInput + sendTaskInputBatch -> fetchTaskOutput (leased, until
 *   every output arrived, bounded) -> acknowledgeTaskOutput -> getSessionStatus -> closeSession ->
 *   closeConnection
 *
 * Usage (the generated classes and this directory compiled into CLASSES):
 *   java -cp CLASSES:/usr/share/java/jaxws-rt.jar SymphonyWsimportClient --wsdl FILE --endpoint URL \
 *     --client-cert PEM --client-key PEM --response-cert PEM
 * FILE is the WSDL wsimport generated the classes from; the algorithm suite is read from it.
 *
 * The last stdout line is one JSON object (the mocha test asserts on it). Exit 0 when the flow ran and
 * every response verified, 1 otherwise (with "ok": false, the step and the reason), 2 on bad usage.
 */

import java.io.File;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;

import javax.xml.ws.Holder;
import javax.xml.ws.wsaddressing.W3CEndpointReference;

import symphony.soapproxy.v1.CloseFlags;
import symphony.soapproxy.v1.Payload;
import symphony.soapproxy.v1.SessionCreationAttributes;
import symphony.soapproxy.v1.SessionStatus;
import symphony.soapproxy.v1.TaskOutput;
import symphony.soapproxy.v1.TaskSubmissionAttributes;
import symphony.soapproxy.wsdl.v1.ConnectionPortType;
import symphony.soapproxy.wsdl.v1.SessionPortType;
import symphony.soapproxy.wsdl.v1.SymphonyService;
import symphony.soapproxy.wsdl.v1.TaskInputPortType;
import symphony.soapproxy.wsdl.v1.TaskOutputPortType;

public final class SymphonyWsimportClient {
    /** The SOAP 1.1 ports the flow uses; the policy is read for exactly these. */
    static final List<String> PORTS = List.of("ConnectionPort", "SessionPort", "TaskInputPort", "TaskOutputPort");
    static final int MAX_FETCHES = 15; // x FETCH_TIMEOUT_MILLIS: well inside the test's 60 s per run
    static final int FETCH_TIMEOUT_MILLIS = 2000;

    /** What the last stdout line reports. */
    static final Map<String, Object> summary = ClientSupport.summary;

    public static void main(String[] args) {
        Map<String, String> opt = ClientSupport.options("SymphonyWsimportClient", args);
        WsSecurityPolicyHandler handler = null;
        int exit = 0;
        try {
            File wsdl = new File(opt.get("--wsdl"));
            handler = ClientSupport.handler(ClientSupport.policy(wsdl, PORTS), opt);
            run(wsdl, opt.get("--endpoint"), handler);
            ClientSupport.step = "done";
            summary.put("ok", true);
        } catch (Throwable e) {
            exit = 1;
            ClientSupport.failed("SymphonyWsimportClient", e);
            WsSecurityPolicyHandler.ResponseRejected r = rejectionIn(e);
            if (r == null && handler != null) r = handler.lastRejection;
            if (r != null) {
                Map<String, Object> rej = new LinkedHashMap<>();
                rej.put("code", r.code);
                rej.put("message", r.getMessage());
                rej.put("signatureMethod", r.signatureMethod);
                rej.put("digestMethods", r.digestMethods);
                rej.put("signatureOtherwiseValid", r.signatureOtherwiseValid);
                summary.put("rejection", rej);
            }
        }
        ClientSupport.finish(handler, exit);
    }

    static void run(File wsdl, String endpoint, WsSecurityPolicyHandler handler) throws Exception {
        ClientSupport.step = "service";
        SymphonyService service = new SymphonyService(wsdl.toURI().toURL());
        ConnectionPortType conn = ClientSupport.configure(service.getConnectionPort(), endpoint, handler);
        SessionPortType sessions = ClientSupport.configure(service.getSessionPort(), endpoint, handler);
        TaskInputPortType input = ClientSupport.configure(service.getTaskInputPort(), endpoint, handler);
        TaskOutputPortType output = ClientSupport.configure(service.getTaskOutputPort(), endpoint, handler);

        ClientSupport.step = "connect";
        // The answer is the id and the connection's endpoint reference (WS-Resource address).
        Holder<String> connected = new Holder<>();
        conn.connect(null, "echo", "wsimport-client", "secret", connected, new Holder<W3CEndpointReference>());
        String connectionId = connected.value;

        ClientSupport.step = "createSession";
        SessionCreationAttributes attrs = new SessionCreationAttributes();
        attrs.setName("wsimport");
        attrs.setPriority(10);
        Holder<String> created = new Holder<>();
        sessions.createSession(connectionId, attrs, created, new Holder<W3CEndpointReference>());
        String sessionId = created.value;

        // Expected echo per task id: the text, the bytes, or the failure message.
        Map<String, TaskSubmissionAttributes> sent = new LinkedHashMap<>();
        ClientSupport.step = "sendTaskInput";
        TaskSubmissionAttributes first = task("t1", text("hello from wsimport"));
        sent.put(input.sendTaskInput(sessionId, first, null), first);

        ClientSupport.step = "sendTaskInputBatch";
        List<TaskSubmissionAttributes> batch = List.of(
                task("t2", binary(new byte[] {0, 1, 2, (byte) 0xff})),
                task("t3", text("fail:boom")),
                task("t4", text("second text")));
        List<String> ids = input.sendTaskInputBatch(sessionId, batch, UUID.randomUUID().toString());
        if (ids.size() != batch.size()) throw new IllegalStateException("batch returned " + ids.size() + " ids");
        for (int i = 0; i < ids.size(); i++) sent.put(ids.get(i), batch.get(i));
        summary.put("submitted", sent.size());

        ClientSupport.step = "fetchTaskOutput";
        Map<String, TaskOutput> received = new LinkedHashMap<>();
        String ack = null;
        int fetches = 0;
        while (received.size() < sent.size() && fetches < MAX_FETCHES) {
            fetches++;
            Holder<List<TaskOutput>> outs = new Holder<>();
            Holder<String> token = new Holder<>();
            // Leased: the outputs stay with the proxy until a later call acknowledges the token.
            output.fetchTaskOutput(sessionId, 100, FETCH_TIMEOUT_MILLIS, 60000, ack, outs, token);
            if (outs.value != null) {
                for (TaskOutput o : outs.value) received.putIfAbsent(o.getTaskId(), o); // at least once
            }
            if (token.value != null) ack = token.value;
        }
        summary.put("fetches", fetches);
        summary.put("received", received.size());
        summary.put("mismatches", mismatches(sent, received));
        if (received.size() < sent.size()) {
            throw new IllegalStateException(received.size() + " of " + sent.size() + " outputs after " + fetches + " fetches");
        }

        ClientSupport.step = "acknowledgeTaskOutput";
        if (ack != null) output.acknowledgeTaskOutput(sessionId, ack);
        summary.put("acknowledged", ack != null);

        ClientSupport.step = "getSessionStatus";
        SessionStatus status = sessions.getSessionStatus(sessionId);
        summary.put("state", status.getState() == null ? null : status.getState().value());

        ClientSupport.step = "closeSession";
        sessions.closeSession(sessionId, CloseFlags.DESTROY_ON_CLOSE);
        ClientSupport.step = "closeConnection";
        conn.closeConnection(connectionId);
    }

    static List<String> mismatches(Map<String, TaskSubmissionAttributes> sent, Map<String, TaskOutput> received) {
        List<String> out = new ArrayList<>();
        for (Map.Entry<String, TaskOutput> e : received.entrySet()) {
            TaskSubmissionAttributes in = sent.get(e.getKey());
            TaskOutput o = e.getValue();
            if (in == null) {
                out.add(e.getKey() + ": an output for a task this client did not submit");
                continue;
            }
            Payload p = in.getTaskInput();
            String tag = in.getTag();
            if (p.getText() != null && p.getText().startsWith("fail:")) {
                String why = p.getText().substring("fail:".length());
                if (o.isSuccessful() || o.getException() == null || !o.getException().contains(why)) {
                    out.add(tag + ": expected a failure mentioning '" + why + "'");
                }
            } else if (!o.isSuccessful() || o.getTaskOutput() == null) {
                out.add(tag + ": expected success, got " + o.getException());
            } else if (p.getText() != null && !p.getText().equals(o.getTaskOutput().getText())) {
                out.add(tag + ": text echo differs: " + o.getTaskOutput().getText());
            } else if (p.getBinary() != null && !Arrays.equals(p.getBinary(), o.getTaskOutput().getBinary())) {
                out.add(tag + ": binary echo differs");
            }
        }
        return out;
    }

    static TaskSubmissionAttributes task(String tag, Payload payload) {
        TaskSubmissionAttributes t = new TaskSubmissionAttributes();
        t.setTag(tag);
        t.setTaskInput(payload);
        return t;
    }

    static Payload text(String s) {
        Payload p = new Payload();
        p.setText(s);
        return p;
    }

    static Payload binary(byte[] b) {
        Payload p = new Payload();
        p.setBinary(b);
        return p;
    }

    static WsSecurityPolicyHandler.ResponseRejected rejectionIn(Throwable e) {
        for (Throwable t = e; t != null; t = t.getCause()) {
            if (t instanceof WsSecurityPolicyHandler.ResponseRejected) return (WsSecurityPolicyHandler.ResponseRejected) t;
        }
        return null;
    }
}
