import 'reflect-metadata';
import { expect } from 'chai';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AsnConvert } from '@peculiar/asn1-schema';
import * as asn1 from '@peculiar/asn1-x509';
import * as px509 from '@peculiar/x509';
import { GatewayError } from '../errors/catalogue';
import { TrustStore } from './truststore';
import { mint, type Minted, type MintSpec } from '../../test/helpers/mint';

/** A certificate with name constraints (critical unless said otherwise). */
function mintNc(o: MintSpec & { nc?: asn1.NameConstraints; ncCritical?: boolean }): Promise<Minted> {
  const extra = o.nc
    ? [new px509.Extension('2.5.29.30', o.ncCritical ?? true, AsnConvert.serialize(o.nc))]
    : [];
  return mint({ ...o, extra });
}

type Base = { dns: string } | { email: string } | { ip: string } | { dn: string } | { uri: string };

function generalName(b: Base): asn1.GeneralName {
  if ('dns' in b) return new asn1.GeneralName({ dNSName: b.dns });
  if ('email' in b) return new asn1.GeneralName({ rfc822Name: b.email });
  if ('ip' in b) return new asn1.GeneralName({ iPAddress: b.ip });
  if ('uri' in b) return new asn1.GeneralName({ uniformResourceIdentifier: b.uri });
  return new asn1.GeneralName({
    directoryName: AsnConvert.parse(new px509.Name(b.dn).toArrayBuffer(), asn1.Name),
  });
}

function nameConstraints(permitted: Base[], excluded: Base[] = []): asn1.NameConstraints {
  const subtrees = (bs: Base[]): asn1.GeneralSubtrees | undefined =>
    bs.length
      ? new asn1.GeneralSubtrees(bs.map((b) => new asn1.GeneralSubtree({ base: generalName(b) })))
      : undefined;
  return new asn1.NameConstraints({
    permittedSubtrees: subtrees(permitted),
    excludedSubtrees: subtrees(excluded),
  });
}

const dir = mkdtempSync(join(tmpdir(), 'ssp-nc-'));
let n = 0;
function file(c: Minted): string {
  const f = join(dir, `c${++n}.pem`);
  writeFileSync(f, c.cert.toString('pem'));
  return f;
}

/** 'trusted', or the refusal as "CODE: message". */
async function judge(leaf: Minted, anchor: Minted, intermediates: Minted[] = []): Promise<string> {
  const trust = await TrustStore.load(
    {
      caFiles: [file(anchor)],
      intermediateFiles: intermediates.map(file),
      crlFiles: [],
      signerCertFiles: [],
    },
    { minRsaBits: 2048 },
  );
  const der = Buffer.from(leaf.cert.rawData);
  try {
    trust.check(der, der.toString('base64'), Date.now());
    return 'trusted';
  } catch (e) {
    return e instanceof GatewayError ? `${e.code}: ${e.message}` : String(e);
  }
}

const leafUnder = (issuer: Minted, subject: string, san?: px509.JsonGeneralNames): Promise<Minted> =>
  mintNc({ subject, issuer, ...(san ? { san } : {}) });

