/**
 * Attacks on a proxy in wss mode, after the WS-Attacker catalogue (XML Signature Wrapping) and
 * WSS4J's TimestampTest, ReplayTest, SignaturePartsTest, SignatureCertTest and ModifiedRequestTest.
 *
 * A real grid and proxy run; the good client (client-a) signs a connect and a createSession, and
 * every attack then tries to put a task into that session. Each must be refused with the documented
 * fault AND leave the session's task counts unchanged (checked after every case with a signed
 * getSessionStatus); at the end a legitimate task still goes through and no attacker payload ever
 * came back from the grid.
 *
 * The offline part checks that the attacks are built right: xmlsec1, which finds signed elements
 * by id anywhere in the document, still accepts the wrapped envelopes (that is why the proxy must
 * find Body and Timestamp by position), while the tampered ones really are broken.
 */
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { randomBytes, randomUUID, X509Certificate } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeTestPki, type CertPair, type TestPki } from '../helpers/pki';
import { requirePeer } from '../helpers/peers';
import {
  proxyConfig,
  spawnGrid,
  startProxyProcess,
  type GridProcess,
  type ProxyProcess,
} from '../helpers/processes';
import { op, pick } from '../helpers/soap-http';
import { stopChild } from '../../src/server/embedded-grid';
import {
  hasSantuario,
  hasXmlsec1,
  SANTUARIO_INSTALL,
  verifyManyWithSantuario,
  verifyWithXmlsec1,
  XMLSEC1_ID_ATTRS,
  XMLSEC1_INSTALL,
} from '../helpers/signature-peers';
import {
  addBodyXPathTransform,
  faultCodeOf,
  importFragment,
  NS,
  resignSignedInfo,
  serializeXmlDoc,
  signedEnvelope,
  signedParts,
  URIS,
  type SignOptions,
} from '../helpers/wss-client';

type PairName = { [K in keyof TestPki]: TestPki[K] extends CertPair ? K : never }[keyof TestPki];

/** What an attack needs to know: the PKI, and the victim's session. */
interface Kit {
  pki: TestPki;
  sessionId: string;
}

interface AttackRequest {
  xml: string | Buffer;
  version?: '1.1' | '1.2';
  action?: string;
  contentType?: string;
}

/** The fault's detail element and code: AuthenticationFault for WS-Security, ProxyFault for the parser. */
type Fault = ['AuthenticationFault' | 'ProxyFault', string];

interface AttackCase {
  group: string;
  name: string;
  /** Called right before sending, so that Timestamps are fresh. */
  build(k: Kit): AttackRequest;
  fault: Fault;
  /** Transport-level refusals keep their own status even under SOAP 1.1. */
  status?: number;
  /** Extra assertions on the reply. */
  check?(reply: string): void;
  /** xmlsec1's verdict (ids resolved anywhere, no position checks), with the signer's certificate. */
  xmlsec1?: { verifies: boolean; signer: PairName; extraIdAttrs?: string[] };
}

const EVIL = 'EVIL';
const ATTACKER_NS = 'urn:attacker';
const SECURE_TIMESTAMP = { ttlSeconds: 300, skewSeconds: 60 };

// ---------------------------------------------------------------------------------------------
// Request bodies.

function taskBody(sessionId: string, text: string): string {
  return op(
    'sendTaskInput',
    `<sym:sessionId>${sessionId}</sym:sessionId><sym:taskSubmissionAttributes><sym:taskInput>` +
      `<sym:text>${text}</sym:text></sym:taskInput></sym:taskSubmissionAttributes>`,
  );
}

/** A sendTaskInput whose XML payload is an empty slot the wrapping attack fills. */
function xmlTaskBody(sessionId: string): string {
  return op(
    'sendTaskInput',
    `<sym:sessionId>${sessionId}</sym:sessionId><sym:taskSubmissionAttributes><sym:taskInput>` +
      `<sym:xml/></sym:taskInput></sym:taskSubmissionAttributes>`,
  );
}

const statusBody = (sessionId: string): string =>
  op('getSessionStatus', `<sym:sessionId>${sessionId}</sym:sessionId>`);

function as(pair: CertPair, extra: Partial<SignOptions> = {}): SignOptions {
  return { certPem: pair.certPem, keyPem: pair.keyPem, ...extra };
}

// ---------------------------------------------------------------------------------------------
// XML Signature Wrapping: a legitimately signed envelope, its signed Body moved elsewhere and an
// attacker's Body put where the proxy dispatches from.

const PLACEMENTS = {
  'header-wrapper': 'a wrapper element in soap:Header',
  security: 'wsse:Security',
  'ds-object': 'a ds:Object inside the Signature',
  'nested-in-evil-body': "the attacker's Body (as the task's XML payload)",
  'second-body': "a second Body after the attacker's",
} as const;
type Placement = keyof typeof PLACEMENTS;

const EVIL_IDS = {
  'new-id': 'a new wsu:Id',
  'no-id': 'no id',
  'duplicate-id': "the signed Body's wsu:Id",
} as const;
type EvilId = keyof typeof EVIL_IDS;

