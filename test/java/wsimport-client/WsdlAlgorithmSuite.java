/*
 * The WS-SecurityPolicy algorithm suite a WSDL promises, read from the WSDL file at run time (never
 * hard-coded): for every port of the service, its binding's wsp:PolicyReference (or inline wsp:Policy)
 * is resolved to the policy, and the sp:AlgorithmSuite inside its sp:AsymmetricBinding is mapped to the
 * asymmetric signature, digest and canonicalization it stands for (WS-SecurityPolicy 1.2, section 6.1).
 * Every port used must name the same suite; a WSDL without one, or with a suite this table does not
 * know, is refused with a message that says so.
 */

import java.io.File;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

import javax.xml.XMLConstants;
import javax.xml.parsers.DocumentBuilder;
import javax.xml.parsers.DocumentBuilderFactory;

import org.w3c.dom.Document;
import org.w3c.dom.Element;
import org.w3c.dom.Node;

public final class WsdlAlgorithmSuite {
    static final String WSDL = "http://schemas.xmlsoap.org/wsdl/";
    static final String WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd";
    /** WS-Policy 1.5 and the 2004/09 submission. */
    static final Set<String> WSP = Set.of("http://www.w3.org/ns/ws-policy", "http://schemas.xmlsoap.org/ws/2004/09/policy");
    /** WS-SecurityPolicy 1.2 (OASIS) and 1.1 (the 2005/07 submission). */
    static final Set<String> SP = Set.of(
            "http://docs.oasis-open.org/ws-sx/ws-securitypolicy/200702",
            "http://schemas.xmlsoap.org/ws/2005/07/securitypolicy");

    static final String RSA_SHA1 = "http://www.w3.org/2000/09/xmldsig#rsa-sha1";
    static final String RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";
    static final String SHA1 = "http://www.w3.org/2000/09/xmldsig#sha1";
    static final String SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256";
    static final String EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#";
    static final String INCLUSIVE_C14N = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315";

    /** WS-SecurityPolicy 1.2 section 6.1: [Asymmetric Signature, Digest] of each suite. */
    static final Map<String, String[]> SUITES = new LinkedHashMap<>();

    static {
        for (String s : new String[] {"Basic256", "Basic192", "Basic128", "TripleDes"}) {
            SUITES.put(s, new String[] {RSA_SHA1, SHA1});
            SUITES.put(s + "Rsa15", new String[] {RSA_SHA1, SHA1});
            SUITES.put(s + "Sha256", new String[] {RSA_SHA256, SHA256});
            SUITES.put(s + "Sha256Rsa15", new String[] {RSA_SHA256, SHA256});
        }
    }

    /** The suite's name as written in the WSDL (e.g. Basic256Sha256). */
    public final String name;
    /** XML-DSig SignatureMethod the suite's asymmetric signatures must use. */
    public final String signatureMethod;
    /** XML-DSig DigestMethod of every Reference. */
    public final String digestMethod;
    /** Canonicalization of SignedInfo and of each Reference (exclusive unless sp:InclusiveC14N). */
    public final String c14nMethod;
    /** The wsdl:port names the suite was read for. */
    public final List<String> ports;

    private WsdlAlgorithmSuite(String name, String c14n, List<String> ports) {
        this.name = name;
        this.signatureMethod = SUITES.get(name)[0];
        this.digestMethod = SUITES.get(name)[1];
        this.c14nMethod = c14n;
        this.ports = ports;
    }

    public static final class PolicyError extends Exception {
        private static final long serialVersionUID = 1L;

        PolicyError(String message) {
            super(message);
        }
    }

