/** Namespaces of the WS-Resource standards the resource port types speak (see schemas/ws/). */
export const WSA = 'http://www.w3.org/2005/08/addressing';
export const WSA_2004 = 'http://schemas.xmlsoap.org/ws/2004/08/addressing';
export const WSRF_BF = 'http://docs.oasis-open.org/wsrf/bf-2';
export const WSRF_R = 'http://docs.oasis-open.org/wsrf/r-2';
export const WSRF_RP = 'http://docs.oasis-open.org/wsrf/rp-2';
export const WSRF_RL = 'http://docs.oasis-open.org/wsrf/rl-2';
export const XSI = 'http://www.w3.org/2001/XMLSchema-instance';
export const SYM = 'http://soapproxy.symphony/v1';
/** The one query dialect we evaluate: XPath 1.0, as WS-ResourceProperties names it. */
export const XPATH_10 = 'http://www.w3.org/TR/1999/REC-xpath-19991116';
/** The ErrorCode dialect of our base faults: the proxy's error codes (SSP_…). */
export const SSP_ERRORS = 'urn:symphony-soap-proxy:errors';
/** WS-Enumeration: the 2004/09 submission (used by WS-Management) and the W3C 2011 Recommendation. */
export const WSEN_2004 = 'http://schemas.xmlsoap.org/ws/2004/09/enumeration';
export const WSEN_2011 = 'http://www.w3.org/2011/03/ws-enu';
/** WS-Management: its OptimizeEnumeration asks for the first page in the EnumerateResponse. */
export const WSMAN = 'http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd';
/** The 2011 Recommendation's XPath 1.0 filter dialect (2004/09 uses XPATH_10). */
export const XPATH_10_WSEN_2011 = 'http://www.w3.org/2011/03/ws-enu/Dialects/XPath10';

/** WS-BaseNotification 1.3 (messages and faults), its WSDL's namespace (actions), and WS-Topics 1.3. */
export const WSNT = 'http://docs.oasis-open.org/wsn/b-2';
export const WSNT_W = 'http://docs.oasis-open.org/wsn/bw-2';
export const WSTOP = 'http://docs.oasis-open.org/wsn/t-1';