function wrapBody(signedXml: string, sessionId: string, placement: Placement, evilId: EvilId): string {
  const p = signedParts(signedXml);
  const signedBody = p.body;
  const idAttr =
    evilId === 'new-id'
      ? ` wsu:Id="Body-${randomUUID()}"`
      : evilId === 'duplicate-id'
        ? ` wsu:Id="${signedBody.getAttributeNS(NS.wsu, 'Id')}"`
        : '';
  const inner =
    placement === 'nested-in-evil-body' ? xmlTaskBody(sessionId) : taskBody(sessionId, `${EVIL}-wrapped`);
  const evilBody = importFragment(
    p.doc,
    `<soap:Body xmlns:soap="${p.soapNs}" xmlns:wsu="${NS.wsu}"${idAttr}>${inner}</soap:Body>`,
  );
  p.envelope.removeChild(signedBody);
  p.envelope.appendChild(evilBody);
  switch (placement) {
    case 'header-wrapper': {
      const wrapper = importFragment(p.doc, `<atk:Wrapper xmlns:atk="${ATTACKER_NS}"/>`);
      wrapper.appendChild(signedBody);
      p.header.appendChild(wrapper);
      break;
    }
    case 'security':
      p.security.appendChild(signedBody);
      break;
    case 'ds-object': {
      const object = p.doc.createElementNS(NS.ds, 'ds:Object');
      object.appendChild(signedBody);
      p.signature.appendChild(object);
      break;
    }
    case 'nested-in-evil-body': {
      const slot = evilBody.getElementsByTagNameNS(NS.sym, 'xml')[0]!;
      slot.appendChild(signedBody);
      break;
    }
    case 'second-body':
      p.envelope.appendChild(signedBody);
      break;
  }
  return serializeXmlDoc(p.doc);
}

/**
 * The signed Timestamp (a stale one, from a captured message) moved into a wrapper, in the Header or
 * inside wsse:Security, and a fresh unsigned one put in its place.
 */
function wrapTimestamp(signedXml: string, into: 'header' | 'security'): string {
  const p = signedParts(signedXml);
  const signedTs = p.timestamp!;
  const now = new Date();
  const fresh = importFragment(
    p.doc,
    `<wsu:Timestamp xmlns:wsu="${NS.wsu}" wsu:Id="TS-${randomUUID()}"><wsu:Created>${now.toISOString()}</wsu:Created>` +
      `<wsu:Expires>${new Date(now.getTime() + 300000).toISOString()}</wsu:Expires></wsu:Timestamp>`,
  );
  p.security.replaceChild(fresh, signedTs);
  const wrapper = importFragment(p.doc, `<atk:Wrapper xmlns:atk="${ATTACKER_NS}"/>`);
  wrapper.appendChild(signedTs);
  (into === 'header' ? p.header : p.security).appendChild(wrapper);
  return serializeXmlDoc(p.doc);
}

function edit(signedXml: string, change: (p: ReturnType<typeof signedParts>) => void): string {
  const p = signedParts(signedXml);
  change(p);
  return serializeXmlDoc(p.doc);
}

/** Adds an XPath filter (an identity one: the digest stays right) before exc-c14n on the Body reference. */
function withXPathTransform(signedXml: string, keyPem: string): string {
  return edit(signedXml, (p) => {
    addBodyXPathTransform(p);
    resignSignedInfo(p, keyPem);
  });
}

// ---------------------------------------------------------------------------------------------
// The catalogue.

const structure = (code: string): Fault => ['AuthenticationFault', `SSP_WSS_${code}`];

