/*
 * Independent verifier (Apache Santuario) for the proxy's WS-Security signed SOAP responses.
 *
 * Run with the JDK source launcher, no build step:
 *   java -cp /usr/share/java/xmlsec.jar:/usr/share/java/slf4j-api.jar:/usr/share/java/slf4j-nop.jar:\
 *     /usr/share/java/commons-codec.jar test/java/VerifySignedEnvelope.java <envelope.xml> <signer-cert.pem> [...]
 *
 * Several <envelope> <cert> pairs may be given (JVM start-up dominates the cost); one line per pair is
 * printed, in order: "OK" or "FAIL: <reason>". Exit status 0 when every pair is OK, 1 otherwise, 2 on
 * bad usage.
 *
 * Elements are found by position, never by searching the document for an Id, so that a signature
 * over some other element (a wrapping attack) is not mistaken for one over the dispatched Body.
 */

import java.io.ByteArrayInputStream;
import java.io.File;
import java.io.FileInputStream;
import java.io.InputStream;
import java.security.PublicKey;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Base64;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

import javax.xml.XMLConstants;
import javax.xml.parsers.DocumentBuilder;
import javax.xml.parsers.DocumentBuilderFactory;

import org.apache.xml.security.Init;
import org.apache.xml.security.keys.KeyInfo;
import org.apache.xml.security.signature.Reference;
import org.apache.xml.security.signature.SignedInfo;
import org.apache.xml.security.signature.XMLSignature;
import org.apache.xml.security.transforms.Transforms;
import org.w3c.dom.Attr;
import org.w3c.dom.Document;
import org.w3c.dom.Element;
import org.w3c.dom.NamedNodeMap;
import org.w3c.dom.Node;
import org.xml.sax.ErrorHandler;
import org.xml.sax.SAXParseException;

public class VerifySignedEnvelope {
    static final String SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/";
    static final String SOAP12 = "http://www.w3.org/2003/05/soap-envelope";
    static final String WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd";
    static final String WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd";
    static final String DS = "http://www.w3.org/2000/09/xmldsig#";
    static final String EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#";
    static final String SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256";
    static final Set<String> SIG_METHODS = new HashSet<>(Arrays.asList(
            "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
            "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"));
    static final String X509V3 =
            "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509v3";

    /** A refusal with a human-readable reason; everything else that is thrown is reported too. */
    static final class Refused extends Exception {
        Refused(String reason) {
            super(reason);
        }
    }

    public static void main(String[] args) {
        if (args.length < 2 || args.length % 2 != 0) {
            System.out.println("FAIL: usage: VerifySignedEnvelope <envelope.xml> <signer-cert.pem> [...]");
            System.exit(2);
        }
        Init.init();
        boolean allOk = true;
        for (int i = 0; i < args.length; i += 2) {
            String verdict;
            try {
                verify(new File(args[i]), new File(args[i + 1]));
                verdict = "OK";
            } catch (Refused e) {
                verdict = "FAIL: " + e.getMessage();
            } catch (Exception e) {
                verdict = "FAIL: " + e.getClass().getSimpleName() + ": " + e.getMessage();
            }
            if (!verdict.equals("OK")) allOk = false;
            // One line per pair: the caller splits the output by lines.
            System.out.println(verdict.replaceAll("[\\r\\n]+", " "));
        }
        System.out.flush();
        System.exit(allOk ? 0 : 1);
    }

    static Document parse(File file) throws Exception {
        DocumentBuilderFactory f = DocumentBuilderFactory.newInstance();
        f.setNamespaceAware(true);
        f.setFeature(XMLConstants.FEATURE_SECURE_PROCESSING, true);
        f.setFeature("http://apache.org/xml/features/disallow-doctype-decl", true);
        f.setFeature("http://xml.org/sax/features/external-general-entities", false);
        f.setFeature("http://xml.org/sax/features/external-parameter-entities", false);
        f.setXIncludeAware(false);
        f.setExpandEntityReferences(false);
        DocumentBuilder b = f.newDocumentBuilder();
        // The default handler also prints to stderr; errors are reported once, through the verdict.
        b.setErrorHandler(new ErrorHandler() {
            public void warning(SAXParseException e) {}

            public void error(SAXParseException e) throws SAXParseException {
                throw e;
            }

            public void fatalError(SAXParseException e) throws SAXParseException {
                throw e;
            }
        });
        return b.parse(file);
    }

