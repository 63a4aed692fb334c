/**
 * RFC 5280 4.2.1.10 name constraints: a CA that carries permitted or excluded subtrees may only
 * vouch, directly or through CAs below it, for certificates whose names lie inside them.
 *
 * Evaluated name forms: directoryName (the subject DN and directoryName entries of the subject
 * alternative name), dNSName, rfc822Name (SAN entries and emailAddress attributes of the subject)
 * and iPAddress. A critical constraint on any other form (URI, otherName, x400Address,
 * ediPartyName, registeredID), or one using minimum/maximum, cannot be evaluated, so the chain is
 * refused rather than trusted blindly (RFC 5280 allows either processing or rejecting).
 */
import { AsnConvert } from '@peculiar/asn1-schema';
import * as asn1 from '@peculiar/asn1-x509';
import type * as px509 from '@peculiar/x509';
import { GatewayError } from '../errors/catalogue';

const ID_CE_NAME_CONSTRAINTS = '2.5.29.30';
const ID_CE_SUBJECT_ALT_NAME = '2.5.29.17';
const EMAIL_ADDRESS = '1.2.840.113549.1.9.1';

interface Ip {
  addr: Buffer;
  /** Bits that must match; the full length for an address in a certificate. */
  prefix: number;
}

/** One name, or one subtree's base, in comparable form. */
type Entry =
  | { form: 'directoryName'; dn: string[][]; text: string }
  | { form: 'dNSName' | 'rfc822Name'; text: string }
  | { form: 'iPAddress'; ip: Ip; text: string };

export interface NameConstraints {
  permitted: Entry[];
  excluded: Entry[];
}

const untrusted = (m: string): GatewayError => new GatewayError('SSP_WSS_UNTRUSTED', m);

/** X.520 caseIgnoreMatch, approximately (RFC 4518: insignificant spaces, case folding). */
function normalizeValue(v: asn1.AttributeValue): string {
  if (v.anyValue) return '#' + Buffer.from(v.anyValue).toString('hex');
  return v.toString().normalize('NFKC').trim().replace(/\s+/g, ' ').toLowerCase();
}

/** An RDN sequence, most significant first; each RDN a sorted list of "type=value". */
function readDn(name: asn1.Name): string[][] {
  return name.map((rdn) => rdn.map((atv) => `${atv.type}=${normalizeValue(atv.value)}`).sort());
}

const SHORT_TYPES: Record<string, string> = {
  '2.5.4.3': 'CN',
  '2.5.4.6': 'C',
  '2.5.4.7': 'L',
  '2.5.4.8': 'ST',
  '2.5.4.10': 'O',
  '2.5.4.11': 'OU',
  [EMAIL_ADDRESS]: 'E',
};

/** RFC 4514-like text for messages. */
function dnText(name: asn1.Name): string {
  return name
    .map((rdn) => rdn.map((atv) => `${SHORT_TYPES[atv.type] ?? atv.type}=${atv.value.toString()}`).join('+'))
    .reverse()
    .join(',');
}

/** "a.b.c.d", "a.b.c.d/n", IPv6 with "::", optionally "/n": as the converter prints them. */
function parseIp(s: string): Ip {
  const [addrText = '', prefixText] = s.split('/');
  let addr: Buffer;
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(addrText)) {
    addr = Buffer.from(addrText.split('.').map((p) => Number(p)));
    if (addr.some((b, i) => b !== Number(addrText.split('.')[i]))) throw new Error(`bad IPv4 ${s}`);
  } else if (/^[0-9a-f:]+$/i.test(addrText) && addrText.includes(':')) {
    const halves = addrText.split('::');
    if (halves.length > 2) throw new Error(`bad IPv6 ${s}`);
    const left = halves[0] ? halves[0].split(':') : [];
    const right = halves.length === 2 && halves[1] ? halves[1].split(':') : [];
    const fill = halves.length === 2 ? 8 - left.length - right.length : 0;
    const groups = [...left, ...Array<string>(Math.max(0, fill)).fill('0'), ...right];
    if (groups.length !== 8) throw new Error(`bad IPv6 ${s}`);
    addr = Buffer.alloc(16);
    groups.forEach((g, i) => addr.writeUInt16BE(parseInt(g, 16), i * 2));
  } else {
    throw new Error(`'${s}' is not an IP address`);
  }
  const prefix = prefixText === undefined ? addr.length * 8 : Number(prefixText);
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > addr.length * 8)
    throw new Error(`bad prefix in ${s}`);
  return { addr, prefix };
}

/** The evaluated forms of a GeneralName, or the name of the form we cannot evaluate. */
function readGeneralName(g: asn1.GeneralName): Entry | string {
  if (g.directoryName)
    return { form: 'directoryName', dn: readDn(g.directoryName), text: dnText(g.directoryName) };
  if (g.dNSName !== undefined) return { form: 'dNSName', text: g.dNSName };
  if (g.rfc822Name !== undefined) return { form: 'rfc822Name', text: g.rfc822Name };
  if (g.iPAddress !== undefined) return { form: 'iPAddress', ip: parseIp(g.iPAddress), text: g.iPAddress };
  if (g.uniformResourceIdentifier !== undefined) return 'uniformResourceIdentifier';
  if (g.otherName) return 'otherName';
  if (g.x400Address) return 'x400Address';
  if (g.ediPartyName) return 'ediPartyName';
  if (g.registeredID !== undefined) return 'registeredID';
  return 'an unknown name form';
}

/**
 * The name constraints of a CA certificate, or null when it has none. Throws (refusing the chain)
 * when a critical extension constrains a form we cannot evaluate, or cannot be read.
 */