function buildCases(): AttackCase[] {
  const cases: AttackCase[] = [];
  const signedTask = (
    k: Kit,
    text: string,
    signer: PairName = 'client',
    extra: Partial<SignOptions> = {},
  ): string => signedEnvelope(taskBody(k.sessionId, text), as(k.pki[signer], extra));

  for (const placement of Object.keys(PLACEMENTS) as Placement[]) {
    for (const evilId of Object.keys(EVIL_IDS) as EvilId[]) {
      cases.push({
        group: 'XML Signature Wrapping',
        name: `signed Body moved into ${PLACEMENTS[placement]}; attacker's Body carries ${EVIL_IDS[evilId]}`,
        build: (k) => ({ xml: wrapBody(signedTask(k, 'GOOD-wrapped'), k.sessionId, placement, evilId) }),
        // Two Bodies are not a SOAP envelope at all: the parser refuses them before WS-Security runs.
        fault: placement === 'second-body' ? ['ProxyFault', 'SSP_NOT_SOAP'] : structure('STRUCTURE'),
        // With a duplicate id xmlsec1 refuses on its own (libxml2 will not register an id twice).
        xmlsec1: { verifies: evilId !== 'duplicate-id', signer: 'client' },
      });
    }
  }

  const structural: AttackCase[] = [
    ...(['header', 'security'] as const).map((into): AttackCase => ({
      group: 'Security header',
      name: `Timestamp wrapping: stale signed Timestamp moved into a wrapper in ${into === 'header' ? 'soap:Header' : 'wsse:Security'}, a fresh unsigned one in its place`,
      build: (k) => ({
        xml: wrapTimestamp(
          signedTask(k, 'GOOD-stale', 'client', { created: new Date(Date.now() - 3600_000) }),
          into,
        ),
      }),
      fault: structure('STRUCTURE'),
      xmlsec1: { verifies: true, signer: 'client' },
    })),
    {
      group: 'Security header',
      name: 'Signature removed',
      build: (k) => ({
        xml: edit(signedTask(k, `${EVIL}-unsigned`), (p) => p.security.removeChild(p.signature)),
      }),
      fault: structure('MISSING'),
    },
    {
      group: 'Security header',
      name: 'no Timestamp (signature over the Body only)',
      build: (k) => ({ xml: signedTask(k, `${EVIL}-no-timestamp`, 'client', { includeTimestamp: false }) }),
      fault: structure('MISSING'),
      xmlsec1: { verifies: true, signer: 'client' },
    },
    {
      group: 'Security header',
      name: 'no Security header at all',
      build: (k) => ({
        xml: `<soap:Envelope xmlns:soap="${NS.soap11}"><soap:Body>${taskBody(k.sessionId, `${EVIL}-bare`)}</soap:Body></soap:Envelope>`,
      }),
      fault: structure('MISSING'),
    },
    {
      group: 'Security header',
      name: 'two Security headers',
      build: (k) => ({
        xml: edit(signedTask(k, 'GOOD-two-headers'), (p) => p.header.appendChild(p.security.cloneNode(true))),
      }),
      fault: structure('STRUCTURE'),
      // The copy repeats every wsu:Id, which libxml2 refuses to register.
      xmlsec1: { verifies: false, signer: 'client' },
    },
    {
      group: 'Security header',
      name: 'two Signatures in the Security header',
      build: (k) => ({
        xml: edit(signedTask(k, 'GOOD-two-signatures'), (p) =>
          p.security.appendChild(p.signature.cloneNode(true)),
        ),
      }),
      fault: structure('STRUCTURE'),
      xmlsec1: { verifies: true, signer: 'client' },
    },
    {
      group: 'Security header',
      name: 'a Reference to an unexpected element (an extra header block)',
      build: (k) => {
        const id = `Note-${randomUUID()}`;
        return {
          xml: signedTask(k, 'GOOD-extra-ref', 'client', {
            headerXml: `<atk:Note xmlns:atk="${ATTACKER_NS}" xmlns:wsu="${NS.wsu}" wsu:Id="${id}">signed too</atk:Note>`,
            extraReferenceIds: [id],
          }),
        };
      },
      fault: structure('STRUCTURE'),
      xmlsec1: { verifies: true, signer: 'client', extraIdAttrs: ['--id-attr:Id', `${ATTACKER_NS}:Note`] },
    },
    {
      group: 'Security header',
      name: 'an XPath transform on the Body reference',
      build: (k) => ({ xml: withXPathTransform(signedTask(k, 'GOOD-xpath'), k.pki.client.keyPem) }),
      fault: structure('STRUCTURE'),
      xmlsec1: { verifies: true, signer: 'client' },
    },
    {
      group: 'Security header',
      name: 'an enveloped-signature transform on the Body reference',
      build: (k) => ({
        xml: signedTask(k, 'GOOD-enveloped', 'client', {
          bodyTransforms: [URIS.envelopedSignature, URIS.excC14n],
        }),
      }),
      fault: structure('STRUCTURE'),
      xmlsec1: { verifies: true, signer: 'client' },
    },
  ];
  cases.push(...structural);

  const tokens: [PairName, string, Fault][] = [
    [
      'selfSigned',
      "attacker's self-signed certificate with the good client's subject",
      structure('UNTRUSTED'),
    ],
    [
      'rogueCaClient',
      "a certificate from a rogue CA (same CA name) with the good client's subject",
      structure('UNTRUSTED'),
    ],
    ['expired', 'an expired certificate', structure('UNTRUSTED')],
    ['notYetValid', 'a not-yet-valid certificate', structure('UNTRUSTED')],
    ['revoked', 'a revoked certificate (listed in the CRL)', structure('UNTRUSTED')],
    ['noDigitalSignature', 'a certificate without the digitalSignature key usage', structure('UNTRUSTED')],
    ['notCaIssued', 'a certificate issued by an end-entity certificate (CA:false)', structure('UNTRUSTED')],
    ['weakRsa', 'an RSA-1024 certificate', structure('ALGORITHM')],
  ];
  for (const [signer, what, fault] of tokens) {
    cases.push({
      group: 'signing certificate',
      name: `signed with ${what}`,
      build: (k) => ({ xml: signedTask(k, `${EVIL}-${signer}`, signer) }),
      fault,
      xmlsec1: { verifies: true, signer },
    });
  }

  cases.push(
    {
      group: 'algorithms',
      name: 'RSA-SHA1 SignatureMethod',
      build: (k) => ({
        xml: signedTask(k, `${EVIL}-rsa-sha1`, 'client', { signatureAlgorithm: 'rsa-sha1' }),
      }),
      fault: structure('ALGORITHM'),
      xmlsec1: { verifies: true, signer: 'client' },
    },
    {
      group: 'algorithms',
      name: 'SHA-1 reference digests',
      build: (k) => ({ xml: signedTask(k, `${EVIL}-sha1-digest`, 'client', { digestAlgorithm: 'sha1' }) }),
      fault: structure('ALGORITHM'),
      xmlsec1: { verifies: true, signer: 'client' },
    },
    {
      group: 'algorithms',
      name: "HMAC-SHA1 SignatureMethod keyed with the good client's public certificate (key confusion)",
      build: (k) => ({
        xml: signedTask(k, `${EVIL}-hmac`, 'client', {
          signatureAlgorithm: 'hmac-sha1',
          keyPem: k.pki.client.certPem,
        }),
      }),
      fault: structure('ALGORITHM'),
    },
    {
      group: 'algorithms',
      name: 'RSA-MD5 SignatureMethod',
      build: (k) => ({ xml: signedTask(k, `${EVIL}-rsa-md5`, 'client', { signatureAlgorithm: 'rsa-md5' }) }),
      fault: structure('ALGORITHM'),
    },
    {
      group: 'algorithms',
      name: 'ECDSA-SHA256 SignatureMethod over an RSA key (key/method mismatch)',
      build: (k) => ({
        xml: signedTask(k, `${EVIL}-mismatch`, 'client', { signatureAlgorithm: 'ecdsa-sha256' }),
      }),
      fault: structure('ALGORITHM'),
    },
  );

  const minute = 60_000;
  cases.push(
    {
      group: 'Timestamp',
      name: 'expired Timestamp (expired 400 s ago, skew 60 s)',
      build: (k) => ({
        xml: signedTask(k, `${EVIL}-expired-ts`, 'client', { created: new Date(Date.now() - 700_000) }),
      }),
      fault: structure('TIMESTAMP'),
      xmlsec1: { verifies: true, signer: 'client' },
    },
    {
      group: 'Timestamp',
      name: 'Timestamp created 10 minutes in the future (skew 60 s)',
      build: (k) => ({
        xml: signedTask(k, `${EVIL}-future-ts`, 'client', { created: new Date(Date.now() + 10 * minute) }),
      }),
      fault: structure('TIMESTAMP'),
      xmlsec1: { verifies: true, signer: 'client' },
    },
    {
      group: 'Timestamp',
      name: 'Timestamp lifetime of one hour (ttl 300 s)',
      build: (k) => ({ xml: signedTask(k, `${EVIL}-long-ts`, 'client', { expiresInSeconds: 3600 }) }),
      fault: structure('TIMESTAMP'),
      xmlsec1: { verifies: true, signer: 'client' },
    },
  );

  cases.push(
    {
      group: 'modified request',
      name: 'Body text changed after signing',
      build: (k) => ({ xml: signedTask(k, 'GOOD-modified').replace('GOOD-modified', `${EVIL}-modified`) }),
      fault: structure('SIGNATURE'),
      xmlsec1: { verifies: false, signer: 'client' },
    },
    {
      group: 'modified request',
      name: 'one bit of the SignatureValue flipped',
      build: (k) => ({
        xml: edit(signedTask(k, `${EVIL}-flipped`), (p) => {
          const value = Buffer.from(p.signatureValue.textContent!, 'base64');
          value[value.length >> 1]! ^= 0x01;
          p.signatureValue.textContent = value.toString('base64');
        }),
      }),
      fault: structure('SIGNATURE'),
      xmlsec1: { verifies: false, signer: 'client' },
    },
    {
      group: 'modified request',
      name: 'SOAPAction naming getSessionStatus on a validly signed sendTaskInput',
      build: (k) => ({ xml: signedTask(k, `${EVIL}-action`), action: `${NS.sym}/getSessionStatus` }),
      fault: ['ProxyFault', 'SSP_ACTION_MISMATCH'],
      xmlsec1: { verifies: true, signer: 'client' },
    },
  );

  const inText = (k: Kit, label: string, replacement: string): string =>
    signedTask(k, `${EVIL}-${label}`).replace(`${EVIL}-${label}`, replacement);
  const lolz =
    '<!DOCTYPE lolz [<!ENTITY lol "lol">' +
    Array.from(
      { length: 9 },
      (_, i) => `<!ENTITY lol${i + 1} "${`&lol${i === 0 ? '' : i};`.repeat(10)}">`,
    ).join('') +
    ']>';
  cases.push(
    {
      group: 'parser',
      name: 'billion laughs (nested entity expansion)',
      build: (k) => ({ xml: lolz + inText(k, 'lolz', '&lol9;') }),
      fault: ['ProxyFault', 'SSP_FORBIDDEN_XML'],
    },
    {
      group: 'parser',
      name: 'XXE: external entity for /etc/passwd',
      build: (k) => ({
        xml: '<!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>' + inText(k, 'xxe', '&xxe;'),
      }),
      fault: ['ProxyFault', 'SSP_FORBIDDEN_XML'],
      check: (reply) => expect(reply).to.not.match(/root:.*:0:0:/),
    },
    {
      group: 'parser',
      name: '2,000-deep element nesting',
      build: (k) => ({ xml: inText(k, 'deep', '<d>'.repeat(2000) + '</d>'.repeat(2000)) }),
      fault: ['ProxyFault', 'SSP_XML_LIMIT'],
    },
    {
      group: 'parser',
      name: '50,000 attributes on one element',
      build: (k) => ({
        xml: inText(k, 'attrs', `<a ${Array.from({ length: 50000 }, (_, i) => `a${i}="x"`).join(' ')}/>`),
      }),
      fault: ['ProxyFault', 'SSP_XML_LIMIT'],
    },
    {
      group: 'parser',
      name: 'a 20 MB body',
      build: (k) => ({ xml: inText(k, 'huge', 'A'.repeat(20 * 1024 * 1024)) }),
      fault: ['ProxyFault', 'SSP_BODY_TOO_LARGE'],
      status: 413,
    },
    {
      group: 'parser',
      name: 'a signed request with an unsigned header holding bytes that are not UTF-8',
      build: (k) => {
        // The signature covers Body and Timestamp only, so the header is the firewall's problem
        // and ours: a decoder that substitutes U+FFFD would read something the firewall did not.
        const marker = 'NOT-UTF8-HERE';
        const xml = signedTask(k, `${EVIL}-encoding`, 'client', {
          headerXml: `<x:Note xmlns:x="urn:note">${marker}</x:Note>`,
        });
        const at = xml.indexOf(marker);
        const bad = Buffer.from([0xff, 0xfe, 0xc3, 0x28, 0xa0, 0xa1, 0xf0, 0x28, 0x8c, 0xbc]);
        return {
          xml: Buffer.concat([
            Buffer.from(xml.slice(0, at)),
            bad,
            Buffer.from(xml.slice(at + marker.length)),
          ]),
        };
      },
      fault: ['ProxyFault', 'SSP_MALFORMED_XML'],
    },
    {
      group: 'parser',
      name: 'an overlong UTF-8 "<" inside a task input',
      build: (k) => {
        const xml = signedTask(k, 'OVERLONG-HERE');
        const at = xml.indexOf('OVERLONG-HERE');
        return {
          xml: Buffer.concat([
            Buffer.from(xml.slice(0, at)),
            Buffer.from([0xc0, 0xbc]),
            Buffer.from(xml.slice(at + 'OVERLONG-HERE'.length)),
          ]),
        };
      },
      fault: ['ProxyFault', 'SSP_MALFORMED_XML'],
    },
    {
      group: 'parser',
      name: 'a UTF-16 body (with its byte order mark)',
      build: (k) => ({
        xml: Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(signedTask(k, 'utf16'), 'utf16le')]),
      }),
      fault: ['ProxyFault', 'SSP_MALFORMED_XML'],
    },
    {
      group: 'parser',
      name: 'garbage bytes',
      build: () => {
        const bytes = randomBytes(4096);
        bytes[0] = 0xff; // never '<'
        return { xml: bytes };
      },
      fault: ['ProxyFault', 'SSP_MALFORMED_XML'],
    },
    {
      group: 'parser',
      name: 'a signed SOAP 1.2 envelope sent with the SOAP 1.1 content type',
      build: (k) => ({
        xml: signedTask(k, `${EVIL}-version`, 'client', { soapVersion: '1.2' }),
        version: '1.1',
      }),
      fault: ['ProxyFault', 'SSP_VERSION_MISMATCH'],
    },
    {
      group: 'parser',
      name: 'a truncated envelope',
      build: (k) => {
        const xml = signedTask(k, `${EVIL}-truncated`);
        return { xml: xml.slice(0, xml.length >> 1) };
      },
      fault: ['ProxyFault', 'SSP_MALFORMED_XML'],
    },
  );
  return cases;
}

