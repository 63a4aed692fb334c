/*
 * Subscribing to a session's task outputs with the classes `wsimport` generates from the proxy's WSDL
 * (JAX-WS RI): WS-BaseNotification 1.3 Subscribe through NotificationProducerPort, then the
 * subscription's own port, SubscriptionManagerPort. The README quotes this file as its Java example;
 * test/relay/wsimport-notifications.test.ts runs it (through SymphonyNotificationClient) against a proxy
 * and a real consumer.
 *
 * The ports given here must already carry your WS-Security handler (the proxy refuses unsigned
 * requests); only their address is set here.
 */

import javax.xml.parsers.DocumentBuilderFactory;
import javax.xml.transform.dom.DOMResult;
import javax.xml.ws.BindingProvider;
import javax.xml.ws.wsaddressing.W3CEndpointReference;
import javax.xml.ws.wsaddressing.W3CEndpointReferenceBuilder;

import org.oasis_open.docs.wsn.b_2.FilterType;
import org.oasis_open.docs.wsn.b_2.ObjectFactory;
import org.oasis_open.docs.wsn.b_2.Subscribe;
import org.oasis_open.docs.wsn.b_2.SubscribeResponse;
import org.w3c.dom.Document;
import org.w3c.dom.Element;

import symphony.soapproxy.wsdl.v1.NotificationProducerPortType;
import symphony.soapproxy.wsdl.v1.SubscriptionManagerPortType;

public final class SubscribeExample {
    static final String WSNT = "http://docs.oasis-open.org/wsn/b-2";
    static final String WSA = "http://www.w3.org/2005/08/addressing";
    static final String SYM = "http://soapproxy.symphony/v1";
    static final String SIMPLE_DIALECT = "http://docs.oasis-open.org/wsn/t-1/TopicExpression/Simple";

    private SubscribeExample() {}

    /**
     * Subscribes the consumer at `consumerUrl` (your NotificationConsumer endpoint) to the task outputs of
     * one session, for ten minutes. `sessionAddress` is the wsa:Address of the endpoint reference that
     * createSession returned (…/symphony/sessions/{id}).
     */
    public static SubscribeResponse subscribe(NotificationProducerPortType producer, String sessionAddress,
            String consumerUrl) throws Exception {
        // Subscribe goes to the session itself, not to the service's address.
        ((BindingProvider) producer).getRequestContext()
                .put(BindingProvider.ENDPOINT_ADDRESS_PROPERTY, sessionAddress);

        Subscribe request = new Subscribe();
        // Where the proxy sends its Notify messages: an endpoint reference with just an Address.
        request.setConsumerReference(new W3CEndpointReferenceBuilder().address(consumerUrl).build());

        // Filter: the topic sym:TaskOutputAvailable. FilterType is a wildcard (getAny()), and the topic is
        // a QName written as text, meaningful only where xmlns:sym is declared. JAXB declares nothing for
        // text, so the generated TopicExpressionType (in a JAXBElement) would arrive with "sym" unbound
        // (InvalidTopicExpressionFault); a DOM element brings its own declaration along.
        Element topic = DocumentBuilderFactory.newInstance().newDocumentBuilder().newDocument()
                .createElementNS(WSNT, "wsnt:TopicExpression");
        topic.setAttributeNS("http://www.w3.org/2000/xmlns/", "xmlns:sym", SYM);
        topic.setAttribute("Dialect", SIMPLE_DIALECT);
        topic.setTextContent("sym:TaskOutputAvailable");
        FilterType filter = new FilterType();
        filter.getAny().add(topic);
        request.setFilter(filter);

        // A dateTime or a duration (an XML Schema union), so JAXB made it a JAXBElement<String>.
        request.setInitialTerminationTime(new ObjectFactory().createSubscribeInitialTerminationTime("PT10M"));

        return producer.subscribe(request);
    }

    /**
     * The subscription's port: Renew, PauseSubscription, ResumeSubscription and Unsubscribe are sent to the
     * Address of the SubscriptionReference that Subscribe answered (…/symphony/subscriptions/{id}).
     */
    public static SubscriptionManagerPortType manager(SubscriptionManagerPortType port, SubscribeResponse subscribed)
            throws Exception {
        ((BindingProvider) port).getRequestContext()
                .put(BindingProvider.ENDPOINT_ADDRESS_PROPERTY, addressOf(subscribed.getSubscriptionReference()));
        return port;
    }

    /** The wsa:Address of an endpoint reference (W3CEndpointReference has no getter: read its XML). */
    public static String addressOf(W3CEndpointReference epr) throws Exception {
        DocumentBuilderFactory f = DocumentBuilderFactory.newInstance();
        f.setNamespaceAware(true);
        Document doc = f.newDocumentBuilder().newDocument();
        epr.writeTo(new DOMResult(doc));
        return doc.getElementsByTagNameNS(WSA, "Address").item(0).getTextContent().trim();
    }
}