export function readNameConstraints(ca: px509.X509Certificate, caName: string): NameConstraints | null {
  const ext = ca.extensions.find((e) => e.type === ID_CE_NAME_CONSTRAINTS);
  if (!ext) return null;
  let nc: asn1.NameConstraints;
  try {
    nc = AsnConvert.parse(ext.value, asn1.NameConstraints);
  } catch (e) {
    throw untrusted(`the name constraints of ${caName} cannot be read: ${(e as Error).message}`);
  }
  const read = (subtrees: asn1.GeneralSubtrees | undefined, kind: string): Entry[] => {
    const out: Entry[] = [];
    for (const st of subtrees ?? []) {
      let entry: Entry | string;
      try {
        entry = readGeneralName(st.base);
      } catch (e) {
        throw untrusted(`the ${kind} name constraints of ${caName} cannot be read: ${(e as Error).message}`);
      }
      const unsupported =
        typeof entry === 'string'
          ? `${entry} names`
          : st.minimum || st.maximum !== undefined
            ? 'subtrees with minimum/maximum'
            : null;
      if (unsupported) {
        // A non-critical extension (itself a breach of RFC 5280) may be ignored where unsupported.
        if (!ext.critical) continue;
        throw untrusted(
          `${caName} has critical ${kind} name constraints on ${unsupported}, which the proxy cannot evaluate; its chain is refused`,
        );
      }
      out.push(entry as Entry);
    }
    return out;
  };
  return {
    permitted: read(nc.permittedSubtrees, 'permitted'),
    excluded: read(nc.excludedSubtrees, 'excluded'),
  };
}

/** The names of a certificate that name constraints apply to. */
function namesOf(cert: px509.X509Certificate, certName: string): Entry[] {
  const out: Entry[] = [];
  let subject: asn1.Name;
  try {
    subject = AsnConvert.parse(cert.subjectName.toArrayBuffer(), asn1.Name);
  } catch (e) {
    throw untrusted(`the subject of ${certName} cannot be read: ${(e as Error).message}`);
  }
  if (subject.length > 0) out.push({ form: 'directoryName', dn: readDn(subject), text: dnText(subject) });
  for (const rdn of subject) {
    for (const atv of rdn) {
      if (atv.type === EMAIL_ADDRESS) out.push({ form: 'rfc822Name', text: atv.value.toString() });
    }
  }
  const san = cert.extensions.find((e) => e.type === ID_CE_SUBJECT_ALT_NAME);
  if (san) {
    let names: asn1.SubjectAlternativeName;
    try {
      names = AsnConvert.parse(san.value, asn1.SubjectAlternativeName);
      for (const g of names) {
        const e = readGeneralName(g);
        // Forms we do not evaluate can only be constrained by a (refused) critical extension.
        if (typeof e !== 'string') out.push(e);
      }
    } catch (e) {
      throw untrusted(`the subject alternative name of ${certName} cannot be read: ${(e as Error).message}`);
    }
  }
  return out;
}

function dnsMatches(name: string, base: string): boolean {
  const n = name.toLowerCase().replace(/\.$/, '');
  const b = base.toLowerCase().replace(/\.$/, '');
  if (b === '') return true;
  if (b.startsWith('.')) return n.endsWith(b);
  return n === b || n.endsWith('.' + b);
}

function emailMatches(name: string, base: string): boolean {
  const n = name.toLowerCase();
  const b = base.toLowerCase();
  if (b.includes('@')) return n === b;
  const at = n.lastIndexOf('@');
  const host = at < 0 ? n : n.slice(at + 1);
  if (b.startsWith('.')) return host.endsWith(b);
  return host === b;
}

function ipMatches(name: Ip, base: Ip): boolean {
  if (name.addr.length !== base.addr.length) return false;
  for (let bit = 0; bit < base.prefix; bit++) {
    const mask = 0x80 >> (bit % 8);
    const i = bit >> 3;
    if ((name.addr[i]! & mask) !== (base.addr[i]! & mask)) return false;
  }
  return true;
}

function dnMatches(name: string[][], base: string[][]): boolean {
  if (base.length > name.length) return false;
  return base.every((rdn, i) => {
    const other = name[i]!;
    return rdn.length === other.length && rdn.every((atv, j) => atv === other[j]);
  });
}

function within(name: Entry, base: Entry): boolean {
  if (name.form !== base.form) return false;
  switch (name.form) {
    case 'directoryName':
      return base.form === 'directoryName' && dnMatches(name.dn, base.dn);
    case 'dNSName':
      return dnsMatches(name.text, base.text);
    case 'rfc822Name':
      return emailMatches(name.text, base.text);
    case 'iPAddress':
      return base.form === 'iPAddress' && ipMatches(name.ip, base.ip);
  }
}

/** Throws unless every name of `cert` lies inside the permitted and outside the excluded subtrees. */
export function checkNameConstraints(
  nc: NameConstraints,
  caName: string,
  cert: px509.X509Certificate,
  certName: string,
): void {
  for (const name of namesOf(cert, certName)) {
    const excludedBy = nc.excluded.find((b) => within(name, b));
    if (excludedBy) {
      throw untrusted(
        `${caName} may not vouch for ${certName}: its ${name.form} '${name.text}' is in the excluded subtree '${excludedBy.text}' (name constraints)`,
      );
    }
    const permitted = nc.permitted.filter((b) => b.form === name.form);
    if (permitted.length > 0 && !permitted.some((b) => within(name, b))) {
      throw untrusted(
        `${caName} may not vouch for ${certName}: its ${name.form} '${name.text}' is outside the permitted subtrees ${permitted.map((b) => `'${b.text}'`).join(', ')} (name constraints)`,
      );
    }
  }
}