const CASES = buildCases();

// ---------------------------------------------------------------------------------------------
// Transport.

interface Reply {
  status: number;
  text: string;
}

/** Client side of TLS: the CA that issued the proxy's certificate, and optionally a client certificate. */
interface ClientTls {
  ca: string;
  cert?: CertPair;
}

/**
 * POST with node:http(s) rather than fetch: a proxy that refuses a 20 MB body answers before it
 * has read it, and the reply must be read even though the upload is cut short.
 */
function post(url: string, req: AttackRequest, tls?: ClientTls, timeoutMs = 30000): Promise<Reply> {
  const version = req.version ?? '1.1';
  const headers: Record<string, string> = {
    'content-type':
      req.contentType ??
      (version === '1.1' ? 'text/xml; charset=utf-8' : 'application/soap+xml; charset=utf-8'),
  };
  if (version === '1.1' && req.action !== undefined) headers['soapaction'] = `"${req.action}"`;
  const body = typeof req.xml === 'string' ? Buffer.from(req.xml, 'utf8') : req.xml;
  headers['content-length'] = String(body.length);
  const options: https.RequestOptions = { method: 'POST', headers, timeout: timeoutMs };
  if (tls)
    Object.assign(options, { ca: tls.ca, cert: tls.cert?.certPem, key: tls.cert?.keyPem, agent: false });
  return new Promise((resolve, reject) => {
    const onReply = (res: http.IncomingMessage): void => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }),
      );
      res.on('error', reject);
    };
    const r = url.startsWith('https:')
      ? https.request(url, options, onReply)
      : http.request(url, options, onReply);
    r.on('timeout', () => r.destroy(new Error(`no reply within ${timeoutMs} ms`)));
    // An error after the reply has started (EPIPE on the rest of a refused upload) changes nothing.
    r.on('error', reject);
    r.end(body);
  });
}