    /**
     * Reads the suite for the named ports of the WSDL's (single) service. The WSDL must be the very
     * file the client classes were generated from.
     */
    public static WsdlAlgorithmSuite read(File wsdlFile, List<String> portNames) throws Exception {
        Document doc = parse(wsdlFile);
        Element defs = doc.getDocumentElement();
        if (!is(defs, WSDL, "definitions")) throw new PolicyError(wsdlFile + " is not a WSDL 1.1 document");
        String tns = defs.getAttribute("targetNamespace");

        Map<String, Element> policiesById = new LinkedHashMap<>();
        for (Element p : descendants(defs)) {
            if (isPolicy(p)) {
                String id = p.getAttributeNS(WSU, "Id");
                if (!id.isEmpty()) policiesById.put(id, p);
            }
        }
        Map<String, Element> bindings = new LinkedHashMap<>();
        for (Element b : children(defs)) {
            if (is(b, WSDL, "binding")) bindings.put(b.getAttribute("name"), b);
        }

        Set<String> suiteNames = new LinkedHashSet<>();
        Set<String> c14ns = new LinkedHashSet<>();
        List<String> found = new ArrayList<>();
        for (String portName : portNames) {
            Element port = findPort(defs, portName);
            if (port == null) throw new PolicyError("the WSDL has no wsdl:port named " + portName);
            String bindingRef = port.getAttribute("binding");
            String bindingName = localPart(bindingRef);
            String bindingNs = namespaceOf(port, bindingRef);
            if (!tns.equals(bindingNs)) throw new PolicyError("port " + portName + " names a binding outside the WSDL: " + bindingRef);
            Element binding = bindings.get(bindingName);
            if (binding == null) throw new PolicyError("port " + portName + " names an unknown binding " + bindingRef);

            // Policies attached to the binding itself (the endpoint policy subject).
            List<Element> policies = new ArrayList<>();
            for (Element c : children(binding)) {
                if (isPolicy(c)) policies.add(c);
                if (WSP.contains(c.getNamespaceURI()) && "PolicyReference".equals(c.getLocalName())) {
                    String uri = c.getAttribute("URI");
                    if (!uri.startsWith("#")) throw new PolicyError("binding " + bindingName + " refers to an external policy " + uri);
                    Element p = policiesById.get(uri.substring(1));
                    if (p == null) throw new PolicyError("binding " + bindingName + " refers to a missing policy " + uri);
                    policies.add(p);
                }
            }
            List<Element> suites = new ArrayList<>();
            for (Element p : policies) {
                for (Element e : descendants(p)) {
                    if (!SP.contains(e.getNamespaceURI()) || !"AlgorithmSuite".equals(e.getLocalName())) continue;
                    // The table holds asymmetric (X.509) signatures: a symmetric binding's suite means HMAC.
                    if (!insideAsymmetricBinding(e)) {
                        throw new PolicyError("the sp:AlgorithmSuite of binding " + bindingName
                                + " is not inside an sp:AsymmetricBinding; this client signs with X.509 keys only");
                    }
                    suites.add(e);
                }
            }
            if (suites.isEmpty()) throw new PolicyError("binding " + bindingName + " (port " + portName + ") states no sp:AlgorithmSuite");
            for (Element suite : suites) {
                // sp:AlgorithmSuite > wsp:Policy > sp:<SuiteName> [sp:InclusiveC14N ...]
                Element inner = null;
                for (Element c : children(suite)) if (isPolicy(c)) inner = c;
                if (inner == null) throw new PolicyError("sp:AlgorithmSuite without a nested wsp:Policy in binding " + bindingName);
                String c14n = EXC_C14N;
                for (Element a : children(inner)) {
                    if (!SP.contains(a.getNamespaceURI())) continue;
                    String local = a.getLocalName();
                    if ("InclusiveC14N".equals(local)) {
                        c14n = INCLUSIVE_C14N;
                    } else if (SUITES.containsKey(local)) {
                        suiteNames.add(local);
                    } else if (!"SOAPNormalization10".equals(local) && !"STRTransform10".equals(local)
                            && !"XPath10".equals(local) && !"XPathFilter20".equals(local)) {
                        throw new PolicyError("unknown algorithm suite sp:" + local + " in binding " + bindingName
                                + "; this client knows " + SUITES.keySet());
                    }
                }
                c14ns.add(c14n);
            }
            found.add(portName);
        }
        if (suiteNames.isEmpty()) throw new PolicyError("the WSDL's sp:AlgorithmSuite names no algorithm suite");
        if (suiteNames.size() != 1 || c14ns.size() != 1) {
            throw new PolicyError("the ports used disagree on the algorithm suite: " + suiteNames + " " + c14ns);
        }
        return new WsdlAlgorithmSuite(suiteNames.iterator().next(), c14ns.iterator().next(), found);
    }

    static Element findPort(Element defs, String portName) {
        for (Element s : children(defs)) {
            if (!is(s, WSDL, "service")) continue;
            for (Element p : children(s)) {
                if (is(p, WSDL, "port") && portName.equals(p.getAttribute("name"))) return p;
            }
        }
        return null;
    }

    static boolean insideAsymmetricBinding(Element e) {
        for (Node n = e.getParentNode(); n != null && n.getNodeType() == Node.ELEMENT_NODE; n = n.getParentNode()) {
            if (SP.contains(n.getNamespaceURI()) && "AsymmetricBinding".equals(n.getLocalName())) return true;
        }
        return false;
    }

    static boolean isPolicy(Element e) {
        return WSP.contains(e.getNamespaceURI()) && "Policy".equals(e.getLocalName());
    }

    static String localPart(String qname) {
        int i = qname.indexOf(':');
        return i < 0 ? qname : qname.substring(i + 1);
    }

    static String namespaceOf(Element context, String qname) {
        int i = qname.indexOf(':');
        return context.lookupNamespaceURI(i < 0 ? null : qname.substring(0, i));
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

    static List<Element> descendants(Element root) {
        List<Element> out = new ArrayList<>();
        for (Element c : children(root)) {
            out.add(c);
            out.addAll(descendants(c));
        }
        return out;
    }

    static Document parse(File file) throws Exception {
        DocumentBuilderFactory f = DocumentBuilderFactory.newInstance();
        f.setNamespaceAware(true);
        f.setFeature(XMLConstants.FEATURE_SECURE_PROCESSING, true);
        f.setFeature("http://apache.org/xml/features/disallow-doctype-decl", true);
        f.setExpandEntityReferences(false);
        DocumentBuilder b = f.newDocumentBuilder();
        return b.parse(file);
    }
}