    static X509Certificate readCert(File pem) throws Exception {
        try (InputStream in = new FileInputStream(pem)) {
            return (X509Certificate) CertificateFactory.getInstance("X.509").generateCertificate(in);
        }
    }

    static boolean is(Node n, String ns, String local) {
        return n != null && n.getNodeType() == Node.ELEMENT_NODE && ns.equals(n.getNamespaceURI())
                && local.equals(n.getLocalName());
    }

    static List<Element> childElements(Element parent) throws Refused {
        List<Element> out = new ArrayList<>();
        for (Node c = parent.getFirstChild(); c != null; c = c.getNextSibling()) {
            if (c.getNodeType() == Node.ELEMENT_NODE) {
                out.add((Element) c);
            } else if (c.getNodeType() == Node.TEXT_NODE && !c.getNodeValue().trim().isEmpty()) {
                throw new Refused("unexpected text content in " + parent.getLocalName());
            }
        }
        return out;
    }

    /** The one child named ns:local; refuses when there is none or more than one. */
    static Element single(Element parent, String ns, String local) throws Refused {
        Element found = null;
        for (Element c : childElements(parent)) {
            if (!is(c, ns, local)) continue;
            if (found != null) throw new Refused("more than one " + local + " in " + parent.getLocalName());
            found = c;
        }
        if (found == null) throw new Refused("no " + local + " in " + parent.getLocalName());
        return found;
    }