/** A proxy process whose stdout and stderr are kept, to search its logs. */
interface CapturedProxy {
  url: string;
  output(): string;
  stop(): Promise<number | null>;
}

function startCapturedProxy(config: Record<string, unknown>, timeoutMs = 20000): Promise<CapturedProxy> {
  const dir = mkdtempSync(join(tmpdir(), 'ssp-attacks-'));
  const file = join(dir, 'proxy.json');
  writeFileSync(file, JSON.stringify({ audit: { file: join(dir, 'audit.jsonl') }, ...config }));
  const child = spawn(
    process.execPath,
    [join(__dirname, '..', '..', 'src', 'cli.js'), 'serve', '--config', file],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString('utf8')));
  child.stderr.on('data', (c: Buffer) => (out += c.toString('utf8')));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`proxy did not start within ${timeoutMs} ms:\n${out}`));
    }, timeoutMs);
    const poll = setInterval(() => {
      const m = /listening on (\S+)[\s\S]*WSDL:/.exec(out);
      if (!m) return;
      clearInterval(poll);
      clearTimeout(timer);
      resolve({ url: m[1]!, output: () => out, stop: () => stopChild(child) });
    }, 20);
    child.once('exit', (code) => {
      clearInterval(poll);
      clearTimeout(timer);
      reject(new Error(`proxy exited with code ${code} before listening:\n${out}`));
    });
  });
}

/** The security section every proxy in these suites runs with. */
function secureConfig(pki: TestPki, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    mode: 'wss',
    trust: { caFiles: [pki.ca.certFile], crlFiles: [pki.crlFile], signerCertFiles: [pki.client.certFile] },
    timestamp: SECURE_TIMESTAMP,
    responseSigning: { enabled: true, certFile: pki.proxyEc.certFile, keyFile: pki.proxyEc.keyFile },
    ...extra,
  };
}

const connectBody = (password = 'p'): string =>
  op(
    'connect',
    `<sym:applicationName>echo</sym:applicationName><sym:username>u</sym:username><sym:password>${password}</sym:password>`,
  );

// ---------------------------------------------------------------------------------------------

