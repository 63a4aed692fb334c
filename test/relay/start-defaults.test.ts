/**
 * What a client generated from the served WSDL meets on the defaults of `npm start`
 * (`serve --dev`): the responses must be signed with the algorithm the WSDL's
 * WS-SecurityPolicy promises, or a policy-enforcing client (WSS4J/CXF, a JAX-WS handler)
 * refuses every one of them.
 */
import { devBanner } from '../helpers/wsimport';
import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_DEV_CERTS_DIR } from '../../src/commands/certs';
import { DEV_PKI_FILES } from '../../src/commands/dev-pki';
import { stopChild } from '../../src/server/embedded-grid';
import { parseXml, childElements, type XmlElement } from '../../src/soap/xml';
import { op, postSoap } from '../helpers/soap-http';
import { signedEnvelope } from '../helpers/wss-client';

const CLI = join(__dirname, '..', '..', 'src', 'cli.js');
const SP = 'http://docs.oasis-open.org/ws-sx/ws-securitypolicy/200702';
const DS = 'http://www.w3.org/2000/09/xmldsig#';

/** WS-SecurityPolicy 1.2 §6.1: the asymmetric signature and digest each algorithm suite names. */
const SUITES: Record<string, { signature: string; digest: string }> = {
  Basic256Sha256: {
    signature: 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256',
    digest: 'http://www.w3.org/2001/04/xmlenc#sha256',
  },
  Basic256: {
    signature: 'http://www.w3.org/2000/09/xmldsig#rsa-sha1',
    digest: 'http://www.w3.org/2000/09/xmldsig#sha1',
  },
};

function descendants(el: XmlElement, ns: string, local: string): XmlElement[] {
  const out: XmlElement[] = [];
  const walk = (e: XmlElement): void => {
    for (const c of childElements(e)) {
      if (c.uri === ns && c.local === local) out.push(c);
      walk(c);
    }
  };
  walk(el);
  return out;
}

const algorithmOf = (el: XmlElement): string | undefined =>
  el.attrs.find((a) => a.local === 'Algorithm')?.value;

describe('npm start defaults: responses are signed as the served WSDL promises', function () {
  this.timeout(60_000);
  let child: ChildProcess | undefined;
  let url = '';
  let banner = '';

  before(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ssp-start-'));
    child = spawn(process.execPath, [CLI, 'serve', '--dev'], {
      env: {
        ...process.env,
        SSP_SERVER__PORT: '0',
        SSP_ADMIN__PORT: '0',
        SSP_AUDIT__FILE: join(dir, 'audit.jsonl'),
        SSP_LOG__LEVEL: 'error',
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    ({ url, banner } = await devBanner(child));
  });

  after(async () => {
    if (child) await stopChild(child);
  });

  it('signs responses with the algorithm suite of the WSDL policy (Basic256Sha256: RSA-SHA256)', async () => {
    const wsdl = parseXml(await (await fetch(`${url}?wsdl`)).text(), undefined, { allowComments: true });
    // sp:AlgorithmSuite > wsp:Policy > sp:<suite name>
    const suites = descendants(wsdl, SP, 'AlgorithmSuite').flatMap((s) =>
      childElements(s).flatMap(childElements),
    );
    expect(suites.length, 'the WSDL names an algorithm suite').to.be.greaterThan(0);
    const promised = new Set(suites.map((s) => s.local));
    expect(promised.size, 'one suite for every binding').to.equal(1);
    const suite = SUITES[[...promised][0]!];
    expect(suite, `a known suite: ${[...promised].join()}`).to.not.equal(undefined);

    const certPem = readFileSync(join(DEFAULT_DEV_CERTS_DIR, DEV_PKI_FILES.client), 'utf8');
    const keyPem = readFileSync(join(DEFAULT_DEV_CERTS_DIR, DEV_PKI_FILES.clientKey), 'utf8');
    const connect = op(
      'connect',
      '<sym:applicationName>echo</sym:applicationName><sym:username>client-a</sym:username><sym:password>pw</sym:password>',
    );
    const reply = await postSoap(url, signedEnvelope(connect, { certPem, keyPem }));
    expect(reply.status, reply.text).to.equal(200);
    const sent = parseXml(reply.text);
    const methods = descendants(sent, DS, 'SignatureMethod').map(algorithmOf);
    const digests = descendants(sent, DS, 'DigestMethod').map(algorithmOf);
    expect(methods).to.deep.equal([suite!.signature]);
    expect(digests.length).to.be.greaterThan(0);
    expect(new Set(digests)).to.deep.equal(new Set([suite!.digest]));
    expect(banner).to.contain('responses signed (rsa-sha256)');
  });
});
