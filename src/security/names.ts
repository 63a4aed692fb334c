/** Namespaces and algorithm identifiers of WS-Security 1.0/1.1 and XML Signature. */
export const WSSE_NS = 'http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd';
export const WSSE11_NS = 'http://docs.oasis-open.org/wss/oasis-wss-wssecurity-secext-1.1.xsd';
export const WSU_NS = 'http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd';
export const DS_NS = 'http://www.w3.org/2000/09/xmldsig#';
export const WSA_NS = 'http://www.w3.org/2005/08/addressing';

export const X509V3 = 'http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509v3';
export const BASE64_BINARY =
  'http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary';
export const SKI_VALUE_TYPE =
  'http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509SubjectKeyIdentifier';
export const THUMBPRINT_VALUE_TYPE =
  'http://docs.oasis-open.org/wss/oasis-wss-soap-message-security-1.1#ThumbprintSHA1';

export const EXC_C14N = 'http://www.w3.org/2001/10/xml-exc-c14n#';

export interface SignatureAlgorithm {
  hash: 'sha1' | 'sha256' | 'sha384' | 'sha512' | 'md5';
  key: 'rsa' | 'ec';
}

/** Every signature method we can evaluate; weak ones are further gated by config. */
export const SIGNATURE_METHODS: Record<string, SignatureAlgorithm> = {
  'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256': { hash: 'sha256', key: 'rsa' },
  'http://www.w3.org/2001/04/xmldsig-more#rsa-sha384': { hash: 'sha384', key: 'rsa' },
  'http://www.w3.org/2001/04/xmldsig-more#rsa-sha512': { hash: 'sha512', key: 'rsa' },
  'http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256': { hash: 'sha256', key: 'ec' },
  'http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384': { hash: 'sha384', key: 'ec' },
  'http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512': { hash: 'sha512', key: 'ec' },
  'http://www.w3.org/2000/09/xmldsig#rsa-sha1': { hash: 'sha1', key: 'rsa' },
  'http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha1': { hash: 'sha1', key: 'ec' },
  'http://www.w3.org/2001/04/xmldsig-more#rsa-md5': { hash: 'md5', key: 'rsa' },
};

export const SIGNATURE_METHOD_URI = {
  'rsa-sha256': 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256',
  'ecdsa-sha256': 'http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256',
} as const;

export const DIGEST_METHODS: Record<string, SignatureAlgorithm['hash']> = {
  'http://www.w3.org/2001/04/xmlenc#sha256': 'sha256',
  'http://www.w3.org/2001/04/xmldsig-more#sha384': 'sha384',
  'http://www.w3.org/2001/04/xmlenc#sha512': 'sha512',
  'http://www.w3.org/2000/09/xmldsig#sha1': 'sha1',
  'http://www.w3.org/2001/04/xmldsig-more#md5': 'md5',
};

export const SHA256_DIGEST = 'http://www.w3.org/2001/04/xmlenc#sha256';