describe('security/truststore: name constraints (RFC 5280 4.2.1.10)', function () {
  this.timeout(30_000);
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('dNSName: a CA permitted bank.example vouches for grid.bank.example, not for evil.example', async () => {
    const root = await mintNc({
      subject: 'O=Bank, CN=DNS Root',
      ca: true,
      nc: nameConstraints([{ dns: 'bank.example' }]),
    });
    const inside = await leafUnder(root, 'O=Bank, CN=inside', [{ type: 'dns', value: 'grid.bank.example' }]);
    const exact = await leafUnder(root, 'O=Bank, CN=exact', [{ type: 'dns', value: 'BANK.example' }]);
    const outside = await leafUnder(root, 'O=Bank, CN=outside', [
      { type: 'dns', value: 'grid.bank.example' },
      { type: 'dns', value: 'evil.example' },
    ]);
    const lookalike = await leafUnder(root, 'O=Bank, CN=lookalike', [
      { type: 'dns', value: 'notbank.example' },
    ]);
    const noSan = await leafUnder(root, 'O=Bank, CN=no-san');
    expect(await judge(inside, root)).to.equal('trusted');
    expect(await judge(exact, root)).to.equal('trusted');
    expect(await judge(outside, root)).to.match(
      /^SSP_WSS_UNTRUSTED: CN=DNS Root,O=Bank may not vouch for CN=outside,O=Bank: its dNSName 'evil.example' is outside the permitted subtrees 'bank.example'/,
    );
    expect(await judge(lookalike, root)).to.match(
      /dNSName 'notbank.example' is outside the permitted subtrees/,
    );
    expect(await judge(noSan, root), 'no name of a constrained form: nothing to refuse').to.equal('trusted');
  });

  it('excluded dNSName on the root binds a leaf two levels down, through an unconstrained intermediate', async () => {
    const root = await mintNc({
      subject: 'O=Bank, CN=Excl Root',
      ca: true,
      nc: nameConstraints([], [{ dns: 'hr.bank.example' }]),
    });
    const team = await mintNc({ subject: 'O=Bank, CN=Team CA', issuer: root, ca: true });
    const hr = await leafUnder(team, 'O=Bank, CN=hr', [{ type: 'dns', value: 'pay.hr.bank.example' }]);
    const grid = await leafUnder(team, 'O=Bank, CN=grid', [{ type: 'dns', value: 'grid.bank.example' }]);
    expect(await judge(hr, root, [team])).to.match(
      /^SSP_WSS_UNTRUSTED: CN=Excl Root,O=Bank may not vouch for CN=hr,O=Bank: its dNSName 'pay.hr.bank.example' is in the excluded subtree 'hr.bank.example'/,
    );
    expect(await judge(grid, root, [team])).to.equal('trusted');
  });

  it('directoryName: subject DNs (of the leaf and of intermediates) must lie under the permitted DN', async () => {
    const root = await mintNc({
      subject: 'O=Bank, CN=DN Root',
      ca: true,
      nc: nameConstraints([{ dn: 'O=Bank, OU=Grid' }]),
    });
    const gridCa = await mintNc({ subject: 'O=Bank, OU=Grid, CN=Grid CA', issuer: root, ca: true });
    const good = await leafUnder(gridCa, 'O=bank, OU=grid, CN=client-1'); // caseIgnoreMatch
    const otherOu = await leafUnder(gridCa, 'O=Bank, OU=HR, CN=client-2');
    expect(await judge(good, root, [gridCa])).to.equal('trusted');
    expect(await judge(otherOu, root, [gridCa])).to.match(
      /may not vouch for CN=client-2,OU=HR,O=Bank: its directoryName 'CN=client-2,OU=HR,O=Bank' is outside the permitted subtrees 'OU=Grid,O=Bank'/,
    );
    // An intermediate outside the subtree is caught even when its leaf would fit.
    const hrCa = await mintNc({ subject: 'O=Bank, OU=HR, CN=HR CA', issuer: root, ca: true });
    const underHr = await leafUnder(hrCa, 'O=Bank, OU=Grid, CN=client-3');
    expect(await judge(underHr, root, [hrCa])).to.match(/may not vouch for CN=HR CA,OU=HR,O=Bank/);
  });

  it('rfc822Name: SAN addresses and the subject emailAddress attribute', async () => {
    const root = await mintNc({
      subject: 'O=Bank, CN=Mail Root',
      ca: true,
      nc: nameConstraints(
        [{ email: 'bank.example' }, { email: '.bank.example' }],
        [{ email: 'mallory@bank.example' }],
      ),
    });
    const alice = await leafUnder(root, 'O=Bank, CN=alice', [{ type: 'email', value: 'alice@bank.example' }]);
    const bob = await leafUnder(root, 'O=Bank, CN=bob', [{ type: 'email', value: 'bob@ops.bank.example' }]);
    const eve = await leafUnder(root, 'O=Bank, CN=eve', [{ type: 'email', value: 'eve@evil.example' }]);
    const mallory = await leafUnder(root, 'O=Bank, CN=mallory', [
      { type: 'email', value: 'Mallory@bank.example' },
    ]);
    const inSubject = await leafUnder(root, 'O=Bank, CN=trent, E=trent@evil.example');
    expect(await judge(alice, root)).to.equal('trusted');
    expect(await judge(bob, root)).to.equal('trusted');
    expect(await judge(eve, root)).to.match(
      /its rfc822Name 'eve@evil.example' is outside the permitted subtrees/,
    );
    expect(await judge(mallory, root)).to.match(
      /'Mallory@bank.example' is in the excluded subtree 'mallory@bank.example'/,
    );
    expect(await judge(inSubject, root)).to.match(/its rfc822Name 'trent@evil.example' is outside/);
  });

  it('iPAddress: permitted 10.0.0.0/8, excluded 10.66.0.0/16, IPv6 never inside an IPv4 subtree', async () => {
    const root = await mintNc({
      subject: 'O=Bank, CN=IP Root',
      ca: true,
      nc: nameConstraints([{ ip: '10.0.0.0/8' }, { ip: '2001:db8::/32' }], [{ ip: '10.66.0.0/16' }]),
    });
    const ok4 = await leafUnder(root, 'O=Bank, CN=ok4', [{ type: 'ip', value: '10.1.2.3' }]);
    const ok6 = await leafUnder(root, 'O=Bank, CN=ok6', [{ type: 'ip', value: '2001:db8::7' }]);
    const out4 = await leafUnder(root, 'O=Bank, CN=out4', [{ type: 'ip', value: '192.168.1.1' }]);
    const out6 = await leafUnder(root, 'O=Bank, CN=out6', [{ type: 'ip', value: '2001:db9::1' }]);
    const excluded = await leafUnder(root, 'O=Bank, CN=excluded', [{ type: 'ip', value: '10.66.1.1' }]);
    expect(await judge(ok4, root)).to.equal('trusted');
    expect(await judge(ok6, root)).to.equal('trusted');
    expect(await judge(out4, root)).to.match(/its iPAddress '192.168.1.1' is outside the permitted subtrees/);
    expect(await judge(out6, root)).to.match(/its iPAddress '2001:db9::1' is outside/);
    expect(await judge(excluded, root)).to.match(/'10.66.1.1' is in the excluded subtree '10.66.0.0\/16'/);
  });

  it('refuses a chain whose CA has critical constraints of a form the proxy cannot evaluate (URI)', async () => {
    const critical = await mintNc({
      subject: 'O=Bank, CN=URI Root',
      ca: true,
      nc: nameConstraints([{ uri: '.bank.example' }]),
    });
    const leaf = await leafUnder(critical, 'O=Bank, CN=client');
    expect(await judge(leaf, critical)).to.equal(
      'SSP_WSS_UNTRUSTED: CN=URI Root,O=Bank has critical permitted name constraints on uniformResourceIdentifier names, which the proxy cannot evaluate; its chain is refused',
    );
    // Non-critical (itself against RFC 5280): the forms we cannot evaluate are ignored, the rest still bind.
    const lax = await mintNc({
      subject: 'O=Bank, CN=Lax Root',
      ca: true,
      nc: nameConstraints([{ uri: '.bank.example' }, { dns: 'bank.example' }]),
      ncCritical: false,
    });
    expect(await judge(await leafUnder(lax, 'O=Bank, CN=c1'), lax)).to.equal('trusted');
    expect(
      await judge(await leafUnder(lax, 'O=Bank, CN=c2', [{ type: 'dns', value: 'evil.example' }]), lax),
    ).to.match(/'evil.example' is outside the permitted subtrees 'bank.example'/);
  });
});