describe('security: attack envelopes are built right (offline: xmlsec1, Santuario)', function () {
  this.timeout(120000);
  let pki: TestPki;
  const kit = (): Kit => ({ pki, sessionId: 'offline-session' });

  before(async function () {
    requirePeer(this, 'xmlsec1', hasXmlsec1(), XMLSEC1_INSTALL);
    pki = await makeTestPki();
  });

  for (const c of CASES.filter((x) => x.xmlsec1)) {
    const { verifies, signer, extraIdAttrs = [] } = c.xmlsec1!;
    it(`xmlsec1 ${verifies ? 'accepts' : 'refuses'}: ${c.name}`, async () => {
      const xml = c.build(kit()).xml.toString();
      const verdict = await verifyWithXmlsec1(xml, pki[signer].certFile, [
        ...XMLSEC1_ID_ATTRS,
        ...extraIdAttrs,
      ]);
      expect(verdict.ok, verdict.output).to.equal(verifies);
    });
  }

  it('a verifier that finds Body and Timestamp by position (Santuario harness) refuses every wrapping', async function () {
    requirePeer(this, 'Apache Santuario', hasSantuario(), SANTUARIO_INSTALL);
    const wrapped = CASES.filter((c) => c.group === 'XML Signature Wrapping' || /wrapping/i.test(c.name));
    const verdicts = await verifyManyWithSantuario(
      wrapped.map((c) => ({
        envelopeXml: c.build(kit()).xml.toString(),
        signerCertPemFile: pki.client.certFile,
      })),
    );
    verdicts.forEach((v, i) => expect(v.ok, `${wrapped[i]!.name}: ${v.output}`).to.equal(false));
    // ...while the untouched original passes it, so the refusals are about position, not shape.
    const [control] = await verifyManyWithSantuario([
      {
        envelopeXml: signedEnvelope(taskBody('offline-session', 'GOOD'), as(pki.client)),
        signerCertPemFile: pki.client.certFile,
      },
    ]);
    expect(control!.ok, control!.output).to.equal(true);
  });
});

