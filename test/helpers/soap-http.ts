/** Raw SOAP over HTTP, for tests that must control every byte of the request. */
export const SYM = 'http://soapproxy.symphony/v1';
export const SOAP11 = 'http://schemas.xmlsoap.org/soap/envelope/';
export const SOAP12 = 'http://www.w3.org/2003/05/soap-envelope';

export interface SoapReply {
  status: number;
  headers: Headers;
  text: string;
}

export function envelope11(body: string): string {
  return `<?xml version="1.0"?><s:Envelope xmlns:s="${SOAP11}"><s:Body>${body}</s:Body></s:Envelope>`;
}

export function envelope12(body: string): string {
  return `<?xml version="1.0"?><s:Envelope xmlns:s="${SOAP12}"><s:Body>${body}</s:Body></s:Envelope>`;
}

export async function postSoap(
  url: string,
  xml: string | Buffer,
  opts: { version?: '1.1' | '1.2'; action?: string; contentType?: string } = {},
): Promise<SoapReply> {
  const version = opts.version ?? '1.1';
  const headers: Record<string, string> = {
    'content-type':
      opts.contentType ??
      (version === '1.1' ? 'text/xml; charset=utf-8' : 'application/soap+xml; charset=utf-8'),
  };
  if (version === '1.1' && opts.action !== undefined) headers['soapaction'] = `"${opts.action}"`;
  const res = await fetch(url, { method: 'POST', headers, body: xml, signal: AbortSignal.timeout(30000) });
  return { status: res.status, headers: res.headers, text: await res.text() };
}

/** Text of the first element with this local name, or undefined. */
export function pick(xml: string, local: string): string | undefined {
  const m = new RegExp(`<(?:\\w+:)?${local}(?:\\s[^>]*)?>([^<]*)</(?:\\w+:)?${local}>`).exec(xml);
  return m ? m[1] : undefined;
}

export function op(name: string, inner: string): string {
  return `<sym:${name} xmlns:sym="${SYM}">${inner}</sym:${name}>`;
}