    static String wsuId(Element e) throws Refused {
        Attr a = e.getAttributeNodeNS(WSU, "Id");
        if (a == null || a.getValue().isEmpty()) throw new Refused(e.getLocalName() + " has no wsu:Id");
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

    static String fragment(String uri) throws Refused {
        if (uri == null || !uri.startsWith("#") || uri.length() < 2) {
            throw new Refused("reference URI is not a same-document #id: " + uri);
        }
        return uri.substring(1);
    }

    static void verify(File envelopeFile, File certFile) throws Exception {
        X509Certificate cert = readCert(certFile);
        PublicKey key = cert.getPublicKey();
        Document doc = parse(envelopeFile);

        // Envelope -> Header, Body by position.
        Element env = doc.getDocumentElement();
        String soapNs = env.getNamespaceURI();
        if (!is(env, SOAP11, "Envelope") && !is(env, SOAP12, "Envelope")) {
            throw new Refused("document element is not a SOAP 1.1/1.2 Envelope");
        }
        List<Element> envChildren = childElements(env);
        if (envChildren.size() != 2 || !is(envChildren.get(0), soapNs, "Header")
                || !is(envChildren.get(1), soapNs, "Body")) {
            throw new Refused("Envelope must hold exactly Header then Body");
        }
        Element header = envChildren.get(0);
        Element body = envChildren.get(1);
        Element security = single(header, WSSE, "Security");
        Element sigEl = single(security, DS, "Signature");
        Element timestamp = single(security, WSU, "Timestamp");

        String bodyId = wsuId(body);
        String tsId = wsuId(timestamp);
        if (bodyId.equals(tsId)) throw new Refused("Body and Timestamp share wsu:Id " + bodyId);
        // An Id used twice would let the reference resolve to whichever copy a resolver picks.
        for (String id : new String[] {bodyId, tsId}) {
            if (countIdUses(env, id) != 1) throw new Refused("Id " + id + " is used on more than one element");
        }
        body.setIdAttributeNS(WSU, "Id", true);
        timestamp.setIdAttributeNS(WSU, "Id", true);

        // secureValidation=true: Santuario's own hardening (no XSLT, no MD5, wrapping checks, ...).
        XMLSignature sig = new XMLSignature(sigEl, "", true);
        SignedInfo si = sig.getSignedInfo();
        if (!EXC_C14N.equals(si.getCanonicalizationMethodURI())) {
            throw new Refused("SignedInfo canonicalization is " + si.getCanonicalizationMethodURI());
        }
        if (!SIG_METHODS.contains(si.getSignatureMethodURI())) {
            throw new Refused("signature method is " + si.getSignatureMethodURI());
        }

        checkKeyInfo(sig, security, cert);

        // Coverage: the references must be exactly {Body, Timestamp}, the very nodes found by position.
        int n = si.getLength();
        if (n != 2) throw new Refused("expected 2 references, found " + n);
        boolean coversBody = false;
        boolean coversTs = false;
        for (int i = 0; i < n; i++) {
            Reference ref = si.item(i);
            String id = fragment(ref.getURI());
            Element target = doc.getElementById(id);
            if (target == body) {
                if (coversBody) throw new Refused("Body referenced twice");
                coversBody = true;
            } else if (target == timestamp) {
                if (coversTs) throw new Refused("Timestamp referenced twice");
                coversTs = true;
            } else {
                throw new Refused("reference " + ref.getURI() + " does not cover the dispatched Body or Timestamp");
            }
            Transforms t = ref.getTransforms();
            if (t == null || t.getLength() != 1 || !EXC_C14N.equals(t.item(0).getURI())) {
                throw new Refused("reference " + ref.getURI() + " must have exactly one exc-c14n transform");
            }
            String digest = ref.getMessageDigestAlgorithm().getAlgorithmURI();
            if (!SHA256.equals(digest)) throw new Refused("reference " + ref.getURI() + " digest is " + digest);
        }
        if (!coversBody || !coversTs) throw new Refused("references do not cover both Body and Timestamp");

        boolean valid = sig.checkSignatureValue(key);
        // checkSignatureValue stops before the references when the SignatureValue itself is wrong.
        List<String> badRefs = new ArrayList<>();
        try {
            for (int i = 0; i < n; i++) {
                if (!si.getVerificationResult(i)) badRefs.add(si.item(i).getURI());
            }
        } catch (Exception notVerified) {
            if (valid) throw notVerified;
            throw new Refused("SignatureValue does not verify with the signer certificate's key");
        }
        if (!badRefs.isEmpty()) throw new Refused("digest mismatch for reference(s) " + badRefs);
        if (!valid) throw new Refused("SignatureValue does not verify with the signer certificate's key");
    }

    /** KeyInfo must be a SecurityTokenReference to the BinarySecurityToken holding the signer cert. */
    static void checkKeyInfo(XMLSignature sig, Element security, X509Certificate cert) throws Exception {
        KeyInfo ki = sig.getKeyInfo();
        if (ki == null) throw new Refused("Signature has no KeyInfo");
        Element str = single(ki.getElement(), WSSE, "SecurityTokenReference");
        Element ref = single(str, WSSE, "Reference");
        String bstId = fragment(ref.getAttribute("URI"));
        Element bst = null;
        for (Element c : childElements(security)) {
            if (is(c, WSSE, "BinarySecurityToken") && bstId.equals(c.getAttributeNS(WSU, "Id"))) {
                if (bst != null) throw new Refused("BinarySecurityToken Id " + bstId + " used twice");
                bst = c;
            }
        }
        if (bst == null) throw new Refused("SecurityTokenReference points to no BinarySecurityToken: #" + bstId);
        if (!X509V3.equals(bst.getAttribute("ValueType"))) {
            throw new Refused("BinarySecurityToken ValueType is " + bst.getAttribute("ValueType"));
        }
        byte[] der = Base64.getMimeDecoder().decode(bst.getTextContent().trim());
        X509Certificate tokenCert = (X509Certificate) CertificateFactory.getInstance("X.509")
                .generateCertificate(new ByteArrayInputStream(der));
        if (!Arrays.equals(tokenCert.getEncoded(), cert.getEncoded())) {
            throw new Refused("BinarySecurityToken certificate is not the signer certificate");
        }
    }
}