describe('security: attacks against a proxy in wss mode', function () {
  this.timeout(180000);
  let pki: TestPki;
  let grid: GridProcess;
  let proxy: ProxyProcess;
  let sessionId: string;
  /** Tasks the good client has legitimately put into its session so far. */
  let expectedTasks = 0;

  const send = (req: AttackRequest): Promise<Reply> => post(proxy.url, req);

  /** Signs `body` as `signer`, sends it and expects success. */
  async function callOk(signer: CertPair, body: string, extra: Partial<SignOptions> = {}): Promise<string> {
    const r = await send({ xml: signedEnvelope(body, as(signer, extra)), version: extra.soapVersion });
    expect(faultCodeOf(r.text), r.text.slice(0, 800)).to.equal(undefined);
    expect(r.status, r.text.slice(0, 800)).to.equal(200);
    return r.text;
  }

  /** Everything the grid has ever accepted into the session: pending + running + done + failed. */
  async function taskTotal(): Promise<number> {
    const text = await callOk(pki.client, statusBody(sessionId));
    const fields = ['pendingTasks', 'runningTasks', 'doneTasks', 'failedTasks'];
    return fields.reduce((sum, f) => {
      const v = pick(text, f);
      expect(v, `${f} in ${text.slice(0, 800)}`).to.match(/^\d+$/);
      return sum + Number(v);
    }, 0);
  }

  async function sendTaskOk(signer: CertPair, text: string, extra: Partial<SignOptions> = {}): Promise<void> {
    const reply = await callOk(signer, taskBody(sessionId, text), extra);
    expect(pick(reply, 'taskId'), reply.slice(0, 800)).to.be.a('string').and.not.equal('');
    expectedTasks++;
    expect(await taskTotal()).to.equal(expectedTasks);
  }

  before(async () => {
    pki = await makeTestPki();
    grid = await spawnGrid(['--port', '0']);
    proxy = await startProxyProcess(
      proxyConfig([grid.address], '', { security: secureConfig(pki), log: { level: 'error' } }),
    );
    const connected = await callOk(pki.client, connectBody());
    const connectionId = pick(connected, 'connectionId')!;
    const created = await callOk(
      pki.client,
      op('createSession', `<sym:connectionId>${connectionId}</sym:connectionId>`),
    );
    sessionId = pick(created, 'sessionId')!;
    expect(sessionId).to.be.a('string').and.not.equal('');
    expect(await taskTotal()).to.equal(0);
  });

  after(async () => {
    await proxy?.stop();
    await grid?.stop();
  });

  describe('positive controls', () => {
    it('a valid RSA-SHA256 request with a BinarySecurityToken is served', async () => {
      await sendTaskOk(pki.client, 'GOOD-bst');
    });

    for (const keyReference of ['issuer-serial', 'ski', 'thumbprint'] as const) {
      it(`key reference ${keyReference} (to a configured signer certificate) is served`, async () => {
        await sendTaskOk(pki.client, `GOOD-${keyReference}`, { keyReference });
      });
    }

    it('RSA-SHA512 is served', async () => {
      await sendTaskOk(pki.client, 'GOOD-rsa-sha512', { signatureAlgorithm: 'rsa-sha512' });
    });

    it('a signed SOAP 1.2 request is served', async () => {
      await sendTaskOk(pki.client, 'GOOD-soap12', { soapVersion: '1.2' });
    });

    it('an ECDSA-SHA256 (P-256) client is served with its own connection and session', async () => {
      const ec = { signatureAlgorithm: 'ecdsa-sha256' as const };
      const connected = await callOk(pki.ecClient, connectBody(), ec);
      const created = await callOk(
        pki.ecClient,
        op('createSession', `<sym:connectionId>${pick(connected, 'connectionId')}</sym:connectionId>`),
        ec,
      );
      const ecSession = pick(created, 'sessionId')!;
      const sent = await callOk(pki.ecClient, taskBody(ecSession, 'GOOD-ecdsa'), ec);
      expect(pick(sent, 'taskId')).to.be.a('string').and.not.equal('');
      // The good client's session is untouched by another consumer's work.
      expect(await taskTotal()).to.equal(expectedTasks);
    });

    it("another trusted consumer using the good client's session id gets NotOwnerFault", async () => {
      const r = await send({
        xml: signedEnvelope(taskBody(sessionId, `${EVIL}-other-consumer`), as(pki.otherClient)),
      });
      expect(faultCodeOf(r.text), r.text.slice(0, 800)).to.deep.equal({
        detail: 'NotOwnerFault',
        code: 'SSP_NOT_OWNER',
      });
      expect(await taskTotal()).to.equal(expectedTasks);
    });
  });

  const groups = [...new Set(CASES.map((c) => c.group))];
  for (const group of groups) {
    describe(`refused: ${group}`, () => {
      for (const c of CASES.filter((x) => x.group === group)) {
        it(`${c.name} → ${c.fault[1]}`, async () => {
          // Counted per case as well as overall, so one leak does not fail every later case.
          const before = await taskTotal();
          const r = await send(c.build({ pki, sessionId }));
          // The grid saw nothing, and the proxy still serves the good client.
          expect(await taskTotal(), 'tasks in the session after the attack').to.equal(before);
          expect(faultCodeOf(r.text), `${r.status}: ${r.text.slice(0, 800)}`).to.deep.equal({
            detail: c.fault[0],
            code: c.fault[1],
          });
          if (c.status !== undefined) expect(r.status).to.equal(c.status);
          else expect(r.status).to.be.within(400, 599);
          c.check?.(r.text);
        });
      }
    });
  }

  describe('replay', () => {
    it('the same signed envelope sent twice: served once, then SSP_WSS_REPLAY', async () => {
      const xml = signedEnvelope(taskBody(sessionId, 'GOOD-replayed'), as(pki.client));
      const first = await send({ xml });
      expect(faultCodeOf(first.text), first.text.slice(0, 800)).to.equal(undefined);
      expect(first.status).to.equal(200);
      expectedTasks++;
      const second = await send({ xml });
      expect(faultCodeOf(second.text), second.text.slice(0, 800)).to.deep.equal({
        detail: 'AuthenticationFault',
        code: 'SSP_WSS_REPLAY',
      });
      expect(await taskTotal()).to.equal(expectedTasks);
    });
  });

  describe('resends of the same signed message (a load balancer retrying)', () => {
    const wsa = (id: string): string =>
      `<wsa:MessageID xmlns:wsa="http://www.w3.org/2005/08/addressing">${id}</wsa:MessageID>`;

    it('a signed send with a MessageID sent twice: the same task id, submitted once', async () => {
      const xml = signedEnvelope(
        taskBody(sessionId, 'GOOD-resent'),
        as(pki.client, { headerXml: wsa('urn:uuid:resend-1') }),
      );
      const first = await send({ xml });
      expect(first.status, first.text.slice(0, 800)).to.equal(200);
      expectedTasks++;
      const second = await send({ xml });
      expect(second.status, second.text.slice(0, 800)).to.equal(200);
      expect(pick(second.text, 'taskId')).to.equal(pick(first.text, 'taskId'));
      expect(await taskTotal()).to.equal(expectedTasks);
    });

    it('the same signature under another MessageID is a replay, not a resend', async () => {
      const xml = signedEnvelope(
        taskBody(sessionId, 'GOOD-then-relabelled'),
        as(pki.client, { headerXml: wsa('urn:uuid:resend-2') }),
      );
      expect((await send({ xml })).status).to.equal(200);
      expectedTasks++;
      // The MessageID is outside the signature here, so an attacker could change it freely.
      const relabelled = xml.replace('urn:uuid:resend-2', 'urn:uuid:resend-3');
      const r = await send({ xml: relabelled });
      expect(faultCodeOf(r.text), r.text.slice(0, 800)).to.deep.equal({
        detail: 'AuthenticationFault',
        code: 'SSP_WSS_REPLAY',
      });
      expect(await taskTotal()).to.equal(expectedTasks);
    });

    it('a resent signed connect answers the remembered connection id', async () => {
      const body = op(
        'connect',
        '<sym:applicationName>echo</sym:applicationName><sym:username>u</sym:username><sym:password>p</sym:password>',
      );
      const xml = signedEnvelope(body, as(pki.client, { headerXml: wsa('urn:uuid:resend-connect') }));
      const first = await send({ xml });
      const second = await send({ xml });
      expect(second.status, second.text.slice(0, 800)).to.equal(200);
      expect(pick(second.text, 'connectionId')).to.equal(pick(first.text, 'connectionId'));
    });
  });

  describe('afterwards', () => {
    it('a legitimate task still goes through, and no attacker payload ever reached the grid', async () => {
      await sendTaskOk(pki.client, 'GOOD-final');
      const seen: string[] = [];
      // Bounded: the echo service answers in milliseconds; 40 polls of up to 500 ms is ample.
      for (let i = 0; i < 40 && seen.length < expectedTasks; i++) {
        const reply = await callOk(
          pki.client,
          op(
            'fetchTaskOutput',
            `<sym:sessionId>${sessionId}</sym:sessionId><sym:countMax>100</sym:countMax><sym:timeoutMillis>500</sym:timeoutMillis>`,
          ),
        );
        for (const m of reply.matchAll(/<(?:\w+:)?text>([^<]*)<\/(?:\w+:)?text>/g)) seen.push(m[1]!);
      }
      expect(seen).to.have.length(expectedTasks);
      expect(seen.filter((t) => t.includes(EVIL))).to.deep.equal([]);
      expect(seen.every((t) => t.startsWith('GOOD-'))).to.equal(true);
    });
  });
});

