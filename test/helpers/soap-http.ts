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
  const m = new RegExp(`<(?:[\\w.-]+:)?${local}(?:\\s[^>]*)?>([^<]*)</(?:[\\w.-]+:)?${local}>`).exec(xml);
  return m ? m[1] : undefined;
}

export function op(name: string, inner: string): string {
  return `<sym:${name} xmlns:sym="${SYM}">${inner}</sym:${name}>`;
}

/** Posts a SOAP 1.1 call that must succeed (HTTP 200); returns the reply text. */
export async function callOk(url: string, body: string): Promise<string> {
  const r = await postSoap(url, envelope11(body));
  if (r.status !== 200) throw new Error(`expected HTTP 200, got ${r.status}: ${r.text.slice(0, 600)}`);
  return r.text;
}

/** connect (application echo) + createSession through `url`, unsigned; returns both ids. */
export async function openSessionAt(url: string): Promise<{ connectionId: string; sessionId: string }> {
  const c = await callOk(
    url,
    op(
      'connect',
      '<sym:applicationName>echo</sym:applicationName><sym:username>u</sym:username><sym:password>p</sym:password>',
    ),
  );
  const connectionId = pick(c, 'connectionId');
  if (!connectionId) throw new Error(`connect answered no connectionId: ${c.slice(0, 600)}`);
  const s = await callOk(url, op('createSession', `<sym:connectionId>${connectionId}</sym:connectionId>`));
  const sessionId = pick(s, 'sessionId');
  if (!sessionId) throw new Error(`createSession answered no sessionId: ${s.slice(0, 600)}`);
  return { connectionId, sessionId };
}