describe('security: identity, TLS binding, algorithm policy and secrets', function () {
  this.timeout(120000);
  let pki: TestPki;
  let grid: GridProcess;

  before(async () => {
    pki = await makeTestPki();
    grid = await spawnGrid(['--port', '0']);
  });

  after(async () => {
    await grid?.stop();
  });

  /** Signs `body` as `signer`, posts it and returns the fault, or undefined and the reply on success. */
  async function signedCall(
    url: string,
    signer: CertPair,
    body: string,
    extra: Partial<SignOptions> = {},
    tls?: ClientTls,
  ): Promise<{ fault: ReturnType<typeof faultCodeOf>; reply: Reply }> {
    const reply = await post(url, { xml: signedEnvelope(body, as(signer, extra)) }, tls);
    return { fault: faultCodeOf(reply.text), reply };
  }

  describe('mapping table: certificates to consumer ids', () => {
    let proxy: CapturedProxy;
    const password = `grid-password-${randomUUID()}`;

    before(async () => {
      const rfc4514 = (pem: string): string =>
        new X509Certificate(pem).subject.split('\n').reverse().join(',');
      proxy = await startCapturedProxy(
        proxyConfig([grid.address], '', {
          // debug: the most the proxy ever logs, so that the secrets check below is the strictest.
          log: { level: 'debug' },
          security: secureConfig(pki, {
            consumers: [
              { id: 'risk-batch', subject: rfc4514(pki.client.certPem) },
              {
                id: 'risk-batch',
                fingerprint256: new X509Certificate(pki.otherClient.certPem).fingerprint256,
              },
            ],
            requireMappedConsumer: true,
          }),
        }),
      );
    });

    after(async () => {
      await proxy?.stop();
    });

    it('two certificates mapped to one consumer id share its sessions; an unmapped one is refused', async () => {
      const connected = await signedCall(proxy.url, pki.client, connectBody(password));
      expect(connected.fault, connected.reply.text.slice(0, 800)).to.equal(undefined);
      const created = await signedCall(
        proxy.url,
        pki.client,
        op(
          'createSession',
          `<sym:connectionId>${pick(connected.reply.text, 'connectionId')}</sym:connectionId>`,
        ),
      );
      const sessionId = pick(created.reply.text, 'sessionId')!;
      const viaOther = await signedCall(proxy.url, pki.otherClient, statusBody(sessionId));
      expect(viaOther.fault, viaOther.reply.text.slice(0, 800)).to.equal(undefined);
      expect(pick(viaOther.reply.text, 'state')).to.equal('Open');
      const unmapped = await signedCall(proxy.url, pki.ecClient, statusBody(sessionId), {
        signatureAlgorithm: 'ecdsa-sha256',
      });
      expect(unmapped.fault).to.deep.equal({ detail: 'AuthenticationFault', code: 'SSP_UNKNOWN_CONSUMER' });
    });

    it('the grid password is passed through but never logged, even at debug level', async () => {
      // A refused connect too: error paths are where arguments tend to end up in logs.
      const refused = await signedCall(
        proxy.url,
        pki.client,
        op(
          'connect',
          `<sym:applicationName>no-such-app</sym:applicationName><sym:username>u</sym:username><sym:password>${password}</sym:password>`,
        ),
      );
      expect(refused.fault?.detail).to.equal('InvalidArgumentFault');
      await proxy.stop();
      const logs = proxy.output();
      expect(logs, 'the proxy logged something at debug level').to.match(/"level":"(debug|info)"/);
      expect(logs).to.not.contain(password);
    });
  });

  describe('algorithm policy: security.algorithms.allowSha1', () => {
    let proxy: ProxyProcess;

    before(async () => {
      proxy = await startProxyProcess(
        proxyConfig([grid.address], '', {
          log: { level: 'error' },
          security: secureConfig(pki, { algorithms: { allowSha1: true } }),
        }),
      );
    });

    after(async () => {
      await proxy?.stop();
    });

    it('allowSha1: true admits RSA-SHA1 with SHA-1 digests (a legacy client), still never HMAC', async () => {
      const legacy = await signedCall(proxy.url, pki.client, connectBody(), {
        signatureAlgorithm: 'rsa-sha1',
        digestAlgorithm: 'sha1',
      });
      expect(legacy.fault, legacy.reply.text.slice(0, 800)).to.equal(undefined);
      const hmac = await signedCall(proxy.url, pki.client, connectBody(), {
        signatureAlgorithm: 'hmac-sha1',
        keyPem: pki.client.certPem,
      });
      expect(hmac.fault).to.deep.equal({ detail: 'AuthenticationFault', code: 'SSP_WSS_ALGORITHM' });
    });
  });

  describe('mTLS: the TLS client certificate must be the signer', () => {
    let proxy: ProxyProcess;
    let tlsCa: string;

    before(async () => {
      tlsCa = pki.ca.certPem;
      proxy = await startProxyProcess(
        proxyConfig([grid.address], '', {
          server: {
            host: '127.0.0.1',
            port: 0,
            tls: {
              certFile: pki.server.certFile,
              keyFile: pki.server.keyFile,
              caFiles: [pki.ca.certFile],
              requireClientCert: true,
            },
          },
          log: { level: 'error' },
          security: secureConfig(pki),
        }),
      );
      expect(proxy.url).to.match(/^https:/);
    });

    after(async () => {
      await proxy?.stop();
    });

    it('signer and TLS client certificate are the same: served', async () => {
      const r = await signedCall(proxy.url, pki.client, connectBody(), {}, { ca: tlsCa, cert: pki.client });
      expect(r.fault, r.reply.text.slice(0, 800)).to.equal(undefined);
      expect(r.reply.status).to.equal(200);
    });

    it("a message signed by client-a sent over otherClient's TLS connection: SSP_TLS_SIGNER_MISMATCH", async () => {
      const r = await signedCall(
        proxy.url,
        pki.client,
        connectBody(),
        {},
        { ca: tlsCa, cert: pki.otherClient },
      );
      expect(r.fault).to.deep.equal({ detail: 'AuthenticationFault', code: 'SSP_TLS_SIGNER_MISMATCH' });
    });

    it('no TLS client certificate: the handshake is refused', async () => {
      let error: unknown;
      try {
        await signedCall(proxy.url, pki.client, connectBody(), {}, { ca: tlsCa });
      } catch (e) {
        error = e;
      }
      expect(error, 'the request should fail at the TLS layer').to.be.instanceOf(Error);
    });
  });
});
